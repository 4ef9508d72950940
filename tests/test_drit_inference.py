"""DRIT at inference: the pipeline's per-domain views against direct ``DritTranslator`` calls (random
codes from the seed, a reference image's attributes, both concats), ``ponogan translate`` with
``--n-styles``/``--seed``/``--style``, the app's multi-sample call, ``ponogan export`` with a fixed and
an input code, ``ponogan eval`` with FID/KID/LPIPS and diversity."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from test_metrics_cli import weights  # noqa: F401  (the fixture: test Inception and AlexNet files)

from ponogan.app.support import translate_images
from ponogan.cli import main as cli_main
from ponogan.data import pil_to_tensor, tensor_to_pil
from ponogan.inference.export import build_translator
from ponogan.inference.pipeline import TranslationPipeline
from ponogan.models import create_generator, save_pretrained

pytestmark = pytest.mark.usefixtures("one_thread")

DATA = {"mode": "glyphs", "image_size": 32, "test_jitters": 1, "paired": False}


def tiny_run(path, concat: int = 0, shortcut: str | None = "ms"):
    torch.manual_seed(0)
    gen = create_generator("drit", dim=4, n_res=1, concat=concat, shortcut=shortcut)
    return save_pretrained(path, {"gen": gen}, {"family": "drit", "data": DATA, "step": 3})


def _image(seed: int, w: int, h: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def _same(a: Image.Image, b: Image.Image) -> bool:
    return a.size == b.size and np.array_equal(np.asarray(a), np.asarray(b))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return tiny_run(tmp_path_factory.mktemp("drit") / "run")


@pytest.mark.parametrize("concat", [0, 1])
def test_pipeline_equals_the_translator_called_directly(tmp_path, concat):
    """Random codes N(0, I) from the seed (A->B) and a reference's attributes (B->A, encoded by A's
    attribute encoder; concat 1: its mean) give bit-equal images; odd sizes come back at their size."""
    pipe = TranslationPipeline.from_pretrained(tiny_run(tmp_path / "run", concat), device="cpu")
    gen = pipe.generators["gen"]
    assert pipe.multimodal and set(pipe.generators) == {"gen", "drit_a", "drit_b"}
    x_img, ref = _image(0, 64, 48), _image(1, 32, 32)
    x = pil_to_tensor(x_img, "RGB")[None]
    outputs = pipe(x_img, seed=7, n_styles=3)
    codes = torch.randn(3, gen.attribute_dim, generator=torch.Generator().manual_seed(7))
    with torch.inference_mode():
        content, moments = gen.encode_content(x, "a")
        want = [tensor_to_pil(gen.decode(content, z[None], moments, "b")[0]) for z in codes]
        content_b, moments_b = gen.encode_content(x, "b")
        z_ref = gen.encode_attribute(pil_to_tensor(ref, "RGB")[None], "a", sample=False)[0]
        guided = tensor_to_pil(gen.decode(content_b, z_ref, moments_b, "a")[0])
    assert all(_same(o, w) for o, w in zip(outputs, want, strict=True))
    assert not _same(outputs[0], outputs[1])  # different codes, different outputs
    assert _same(pipe(x_img, direction="BtoA", style=ref), guided)
    assert _same(pipe(x_img, direction="BtoA", style=ref), guided)  # concat 1: the mean, no sample
    assert [img.size for img in pipe([_image(2, 37, 29), _image(3, 17, 20)])] == [(37, 29), (17, 20)]
    assert len(pipe.moments(x_img)) == 3 and pipe.stride() == 16


@pytest.mark.slow
def test_translate_app_and_export(run, tmp_path, capsys):
    """``ponogan translate`` with several seeded codes and with a reference, the app's call for one
    input (several samples), and both export modes against the pipeline's modules."""
    pipe = TranslationPipeline.from_pretrained(run, device="cpu")
    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    for i, (w, h) in enumerate([(40, 32), (27, 33)]):
        _image(i, w, h).save(inputs / f"{i}.png")
    _image(9, 32, 32).save(tmp_path / "ref.png")
    base = ["translate", "--checkpoint", str(run), "--input", str(inputs), "--dtype", "float32"]
    assert cli_main([*base, "--output", str(out), "--n-styles", "2", "--seed", "5"]) == 0
    first = Image.open(inputs / "0.png").convert("RGB")
    want = pipe(first, seed=5, n_styles=2)
    assert _same(Image.open(out / "0_s0.png"), want[0]) and _same(Image.open(out / "0_s1.png"), want[1])
    assert cli_main([*base, "--output", str(tmp_path / "ref_out"), "--style", str(tmp_path / "ref.png")]) == 0
    guided = Image.open(tmp_path / "ref_out" / "0.png")
    assert _same(guided, pipe(first, style=Image.open(tmp_path / "ref.png").convert("RGB")))
    capsys.readouterr()
    bad = [*base, "--output", str(tmp_path / "x"), "--style", str(tmp_path / "ref.png"), "--n-styles", "2"]
    assert cli_main(bad) == 2 and "drop --n-styles" in capsys.readouterr().err

    samples = translate_images(pipe, [first], "AtoB", "eval", seed=0, n_styles=3)  # the app's call
    assert len(samples) == 3 and not _same(samples[0], samples[2])

    x = torch.rand(2, 3, 32, 48) * 2 - 1
    fixed = build_translator(pipe, "AtoB", style="fixed", seed=3)
    code = torch.randn(1, 8, 1, 1, generator=torch.Generator().manual_seed(3))
    source, target = pipe.generators["drit_a"], pipe.generators["drit_b"]
    with torch.no_grad():
        content, moments, _ = source.encode(x)
        assert torch.equal(fixed(x), target.decode(content, moments, code.expand(2, -1, -1, -1)))
    program_path = tmp_path / "drit.pt2"
    args = [
        "export",
        str(run),
        "--format",
        "exported-program",
        "--style",
        "input",
        "--out",
        str(program_path),
    ]
    assert cli_main(args) == 0, capsys.readouterr().err
    program = torch.export.load(str(program_path)).module()
    codes = torch.randn(2, 8, 1, 1)
    with torch.no_grad():
        want = build_translator(pipe, "AtoB", style="input")(x, codes)
        assert (program(x, codes) - want).abs().max() < 1e-5
        assert program(x, codes).shape == (2, 3, 32, 48)


@pytest.mark.slow
def test_eval_scores_and_diversity(run, tmp_path, weights, capsys):  # noqa: F811
    out = tmp_path / "eval"
    args = [
        "eval", "--no-progress", "--checkpoint", str(run), "--data", "glyphs", "--out", str(out),
        "--metrics", "fid,kid,lpips,diversity", "--n-styles", "2", "--kid-subset-size", "4",
        "--fid-weights", str(weights["fid"]), "--lpips-weights", str(weights["lpips"]),
    ]  # fmt: skip
    assert cli_main(args) == 0, capsys.readouterr().err
    values = json.loads((out / "metrics.json").read_text())
    assert {"fid", "kid", "lpips", "diversity"} <= set(values)
    assert values["diversity"] > 0 and np.isfinite(values["fid"])
    assert len(list((out / "fake").glob("*_s1.png"))) == len(list((out / "fake").glob("*_s0.png"))) > 0
