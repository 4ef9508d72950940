"""save_pretrained / load_pretrained: round trip, formats, atomic writes and error messages."""

import json

import pytest
import torch
from PIL import Image

from ponogan.models import create_generator, hub, load_pretrained, save_pretrained


def cyclegan_pair():
    g_a = create_generator("resnet_6blocks", ngf=4, n_blocks=1, shortcut="ms")
    g_b = create_generator("resnet_6blocks", ngf=4, n_blocks=1, shortcut="dms", norm="batch")
    return {"G_A": g_a, "G_B": g_b}


def test_round_trip_gives_identical_outputs(tmp_path):
    gens = cyclegan_pair()
    with torch.no_grad():  # make the state non-default: trained-looking weights and BN statistics
        for g in gens.values():
            for p in g.parameters():
                p.add_(0.05 * torch.randn_like(p))
        gens["G_B"].train()(torch.randn(2, 3, 16, 16))
    run = save_pretrained(tmp_path / "run", gens, {"family": "cyclegan", "step": 7})
    loaded, config = load_pretrained(run)
    x = torch.randn(1, 3, 20, 18)
    with torch.no_grad():
        for role, g in gens.items():
            assert not loaded[role].training
            assert torch.equal(loaded[role](x), g.eval()(x))
    assert config["family"] == "cyclegan" and config["step"] == 7
    assert config["generators"]["G_B"] == gens["G_B"].spec
    on_disk = json.loads((tmp_path / "run" / "config.json").read_text())
    assert on_disk == config


def test_munit_round_trip_and_weights_path(tmp_path):
    gens = {r: create_generator("munit", dim=4, style_dim=3, n_res=1, mlp_dim=8) for r in ("gen_a", "gen_b")}
    save_pretrained(tmp_path, gens, {"family": "munit"})
    loaded, _ = load_pretrained(tmp_path / "model.safetensors")
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        c, m, _ = gens["gen_a"].encode(x)
        s = gens["gen_b"].random_style(1)
        expected = gens["gen_b"].decode(c, m, s)
        c2, m2, _ = loaded["gen_a"].encode(x)
        assert torch.equal(loaded["gen_b"].decode(c2, m2, s), expected)


def test_keys_are_role_prefixed_and_no_temp_files_remain(tmp_path):
    from safetensors import safe_open

    save_pretrained(tmp_path, cyclegan_pair(), {})
    with safe_open(str(tmp_path / "model.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert keys and all(k.split(".")[0] in ("G_A", "G_B") for k in keys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]


def test_a_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    gens = cyclegan_pair()
    save_pretrained(tmp_path, gens, {"step": 1})
    before = (tmp_path / "model.safetensors").read_bytes()

    def boom(tensors, path, metadata=None):
        with open(path, "wb") as f:
            f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(hub, "save_file", boom)
    with pytest.raises(OSError, match="disk full"):
        save_pretrained(tmp_path, gens, {"step": 2})
    assert (tmp_path / "model.safetensors").read_bytes() == before
    assert json.loads((tmp_path / "config.json").read_text())["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]


def test_missing_files_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_pretrained(tmp_path / "nowhere")
    save_pretrained(tmp_path, cyclegan_pair(), {})
    (tmp_path / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "config.json")):
        load_pretrained(tmp_path)
    save_pretrained(tmp_path, cyclegan_pair(), {})
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "model.safetensors")):
        load_pretrained(tmp_path)


def test_a_pickle_or_garbage_file_is_refused(tmp_path):
    save_pretrained(tmp_path, cyclegan_pair(), {})
    torch.save({"x": torch.zeros(1)}, tmp_path / "model.safetensors")
    with pytest.raises(ValueError, match="not a valid safetensors file"):
        load_pretrained(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match="not a valid safetensors file"):
        load_pretrained(tmp_path)


def test_weights_that_do_not_match_the_config(tmp_path):
    save_pretrained(tmp_path, cyclegan_pair(), {})
    config = json.loads((tmp_path / "config.json").read_text())
    config["generators"]["G_A"]["kwargs"]["ngf"] = 8  # same keys, different shapes
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="does not match its config"):
        load_pretrained(tmp_path)
    config["generators"]["G_A"]["kwargs"].update(ngf=4, shortcut="dms")  # extra DMS keys expected
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="does not match its config.*missing keys"):
        load_pretrained(tmp_path)
    del config["generators"]["G_B"]  # weights for a role the config does not know
    config["generators"]["G_A"]["kwargs"]["shortcut"] = "ms"
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="does not match its config.*G_B"):
        load_pretrained(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"family": "cyclegan"}))
    with pytest.raises(ValueError, match="no 'generators'"):
        load_pretrained(tmp_path)


