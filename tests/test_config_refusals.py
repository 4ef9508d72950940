"""Nonsense settings are refused before anything is written or allocated, each in one ``error:`` line
with exit status 2: ranges and choices (``config.validate``), networks that cannot build or run at the
run's size (``preflight``, on the meta device), devices this machine lacks, flags that disagree,
unsafe YAML (anchors, aliases, deep nesting, duplicate keys) and deep JSON. Through ``train.py``'s
``main(argv)``, as a user hits them."""

import json
from pathlib import Path

import pytest
import torch
import yaml
from test_train_run import TINY_DATA, TINY_LOOP, TINY_MODELS  # tests/ is on sys.path

import ponogan.training.loop as loop
from ponogan.cli.train import main
from ponogan.training.config import from_dict
from ponogan.training.presets import PresetError, load_yaml


@pytest.fixture(autouse=True)
def no_training(monkeypatch, tmp_path):
    """Run in ``tmp_path`` (nothing lands in the repository) and fail if a run gets as far as building
    its trainer: every case here must be refused first."""
    monkeypatch.chdir(tmp_path)

    def refuse(*args, **kwargs):
        raise AssertionError("the trainer was built: the config should have been refused first")

    monkeypatch.setattr(loop, "create_trainer", refuse)


def preset(tmp_path: Path, family: str = "pix2pix", **changes) -> Path:
    """A tiny preset file (32 px glyphs, tiny nets) with ``changes`` merged in at the top level."""
    values = {
        "family": family,
        "model": TINY_MODELS[family],
        "data": {**TINY_DATA, "options": {**TINY_DATA["options"], "paired": family == "pix2pix"}},
        "train": TINY_LOOP,
        **changes,
    }
    path = tmp_path / f"tiny_{family}.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def refused(capsys, tmp_path: Path, *argv) -> str:
    """Run ``train.py argv``; assert exit 2, one ``error:`` line, no traceback and nothing written
    besides the test's own files; return the line."""
    before = sorted(tmp_path.rglob("*"))
    status = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert status == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert sorted(tmp_path.rglob("*")) == before, "a refused run wrote files"
    return lines[0]


@pytest.mark.parametrize(
    "family, override, words",
    [
        ("pix2pix", "optim.gamma=-1", ["optim.gamma", "(0, 1]"]),
        ("pix2pix", "optim.gamma=1.5", ["optim.gamma", "(0, 1]"]),
        ("pix2pix", "optim.lr_g=-1", ["optim.lr_g", "positive"]),
        ("pix2pix", "optim.lr_g=inf", ["optim.lr_g", "finite"]),
        ("pix2pix", "optim.lr_d=0", ["optim.lr_d", "positive"]),
        ("pix2pix", "optim.beta1=1", ["optim.beta1", "[0, 1)"]),
        ("pix2pix", "optim.weight_decay=-1", ["optim.weight_decay", ">= 0"]),
        ("pix2pix", "loss.l1=-100", ["loss.l1", ">= 0"]),
        ("pix2pix", "loss.gan=nan", ["loss.gan", "finite"]),
        ("cyclegan", "loss.pool_size=-1", ["loss.pool_size", "0"]),
        ("munit", "loss.moments=-1", ["loss.moments", ">= 0"]),
        ("pix2pix", "data.eval_max_items=0", ["data.eval_max_items", "at least 1"]),
        ("pix2pix", "data.eval_max_items=-3", ["data.eval_max_items", "at least 1"]),
        ("pix2pix", "data.options.image_size=100000", ["data.options.image_size", "4096"]),
        ("pix2pix", "data.options.crop_size=100000", ["data.options.crop_size", "4096"]),
        ("pix2pix", "run_name=../../../somewhere", ["run_name", "plain folder name", "--output-dir"]),
        ("pix2pix", "run_name=/tmp/elsewhere", ["run_name", "plain folder name"]),
        ("pix2pix", "loss.gan_mode=bogus", ["loss.gan_mode", "lsgan", "bogus"]),
        ("pix2pix", "model.generator=foo", ["unknown generator 'foo'", "unet_256"]),
        ("pix2pix", "model.discriminator=foo", ["unknown discriminator 'foo'", "patchgan"]),
        ("pix2pix", "data.mode=bogus", ["data.mode", "aligned", "bogus"]),
        ("pix2pix", "model.generator_kwargs.num_downs=200", ["num_downs", "2 to 12", "200"]),
        ("pix2pix", "model.generator_kwargs.num_downs=100000", ["num_downs", "2 to 12"]),
        ("pix2pix", "model.discriminator_kwargs.n_layers=50", ["n_layers", "1 to 8", "50"]),
        ("pix2pix", "model.discriminator_kwargs.n_layers=7", ["network D", "Kernel size", "n_layers=7"]),
        ("pix2pix", "model.generator_kwargs.ngf=abc", ["model.generator_kwargs.ngf", "integer", "'abc'"]),
        ("pix2pix", "model.generator_kwargs.norm=7", ["norm", "string"]),
        ("pix2pix", "model.generator_kwargs.bogus=1", ["network G", "unknown option", "bogus"]),
    ],
)
def test_nonsense_settings_are_refused(capsys, tmp_path, family, override, words):
    line = refused(capsys, tmp_path, "--config", preset(tmp_path, family), "--output-dir", "run", override)
    assert all(word in line for word in words), line


def test_cyclegan_identity_loss_needs_equal_channels(capsys, tmp_path):
    line = refused(
        capsys,
        tmp_path,
        "--config",
        "cyclegan_pono_ms_glyphs",
        "data.options.input_nc=1",
        "data.options.output_nc=3",
    )
    assert "loss.identity" in line and "input_nc" in line and "loss.identity=0" in line, line


