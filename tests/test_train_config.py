"""Training config: presets, overrides, bad keys, round trips, the command-line parser."""

import argparse
import json
import re
from pathlib import Path

import pytest
import torch
import yaml

from ponogan.cli.train import add_arguments, build_config, parse_args
from ponogan.families import get_family
from ponogan.models import create_discriminator, create_generator
from ponogan.training.config import (
    ConfigError,
    CycleGANLoss,
    MunitLoss,
    TrainConfig,
    apply_overrides,
    from_dict,
    load_config,
)
from ponogan.training.errors import TrainingError
from ponogan.training.loop import build_accelerator

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
PRESETS = sorted(CONFIGS.glob("*.yaml"))
EXPECTED = [
    f"{fam}{v}{g}"
    for fam, variants in [
        ("pix2pix", ["", "_pono_ms", "_pono_dms"]),
        ("cyclegan", ["", "_pono_ms", "_pono_dms"]),
        ("munit", ["", "_pono_ms"]),
        ("cut", ["", "_pono_ms"]),
        ("fastcut", ["", "_pono_ms"]),
        ("drit", ["", "_pono_ms"]),
    ]
    for v in variants
    for g in ("", "_glyphs")
]


def test_every_documented_preset_exists():
    """The presets docs/training.md lists (and every family x shortcut x data combination) resolve by name."""
    from ponogan.training.presets import find_preset

    documented = set(
        re.findall(r"^\| `(\w+)` \|", (CONFIGS.parent / "docs" / "training.md").read_text(), re.M)
    )
    assert set(EXPECTED) <= {p.stem for p in PRESETS}
    for name in set(EXPECTED) | (documented & {p.stem for p in PRESETS}):
        assert find_preset(name).is_file(), name


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_preset_parses_and_builds_its_networks(path):
    cfg = load_config(path)
    assert cfg.run_name == path.stem
    # a preset is named after its family, or after the family's mode (CUT's fastcut)
    assert path.stem.split("_")[0] in (cfg.family, getattr(cfg.loss, "mode", cfg.family))
    expected_shortcut = "dms" if "_pono_dms" in path.stem else "ms" if "_pono_ms" in path.stem else None
    assert cfg.model.shortcut == expected_shortcut
    if path.stem.endswith("_glyphs"):
        # 64 px, or the smallest power of two the family's networks train at (DRIT: 128)
        side = 1 << (max(64, get_family(cfg.family).min_side) - 1).bit_length()
        assert cfg.data.mode == "glyphs" and cfg.data.options.image_size == side
        assert cfg.data.options.paired == (cfg.family == "pix2pix")
    with torch.device("meta"):  # every preset's model options are valid (no memory, no init cost)
        create_generator(cfg.model.generator, shortcut=cfg.model.shortcut, **cfg.model.generator_kwargs)
        create_discriminator(cfg.model.discriminator, **cfg.model.discriminator_kwargs)


PONO_PRESETS = [p for p in PRESETS if "_pono_" in p.stem]


@pytest.mark.parametrize("path", PONO_PRESETS, ids=lambda p: p.stem)
def test_a_pono_preset_is_its_baseline_plus_the_shortcut(path):
    """Each ``*_pono_*`` preset names its baseline as ``base:`` and changes only the shortcut (and, for
    families with a ``pono_layout``, that block layout); ``run_name`` stays the child's own file name."""
    assert set(yaml.safe_load(path.read_text())) == {"base", "model"}
    baseline = re.sub(r"_pono_d?ms", "", path.stem)
    child, base = load_config(path).to_dict(), load_config(CONFIGS / f"{baseline}.yaml").to_dict()
    assert (child["run_name"], base["run_name"]) == (path.stem, baseline)
    assert child["model"]["shortcut"] == ("dms" if "_pono_dms" in path.stem else "ms")
    assert base["model"]["shortcut"] is None and "layout" not in base["model"]["generator_kwargs"]
    layout = child["model"]["generator_kwargs"].pop("layout", None)
    assert layout == get_family(child["family"]).pono_layout
    for values in (child, base):
        del values["run_name"], values["model"]["shortcut"]
    assert child == base


