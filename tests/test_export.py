"""``ponogan export``: ONNX (checked with onnxruntime) and torch.export programs for every family."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ponogan.cli import main as cli_main
from ponogan.export import ExportError, export
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
