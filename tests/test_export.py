"""``ponogan export``: ONNX (checked with onnxruntime) and torch.export programs for every family."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ponogan.cli import main as cli_main
from ponogan.inference.export import ExportError, export
from ponogan.models import create_generator, save_pretrained

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

RUNS = {
    "pix2pix": lambda: {"G": create_generator("unet_128", ngf=4, num_downs=3, shortcut="ms")},
    "cyclegan": lambda: {
        role: create_generator("resnet_6blocks", ngf=4, n_blocks=1, shortcut="dms", layout="official")
        for role in ("G_A", "G_B")
    },
    "munit": lambda: {
        role: create_generator("munit", dim=4, mlp_dim=8, n_res=1, style_downsample=2)
        for role in ("gen_a", "gen_b")
    },
}


def _run(tmp_path, family):
    torch.manual_seed(0)
    gens = RUNS[family]()
    for g in gens.values():
        for name, buf in g.named_buffers():
            if name.endswith("running_var"):
                buf.uniform_(0.5, 2.0)
    return save_pretrained(tmp_path / family, gens, {"family": family}), gens


@pytest.mark.parametrize(
    "family, direction, style",
    [("pix2pix", "AtoB", "fixed"), ("cyclegan", "BtoA", "fixed"), ("munit", "AtoB", "input")],
)
def test_onnx_matches_pytorch_on_several_sizes(tmp_path, family, direction, style):
    run, gens = _run(tmp_path, family)
    out = export(run, tmp_path / "model.onnx", direction=direction, style=style)
    sess = ort.InferenceSession(str(out))
    stride = 8 if family == "pix2pix" else 4
    for n, h, w in ((1, 2, 3), (3, 5, 2)):
        x = torch.rand(n, 3, h * stride, w * stride) * 2 - 1
        feed = {"x": x.numpy()}
        with torch.no_grad():
            if family == "munit":
                style_code = torch.randn(n, 8, 1, 1)
                feed["style"] = style_code.numpy()
                content, moments, _ = gens["gen_a"].eval().encode(x)
                want = gens["gen_b"].eval().decode(content, moments, style_code)
            else:
                want = gens["G" if family == "pix2pix" else "G_B"].eval()(x)
        (got,) = sess.run(None, feed)
        assert got.shape == tuple(want.shape)
        assert np.abs(got - want.numpy()).max() < 1e-3


# runs shaped as the glyph presets (depth, layout, strides), at tiny widths: the sizes under test are
# the presets' own (64 px for the U-Net with num_downs 6, 64 and 128 for MUNIT with style stride 8)
PRESET_LIKE = {
    "pix2pix": lambda: {"G": create_generator("unet_256", ngf=4, num_downs=6, shortcut="ms")},
    "cyclegan": lambda: {
        role: create_generator("resnet_6blocks", ngf=4, n_blocks=1, shortcut="ms", layout="official")
        for role in ("G_A", "G_B")
    },
    "munit": lambda: {
        role: create_generator(
            "munit", dim=4, mlp_dim=8, n_res=1, style_downsample=3, shortcut="ms", layout="official"
        )
        for role in ("gen_a", "gen_b")
    },
}


def _want(gens, family, x, style=None):
    """The PyTorch output of the exported direction (AtoB; MUNIT with ``style``)."""
    with torch.no_grad():
        if family == "munit":
            content, moments, _ = gens["gen_a"].eval().encode(x)
            return gens["gen_b"].eval().decode(content, moments, style)
        return gens["G" if family == "pix2pix" else "G_A"].eval()(x)


@pytest.mark.parametrize(
    "family, sizes",
    [
        ("pix2pix", [(64, 64), (128, 64), (64, 192)]),
        ("cyclegan", [(32, 48), (64, 64), (20, 36)]),
        pytest.param("munit", [(64, 64), (128, 128), (16, 48)], marks=pytest.mark.slow),
    ],
)
def test_exported_program_accepts_sizes_other_than_the_example(tmp_path, family, sizes):
    """H and W are dynamic multiples of the stride down to the smallest size the network runs at
    (64 px for this U-Net is one stride: its innermost level is 1x1), and the batch is dynamic."""
    torch.manual_seed(0)
    gens = PRESET_LIKE[family]()
    run = save_pretrained(tmp_path / family, gens, {"family": family})
    program = torch.export.load(
        str(export(run, tmp_path / "m.pt2", format="exported-program", seed=1))
    ).module()
    style = torch.randn(1, 8, 1, 1, generator=torch.Generator().manual_seed(1))
    for n, (h, w) in zip((1, 3, 2), sizes, strict=True):
        x = torch.rand(n, 3, h, w) * 2 - 1
        with torch.no_grad():
            got = program(x)
        want = _want(gens, family, x, style.expand(n, -1, -1, -1))
        assert got.shape == want.shape == (n, 3, h, w)
        assert (got - want).abs().max() < 1e-5


@pytest.mark.slow
def test_onnx_of_a_munit_run_with_style_stride_8_runs_at_64_and_128(tmp_path):
    """MUNIT's style path pads to its own stride (8 here): the export's stride is the larger one,
    as the pipeline's, and is written in the metadata."""
    torch.manual_seed(0)
    gens = PRESET_LIKE["munit"]()
    run = save_pretrained(tmp_path / "munit", gens, {"family": "munit"})
    sess = ort.InferenceSession(str(export(run, tmp_path / "m.onnx", style="input")))
    assert sess.get_modelmeta().custom_metadata_map["ponogan.stride"] == "8"
    for n, side in ((1, 64), (2, 128)):
        x, style = torch.rand(n, 3, side, side) * 2 - 1, torch.randn(n, 8, 1, 1)
        (got,) = sess.run(None, {"x": x.numpy(), "style": style.numpy()})
        assert np.abs(got - _want(gens, "munit", x, style).numpy()).max() < 1e-3