def test_a_preset_base_merges_dicts_and_replaces_the_rest(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "parent.yaml").write_text(
        "family: cyclegan\nmodel: {generator_kwargs: {ngf: 8, norm: batch}}\n"
        "train: {max_steps: 9, max_minutes: 5, log_every: 3}\n"
    )
    (tmp_path / "child.yaml").write_text(
        "base: sub/parent.yaml\nmodel: {generator_kwargs: {layout: official}}\n"
        "train: {max_steps: 4, max_minutes: null}\n"
    )
    (tmp_path / "grandchild.yaml").write_text("base: child\nseed: 7\n")
    cfg = load_config(tmp_path / "grandchild.yaml")
    assert cfg.family == "cyclegan" and cfg.run_name == "grandchild" and cfg.seed == 7
    assert cfg.model.generator_kwargs == {"ngf": 8, "norm": "batch", "layout": "official"}
    assert (cfg.train.max_steps, cfg.train.max_minutes, cfg.train.log_every) == (4, None, 3)
    # a name that is not next to the preset is looked up like --config (here: the packaged presets)
    (tmp_path / "mine.yaml").write_text("base: cyclegan_glyphs\ntrain: {max_steps: 5}\n")
    mine, packaged = load_config(tmp_path / "mine.yaml"), load_config(CONFIGS / "cyclegan_glyphs.yaml")
    assert mine == apply_overrides(packaged, {"run_name": "mine", "train.max_steps": 5})


@pytest.mark.parametrize(
    "files, words",
    [
        ({"a": "base: nope\n"}, ["a.yaml", "base 'nope' not found", "presets: ", "cyclegan_glyphs"]),
        ({"a": "base: b\n", "b": "base: a\n"}, ["a.yaml", "base cycle", "a.yaml -> b.yaml -> a.yaml"]),
        ({"a": "base: a.yaml\n"}, ["a.yaml", "base cycle", "a.yaml -> a.yaml"]),
        ({"a": "base: [b]\n"}, ["a.yaml", "base must be a preset name"]),
    ],
    ids=["missing", "cycle", "self", "not-a-name"],
)
def test_a_bad_preset_base_is_one_line(tmp_path, files, words):
    for name, text in files.items():
        (tmp_path / f"{name}.yaml").write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "a.yaml")
    assert "\n" not in str(err.value) and all(word in str(err.value) for word in words), str(err.value)


def test_family_defaults_do_not_leak_into_a_kwargs_dict_a_config_sets():
    """A ``*_kwargs`` dict replaces the family's whole (a saved config.json must reload as written)."""
    cfg = from_dict({"family": "cyclegan", "model": {"discriminator_kwargs": {"ndf": 8}}})
    assert cfg.model.discriminator_kwargs == {"ndf": 8}
    assert from_dict({"family": "cyclegan"}).model.discriminator_kwargs == {"norm": "instance"}


def test_family_defaults_follow_the_papers():
    cyc = from_dict({"family": "cyclegan"})
    assert isinstance(cyc.loss, CycleGANLoss)
    assert (cyc.loss.gan_mode, cyc.loss.cycle, cyc.loss.identity) == ("lsgan", 10.0, 0.5)
    assert cyc.loss.pool_size == 50
    assert cyc.model.generator == "resnet_9blocks" and cyc.optim.lr_policy == "linear"
    munit = from_dict({"family": "munit"})
    assert isinstance(munit.loss, MunitLoss) and munit.loss.image == 10.0
    assert munit.model.discriminator == "multiscale" and munit.optim.lr_g == 1e-4
    assert from_dict({}).loss.l1 == 100.0


def test_default_run_is_pix2pix_pono_ms_glyphs_at_64px():
    cfg = build_config(parse_args(_parser(), []))
    assert (cfg.family, cfg.model.shortcut, cfg.data.mode) == ("pix2pix", "ms", "glyphs")
    assert cfg.data.options.image_size == 64 and cfg.train.device == "auto"


