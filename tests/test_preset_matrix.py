"""Every preset end to end, as a user runs it: train, resume, load, translate, app, export.

The presets come from ``list_presets()``, the code behind ``train.py --list-presets``, so a preset
added later is covered without editing this file. Each one is run through ``train.py``'s own entry
point (``train_cli.main``) and ``ponogan`` commands (``ponogan.cli.main``):

1. ``train.py --config <preset>`` for 2 steps (``train.stop_at_step=2`` of ``max_steps=3``): the
   training state and ``model.safetensors`` are written;
2. ``--resume`` to step 3;
3. ``TranslationPipeline.from_pretrained`` and ``ponogan translate`` on a folder of two images;
4. the app's checkpoint loader (``app_support.find_checkpoints`` / ``model_card`` / ``PipelineCache``);
5. ``ponogan export`` as an exported program and as ONNX, each checked against the PyTorch output at
   three sizes (the smallest the network runs at, a taller and a wider one, one with batch 2).

What is shrunk, and why: the budget is ~150 s for all presets on a 2-core CPU, so widths (``ngf``,
``ndf``, ``dim``, ``mlp_dim``), the number of residual blocks (``n_blocks``, ``n_res``), the
discriminator depth and the data size are overridden. Kept as the preset defines them: family,
generator and discriminator type, data mode and folder layout, norm, shortcut and layout (``official``
PONO blocks included), losses and optimizer. The glyph presets keep their 64 px images (DRIT: 128; the glyph
U-Net's ``num_downs`` 6 takes 64 px to 1x1); the public-data presets (horse2zebra, facades,
summer2winter_yosemite) run on a tiny dataset this test writes in the preset's layout (``unaligned``:
trainA/trainB/testA/testB; ``aligned``: A|B side by side in train/ and test/) at 32 px (or the
family's ``min_side``: DRIT trains at 100 px), with the U-Net's ``num_downs`` cut from 8 to 5 to match
(256 px would need 8).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from ponogan.app import support as app_support
from ponogan.cli import main as cli_main
from ponogan.cli.train import main as train_main
from ponogan.families import get_family
from ponogan.inference.export import build_translator, min_blocks
from ponogan.inference.pipeline import TranslationPipeline, image_channels
from ponogan.training import load_config
from ponogan.training.presets import find_preset, list_presets

PRESETS = sorted(list_presets())

# every run: 2 steps, then a resume to 3; nothing periodic, the end-of-run eval/samples on 2 items
LOOP = {
    "train.max_steps": 3,
    "train.save_every": 0,
    "train.sample_every": 0,
    "train.eval_every": 0,
    "train.log_every": 1,
    "train.num_samples": 2,
    "train.device": "cpu",
    "data.batch_size": 2,
    "data.eval_batch_size": 2,
    "data.eval_max_items": 2,
    "data.num_workers": 0,
}
# widths and depths per family (the discriminator keeps its type; its depth fits 32 px)
NETS = {
    "pix2pix": {"model.generator_kwargs.ngf": 4, "model.discriminator_kwargs.ndf": 4},
    "cyclegan": {
        "model.generator_kwargs.ngf": 4,
        "model.generator_kwargs.n_blocks": 1,
        "model.discriminator_kwargs.ndf": 4,
        "model.discriminator_kwargs.n_layers": 2,
        "loss.pool_size": 2,
    },
    "cut": {
        "model.generator_kwargs.ngf": 4,
        "model.generator_kwargs.n_blocks": 1,
        "model.discriminator_kwargs.ndf": 4,
        "model.discriminator_kwargs.n_layers": 2,
        "loss.nce_layers": "[stem.pad, down1.conv, down2.conv, block1]",
        "loss.num_patches": 16,
    },
    "munit": {
        "model.generator_kwargs.dim": 4,
        "model.generator_kwargs.mlp_dim": 8,
        "model.generator_kwargs.n_res": 1,
        "model.discriminator_kwargs.ndf": 4,
        "model.discriminator_kwargs.n_layers": 2,
        "model.discriminator_kwargs.n_scales": 2,
    },
    "drit": {
        "model.generator_kwargs.dim": 4,
        "model.generator_kwargs.n_res": 1,
        "model.discriminator_kwargs.ndf": 4,
        "model.discriminator_kwargs.n_layers": 2,
        "model.discriminator_kwargs.n_scales": 2,
    },
}
GLYPHS = {"data.options.length": 4, "data.options.test_jitters": 1}
SIDE = 32  # the tiny public datasets' image side (the family's min_side when larger), cropped from SIDE + 4


def _image(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def write_dataset(root, mode: str) -> None:
    """Two images per split in ``mode``'s layout: ``unaligned`` trainA/trainB/testA/testB,
    ``aligned`` train/ and test/ with A | B side by side."""
    rng = np.random.default_rng(0)
    for phase in ("train", "test"):
        for i in range(2):
            if mode == "aligned":
                (root / phase).mkdir(parents=True, exist_ok=True)
                _image(rng, 2 * SIDE + 8, SIDE + 4).save(root / phase / f"{i}.png")
            else:
                for domain in "AB":
                    (root / f"{phase}{domain}").mkdir(parents=True, exist_ok=True)
                    _image(rng, SIDE + 4, SIDE + 4).save(root / f"{phase}{domain}" / f"{i}.png")


def overrides(preset: str, tmp_path) -> list[str]:
    """The ``key=value`` overrides that shrink ``preset`` (module docstring); writes its dataset."""
    cfg = load_config(find_preset(preset))
    values = {**LOOP, **NETS[cfg.family]}
    if cfg.data.mode == "glyphs":
        values.update(GLYPHS)
    else:
        root = tmp_path / "data"
        write_dataset(root, cfg.data.mode)
        side = max(SIDE, get_family(cfg.family).min_side)  # DRIT's content D: 100 px
        folders = {"data.options.load_size": side + 4, "data.options.crop_size": side}
        values.update(folders, **{"data.root": str(root)})
        if cfg.model.generator.startswith("unet"):
            values["model.generator_kwargs.num_downs"] = 5
    return [f"{key}={value}" for key, value in values.items()]


def _sizes(module: torch.nn.Module, channels: int) -> list[tuple[int, int, int]]:
    """``(batch, H, W)``: the smallest size the network runs at, a taller and a wider one."""
    stride = module.stride
    low = min_blocks(module, channels) * stride
    return [(1, low, low), (2, low + stride, low), (1, low, low + 2 * stride)]


def _check_exports(run, tmp_path, capsys) -> None:
    """``ponogan export`` to both formats; each graph matches the eager module at three sizes."""
    pipe = TranslationPipeline.from_pretrained(run, device="cpu")
    module = build_translator(pipe, "AtoB")
    channels = image_channels(pipe.generators[pipe.route("AtoB").source])
    sizes = _sizes(module, channels)
    out = tmp_path / "model.pt2"
    assert cli_main(["export", str(run), "--format", "exported-program", "--out", str(out)]) == 0
    program = torch.export.load(str(out)).module()
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    onnx_out = tmp_path / "model.onnx"
    assert cli_main(["export", str(run), "--out", str(onnx_out)]) == 0, capsys.readouterr().err
    session = ort.InferenceSession(str(onnx_out))
    for n, h, w in sizes:
        x = torch.rand(n, channels, h, w) * 2 - 1
        with torch.no_grad():
            want = module(x)
            got = program(x)
        assert got.shape == want.shape == (n, want.shape[1], h, w)
        assert (got - want).abs().max() < 1e-5, (n, h, w)
        (got_onnx,) = session.run(None, {"x": x.numpy()})
        assert np.abs(got_onnx - want.numpy()).max() < 1e-3, (n, h, w)


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("preset", PRESETS)
def test_preset_end_to_end(preset, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a run writes nothing outside its folder; ./configs is not shadowed
    run = tmp_path / "runs" / preset
    flags = ["--config", preset, "--output-dir", str(run), *overrides(preset, tmp_path)]

    assert train_main([*flags, "train.stop_at_step=2"]) == 0, capsys.readouterr().err
    meta = json.loads((run / "config.json").read_text())
    assert meta["train"]["model"]["shortcut"] == load_config(find_preset(preset)).model.shortcut
    first = (run / "model.safetensors").read_bytes()

    assert train_main([*flags, "--resume"]) == 0, capsys.readouterr().err
    assert (run / "model.safetensors").read_bytes() != first  # step 3's weights replaced step 2's
    assert json.loads((run / "config.json").read_text())["step"] == 3

    pipe = TranslationPipeline.from_pretrained(run, device="cpu")
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    rng = np.random.default_rng(1)
    for i, (w, h) in enumerate([(40, 32), (27, 33)]):
        _image(rng, w, h).save(inputs / f"{i}.png")
    assert pipe(Image.open(inputs / "0.png")).size == (40, 32)
    out = tmp_path / "translated"
    code = cli_main(["translate", "--checkpoint", str(run), "--input", str(inputs), "--output", str(out)])
    assert code == 0, capsys.readouterr().err
    written = sorted(p for p in out.rglob("*") if p.is_file())
    assert len(written) == 2 and [Image.open(p).size for p in written] == [(40, 32), (27, 33)]

    (info,) = app_support.find_checkpoints(tmp_path / "runs")
    assert info.path == run and app_support.model_card(info.config, info.name)
    assert app_support.PipelineCache().get(info.path).family == meta["train"]["family"]

    _check_exports(run, tmp_path, capsys)