def test_exported_program_round_trip_with_fixed_munit_style(tmp_path):
    run, gens = _run(tmp_path, "munit")
    out = export(run, tmp_path / "munit.pt2", format="exported-program", seed=3)
    program = torch.export.load(str(out)).module()
    x = torch.rand(2, 3, 12, 20) * 2 - 1
    style = torch.randn(1, 8, 1, 1, generator=torch.Generator().manual_seed(3)).expand(2, -1, -1, -1)
    with torch.no_grad():
        content, moments, _ = gens["gen_a"].eval().encode(x)
        want = gens["gen_b"].eval().decode(content, moments, style)
        assert (program(x) - want).abs().max() < 1e-5


def test_export_refuses_to_overwrite_and_bad_options(tmp_path, capsys):
    run, _ = _run(tmp_path, "cyclegan")
    target = tmp_path / "mine.onnx"
    target.write_text("user file")
    code = cli_main(["export", str(run), "--out", str(target)])
    assert code == 2 and "exists" in capsys.readouterr().err and target.read_text() == "user file"
    with pytest.raises(ExportError, match="MUNIT"):
        export(run, tmp_path / "x.onnx", style="input")
    code = cli_main(["export", str(tmp_path / "nothing"), "--out", str(tmp_path / "y.onnx")])
    assert code == 2 and capsys.readouterr().err.count("\n") == 1


def test_export_out_that_is_a_folder_or_contradicts_the_format_is_refused(tmp_path, capsys):
    """One ``error:`` line, exit 2, nothing written: an existing folder (with or without
    --overwrite), ``.pt2`` with onnx, ``.onnx`` with exported-program."""
    run, _ = _run(tmp_path, "cyclegan")
    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    cases = [
        (["--out", str(folder)], "folder"),
        (["--out", str(folder), "--overwrite"], "folder"),
        (["--out", str(tmp_path / "x.pt2")], "exported-program"),
        (["--out", str(tmp_path / "x.onnx"), "--format", "exported-program"], "onnx"),
    ]
    for flags, word in cases:
        assert cli_main(["export", str(run), *flags]) == 2, flags
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and word in err, (flags, err)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
    assert (folder / "keep.txt").read_text() == "mine"