def test_overrides_are_typed_and_reach_nested_fields():
    cfg = apply_overrides(
        from_dict({}),
        {
            "optim.lr_g": "1e-3",
            "model.generator_kwargs.ngf": "8",
            "train.max_minutes": "null",
            "data.options.paired": "false",
            "train.mixed_precision": "no",
            "loss.l1": "5e1",
            "seed": 3,
        },
    )
    assert cfg.optim.lr_g == 1e-3 and cfg.model.generator_kwargs == {"ngf": 8}
    assert cfg.train.max_minutes is None and cfg.data.options.paired is False
    assert cfg.train.mixed_precision == "no" and cfg.loss.l1 == 50.0 and cfg.seed == 3


@pytest.mark.parametrize(
    "overrides, words",
    [
        ({"model.ngff": 8}, ["model.ngff", "generator_kwargs"]),
        ({"lossx": 1}, ["lossx", "family", "train"]),
        ({"loss.cycle": 3}, ["loss.cycle", "l1"]),  # pix2pix has no cycle loss
        ({"data.options.imagesize": 3}, ["data.options.imagesize", "image_size"]),
        ({"train.max_steps": "many"}, ["train.max_steps", "integer"]),
        ({"train.max_steps.x": 1}, ["train.max_steps", "not a section"]),
        ({"train.device": "tpu"}, ["train.device", "auto, cpu, cuda, mps"]),
        ({"model.shortcut": "pono"}, ["model.shortcut", "ms, dms"]),
        ({"data.options.image_size": 8}, ["image_size", "16"]),
        ({"family": "munit"}, ["family"]),
    ],
)
def test_bad_overrides_name_the_key_and_the_valid_values(overrides, words):
    with pytest.raises(ConfigError) as err:
        apply_overrides(from_dict({}), overrides)
    for word in words:
        assert word in str(err.value)


def test_bad_yaml_files(tmp_path):
    (tmp_path / "a.yaml").write_text("family: pix2pix\ntrian:\n  max_steps: 3\n")
    with pytest.raises(ConfigError, match=r"a.yaml: unknown config key\(s\) trian; valid keys"):
        load_config(tmp_path / "a.yaml")
    (tmp_path / "b.yaml").write_text("family: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "b.yaml")
    (tmp_path / "c.yaml").write_text("family: stylegan\n")
    with pytest.raises(ConfigError, match="valid families: pix2pix, cyclegan, munit"):
        load_config(tmp_path / "c.yaml")
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    "path", [CONFIGS / "cyclegan_pono_dms.yaml", CONFIGS / "munit_pono_ms_glyphs.yaml"], ids=lambda p: p.stem
)
def test_round_trip_yaml_dataclass_json(path):
    cfg = load_config(path)
    again = from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and isinstance(again, TrainConfig)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser


def test_command_line_flags_and_dotted_overrides():
    args = parse_args(
        _parser(),
        [
            "--config",
            str(CONFIGS / "cyclegan_glyphs.yaml"),
            "--max-steps",
            "7",
            "--seed",
            "5",
            "--mixed-precision",
            "bf16",
            "--output-dir",
            "/tmp/x",
            "--model.generator_kwargs.ngf",
            "16",
            "--loss.cycle=5",
            "optim.lr_d=1e-5",
            "--max-minutes",
            "2.5",
        ],
    )
    cfg = build_config(args)
    assert (cfg.train.max_steps, cfg.seed, cfg.train.mixed_precision) == (7, 5, "bf16")
    assert cfg.output_dir == "/tmp/x" and cfg.run_dir == Path("/tmp/x")
    assert cfg.model.generator_kwargs["ngf"] == 16 and cfg.loss.cycle == 5.0 and cfg.optim.lr_d == 1e-5
    assert cfg.train.max_minutes == 2.5 and cfg.train.resume is False
    with pytest.raises(SystemExit):
        parse_args(_parser(), ["--model.generator"])  # an override without its value