def test_a_preset_with_a_path_as_run_name_is_refused(capsys, tmp_path):
    line = refused(capsys, tmp_path, "--config", preset(tmp_path, run_name="../../outside"))
    assert "run_name" in line and "'../../outside'" in line, line


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--max-steps", "2", "train.max_steps=3"], ["train.max_steps=3", "--max-steps 2", "once"]),
        (["--max-minutes", "5", "train.max_minutes=6"], ["train.max_minutes=6", "--max-minutes 5"]),
        (["optim.lr_g=1e-4", "--lr", "2e-4"], ["optim.lr_g=1e-4", "repository flag"]),
        (["--model", "cycle_gan"], ["--model", "cyclegan", "pix2pix preset"]),
    ],
)
def test_flags_that_disagree_are_refused_naming_both(capsys, tmp_path, argv, words):
    line = refused(capsys, tmp_path, "--config", preset(tmp_path), *argv)
    assert all(word in line for word in words), line


def test_the_same_value_twice_is_no_conflict(tmp_path):
    """``--max-steps 2 train.max_steps=2`` means one thing: it is accepted (the trainer is reached)."""
    with pytest.raises(AssertionError, match="trainer was built"):
        main(["--config", str(preset(tmp_path)), "--max-steps", "2", "train.max_steps=2"])


@pytest.mark.parametrize("device", ["cuda", "mps"])
@pytest.mark.parametrize("resume", [False, True], ids=["fresh", "resume"])
def test_a_device_this_machine_lacks_is_one_line(capsys, tmp_path, device, resume):
    available = torch.cuda.is_available() if device == "cuda" else torch.backends.mps.is_available()
    if available:
        pytest.skip(f"this machine has {device}")
    argv = ["--device", device, "--output-dir", "run"]
    if resume:  # a run folder whose saved config is loaded, as --resume does
        (tmp_path / "run").mkdir()
        saved = {"train": from_dict(yaml.safe_load(preset(tmp_path).read_text())).to_dict()}
        (tmp_path / "run" / "config.json").write_text(json.dumps(saved))
        argv.append("--resume")
    else:
        argv += ["--config", preset(tmp_path)]
    line = refused(capsys, tmp_path, *argv)
    assert f"--device '{device}'" in line and "not available" in line, line


@pytest.mark.skipif(torch.cuda.is_available(), reason="fp16 works on this machine's GPU")
def test_fp16_on_the_cpu_is_a_usage_error(capsys, tmp_path):
    line = refused(
        capsys, tmp_path, "--config", preset(tmp_path), "--device", "cpu", "--mixed-precision", "fp16"
    )
    assert "fp16" in line and "bf16" in line, line


@pytest.mark.parametrize(
    "text, words",
    [
        ("family: pix2pix\nmodel:\n  generator_kwargs: &r {loop: *r}\n", ["line 3", "anchors and aliases"]),
        (
            "family: pix2pix\na: &a [1, 1, 1, 1]\nb: &b [*a, *a, *a, *a]\n"
            "model:\n  generator_kwargs: {x: *b}\n",
            ["line 2", "anchors and aliases"],
        ),
        ("family: pix2pix\nseed: 1\nseed: 2\n", ["line 3", "'seed' appears twice"]),
        (
            "family: pix2pix\nmodel:\n  generator_kwargs: {a: " + "[" * 40 + "]" * 40 + "}\n",
            ["nested deeper"],
        ),
    ],
    ids=["self-reference", "alias-bomb", "duplicate-key", "deep"],
)
def test_unsafe_yaml_is_refused_naming_file_and_line(capsys, tmp_path, text, words):
    path = tmp_path / "evil.yaml"
    path.write_text(text)
    line = refused(capsys, tmp_path, "--config", path)
    assert "evil.yaml" in line and all(word in line for word in words), line


def test_an_alias_in_an_override_value_is_refused(capsys, tmp_path):
    line = refused(capsys, tmp_path, "--config", preset(tmp_path), "model.generator_kwargs={a: &r [*r]}")
    assert "anchors and aliases" in line, line


def test_a_yaml_name_that_is_not_a_file_suggests_the_preset(capsys, tmp_path):
    line = refused(capsys, tmp_path, "--config", "pix2pix_glyphs.yaml")
    assert "not found" in line and "--config pix2pix_glyphs" in line, line
    line = refused(capsys, tmp_path, "--config", "no_such_preset.yaml")
    assert "not found" in line and "did you mean" not in line, line


@pytest.mark.parametrize("depth", [50, 100_000], ids=["deep", "beyond-the-json-parser"])
def test_a_deeply_nested_saved_config_is_one_line(capsys, tmp_path, depth):
    (tmp_path / "run").mkdir()
    nested = '{"a": ' * depth + "1" + "}" * depth
    text = '{"train": {"family": "pix2pix", "model": {"generator_kwargs": ' + nested + "}}}"
    (tmp_path / "run" / "config.json").write_text(text)
    line = refused(capsys, tmp_path, "--resume", "--output-dir", "run")
    assert "config.json" in line and "nested" in line, line


def test_the_strict_loader_keeps_plain_yaml():
    assert load_yaml("a: 1\nb: {c: [1, 2]}\nmixed_precision: no\n") == {
        "a": 1,
        "b": {"c": [1, 2]},
        "mixed_precision": False,
    }
    with pytest.raises(PresetError, match="line 1"):
        load_yaml("? [1]\n: 2\n", "f.yaml")