def test_save_refuses_models_without_spec_and_bad_input(tmp_path):
    with pytest.raises(ValueError, match="create_generator"):
        save_pretrained(tmp_path, {"G": torch.nn.Conv2d(1, 1, 1)}, {})
    with pytest.raises(ValueError, match="at least one"):
        save_pretrained(tmp_path, {}, {})
    with pytest.raises(ValueError, match="without dots"):
        save_pretrained(tmp_path, {"G.x": cyclegan_pair()["G_A"]}, {})
    with pytest.raises(TypeError):
        save_pretrained(tmp_path, cyclegan_pair(), {"bad": object()})
    assert not (tmp_path / "model.safetensors").exists()


def tiny_run(tmp_path, name="resnet_6blocks", **kwargs):
    """A saved tiny generator run folder (role ``G``) and its config.json path."""
    gen = create_generator(name, ngf=4, n_blocks=1, **kwargs)
    run = save_pretrained(tmp_path / "run", {"G": gen}, {"family": "pix2pix"})
    return run, run / "config.json"


def rewrite_kwargs(config_path, **changes):
    config = json.loads(config_path.read_text())
    config["generators"]["G"]["kwargs"].update(changes)
    config_path.write_text(json.dumps(config))


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"n_blocks": 100000}, ["n_blocks", "0 to 64", "100000"]),
        ({"ngf": 1000, "n_blocks": 60}, ["million parameters", "limit"]),
        ({"ngf": -3}, ["ngf", "1 to 1024", "-3"]),
        ({"ngf": "12"}, ["ngf", "integer", "'12'"]),
        ({"use_dropout": "yes"}, ["use_dropout", "true or false"]),
        ({"ngf": 1024, "n_blocks": 6, "n_downsampling": 0}, ["values per input pixel", "limit"]),
    ],
    ids=["deep", "wide", "negative", "string", "bool", "activations"],
)
def test_absurd_config_json_is_refused_before_allocating(tmp_path, monkeypatch, changes, words):
    run, config_path = tiny_run(tmp_path)
    rewrite_kwargs(config_path, **changes)
    monkeypatch.setattr(hub, "create_generator", None)  # the real build must not be reached
    with pytest.raises(ValueError) as info:
        load_pretrained(run)
    message = str(info.value)
    assert "\n" not in message and "config.json" in message and all(w in message for w in words), message


def test_a_deeply_nested_config_json_is_one_line(tmp_path):
    run, config_path = tiny_run(tmp_path)
    config_path.write_text('{"a": ' * 100_000 + "1" + "}" * 100_000)
    with pytest.raises(ValueError, match="nested too deeply"):
        load_pretrained(run)


@pytest.mark.parametrize("dtype", [torch.int8, torch.bool, torch.int64])
def test_integer_weights_are_refused(tmp_path, dtype):
    from safetensors.torch import load_file, save_file

    run, _ = tiny_run(tmp_path)
    tensors = load_file(run / "model.safetensors")
    key = "G.stem.conv.weight"
    tensors[key] = tensors[key].to(dtype)
    save_file(tensors, run / "model.safetensors")
    with pytest.raises(ValueError, match="floating-point weights only") as info:
        load_pretrained(run)
    assert key in str(info.value) and str(dtype).removeprefix("torch.") in str(info.value)


def test_translate_refuses_an_absurd_checkpoint_in_one_line(tmp_path, capsys):
    from ponogan.cli import main

    run, config_path = tiny_run(tmp_path)
    rewrite_kwargs(config_path, n_blocks=100000)
    (tmp_path / "in").mkdir()
    Image.new("RGB", (32, 32)).save(tmp_path / "in" / "a.png")
    status = main(
        [
            "translate",
            "--checkpoint",
            str(run),
            "--input",
            str(tmp_path / "in"),
            "--output",
            str(tmp_path / "out"),
        ]
    )
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and "n_blocks" in err, err
    assert not (tmp_path / "out").exists()


def test_export_refuses_an_absurd_checkpoint_in_one_line(tmp_path, capsys):
    from ponogan.cli import main

    run, config_path = tiny_run(tmp_path)
    rewrite_kwargs(config_path, ngf=1000, n_blocks=60)
    status = main(["export", str(run), "--out", str(tmp_path / "g.onnx")])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and "million parameters" in err, err
    assert not (tmp_path / "g.onnx").exists()


@pytest.mark.parametrize(
    "spec, words",
    [
        ("unet_256", ["'name'", "'kwargs'"]),
        ({"name": 7}, ["'name'"]),
        ({"name": "unet_256", "kwargs": [1]}, ["kwargs", "mapping"]),
    ],
)
def test_a_malformed_generator_entry_is_one_line(tmp_path, spec, words):
    run, config_path = tiny_run(tmp_path)
    config = json.loads(config_path.read_text())
    config["generators"]["G"] = spec
    config_path.write_text(json.dumps(config))
    with pytest.raises(ValueError) as info:
        load_pretrained(run)
    assert "generator 'G'" in str(info.value) and all(w in str(info.value) for w in words), info.value