@pytest.mark.parametrize(
    "argv", [["16"], ["--max-stepz", "3"], ["--seed.x"], ["=3"]], ids=["bare", "typo", "no-value", "no-key"]
)
def test_arguments_that_are_neither_flags_nor_overrides_stop_the_parser(argv, capsys):
    with pytest.raises(SystemExit):
        parse_args(_parser(), argv)
    assert "error:" in capsys.readouterr().err


def test_overrides_mix_with_flags_in_any_order():
    args = parse_args(_parser(), ["seed=4", "--optim.lr_g", "-1e-4", "--max-steps", "3", "run_name=x"])
    assert args.overrides == {"seed": "4", "optim.lr_g": "-1e-4", "run_name": "x", "train.max_steps": 3}


def test_resume_without_config_uses_the_saved_one(tmp_path):
    saved = load_config(CONFIGS / "munit_glyphs.yaml", {"seed": 11})
    (tmp_path / "config.json").write_text(json.dumps({"train": saved.to_dict()}))
    cfg = build_config(parse_args(_parser(), ["--resume", "--output-dir", str(tmp_path), "--max-steps", "9"]))
    assert cfg.family == "munit" and cfg.seed == 11 and cfg.train.max_steps == 9 and cfg.train.resume


def test_impossible_hardware_requests_have_clear_messages():
    with pytest.raises(TrainingError, match="fp16 .* CUDA GPU.*bf16"):
        build_accelerator(from_dict({"train": {"mixed_precision": "fp16"}}))
    if not torch.cuda.is_available():
        with pytest.raises(TrainingError, match="--device 'cuda' was requested but CUDA is not available"):
            build_accelerator(from_dict({"train": {"device": "cuda"}}))


def _parsed(argv):
    import argparse

    from ponogan.cli.train import add_arguments, build_config, parse_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return build_config(parse_args(parser, argv))


def test_presets_by_name_and_listing(capsys):
    from ponogan.cli.train import main

    cfg = _parsed(["--config", "cyclegan_pono_ms_glyphs"])
    assert cfg.family == "cyclegan" and cfg.model.generator_kwargs["layout"] == "official"
    assert main(["--list-presets"]) == 0
    out = capsys.readouterr().out
    assert "pix2pix_pono_ms_glyphs" in out and "munit_pono_ms" in out and "default run" in out
    assert main(["--config", "cyclegan_pono_mss"]) == 2
    err = capsys.readouterr().err
    assert "no preset or file named 'cyclegan_pono_mss'; presets: " in err and " cyclegan_pono_ms," in err


def test_cyclegan_repository_flags_map_to_fields(capsys):
    cfg = _parsed(
        [
            "--dataroot",
            "datasets/horse2zebra",
            "--name",
            "h2z",
            "--model",
            "cycle_gan",
            "--netG",
            "resnetPONODMS_9blocks",
            "--norm",
            "batch",
            "--direction=BtoA",
            "--no_dropout",
            "--lr",
            "1e-4",
            "--checkpoints_dir",
            "runs",
            "--gpu_ids",
            "-1",
        ]
    )
    assert (cfg.family, cfg.data.mode, cfg.data.root, cfg.run_name) == (
        "cyclegan",
        "unaligned",
        "datasets/horse2zebra",
        "h2z",
    )
    assert (cfg.model.generator, cfg.model.shortcut) == ("resnet_9blocks", "dms")
    gkw = cfg.model.generator_kwargs
    assert gkw["layout"] == "official" and gkw["norm"] == "batch"
    assert cfg.model.discriminator_kwargs["norm"] == "batch" and cfg.data.options.direction == "BtoA"
    assert cfg.optim.lr_g == cfg.optim.lr_d == 1e-4 and cfg.output_dir == "runs/h2z"
    assert cfg.train.device == "cpu" and cfg.model.generator_kwargs["use_dropout"] is False
    with pytest.raises(SystemExit):
        _parsed(["--n_epochs", "100"])
    assert "--max-steps" in capsys.readouterr().err
