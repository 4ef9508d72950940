"""`ponogan eval`: folder and run evaluation end to end, reports, missing weights, exit codes."""

import json

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image, ImageColor

from ponogan.cli import main
from ponogan.metrics import diversity_lpips, load_lpips, lpips_distance, paired_metrics
from ponogan.metrics.images import read_image
from ponogan.metrics.inception import fid_inception_v3
from ponogan.metrics.report import LABEL_COLOR, write_report


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """Test weight files: FID Inception with kaiming convs, a randomly initialised AlexNet."""
    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    inception = fid_inception_v3()
    for module in inception.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    torch.save(inception.state_dict(), folder / "inception.pth")
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), folder / "alexnet.pth")
    return {"fid": folder / "inception.pth", "lpips": folder / "alexnet.pth"}


@pytest.fixture(autouse=True)
def _empty_torch_home(tmp_path, monkeypatch):
    """No weight file in the hub cache, and any download attempt fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


def _save(folder, name, array):
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(folder / name)


def _glyph(shift, size=32):
    """A dark square on white, (size, size, 3) uint8."""
    image = np.full((size, size, 3), 255, np.uint8)
    image[8:20, 8 + shift : 20 + shift] = 0
    return image


def _folders(tmp_path, styled=False):
    real, fake, inputs = tmp_path / "real", tmp_path / "fake", tmp_path / "input"
    for i in range(2):
        _save(real, f"g{i}.jpg" if i else f"g{i}.png", _glyph(0))  # extensions may differ from the fakes'
        _save(inputs, f"g{i}.png", _glyph(0)[..., 0])
        if styled:
            for k in range(2):
                _save(fake, f"g{i}_s{k}.png", _glyph(2 * k + i))
        else:
            _save(fake, f"g{i}.png", _glyph(2 + i))
    return real, fake, inputs


def label_pixels(image: Image.Image) -> int:
    """Pixels of an RGB image near the grid's label colour (blue), which gray glyph cells never are."""
    r, g, b = ImageColor.getrgb(LABEL_COLOR)
    pixels = np.asarray(image.convert("RGB")).astype(int)
    return int((np.abs(pixels - [r, g, b]).max(axis=-1) < 60).sum())


def _eval(*args):
    return main(["eval", "--no-progress", *map(str, args)])


@pytest.mark.slow
def test_folder_eval_with_all_weights(tmp_path, weights, capsys):
    real, fake, inputs = _folders(tmp_path)
    out = tmp_path / "out"
    rc = _eval(
        "--real", real, "--fake", fake, "--input", inputs, "--out", out,
        "--metrics", "fid,lpips,l1,psnr,ssim,iou,centroid",
        "--fid-weights", weights["fid"], "--lpips-weights", weights["lpips"],
        "--cache-dir", tmp_path / "cache",
    )  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    values = json.loads((out / "metrics.json").read_text())
    assert list(values) == ["fid", "lpips", "l1", "psnr", "ssim", "iou", "centroid"]
    assert np.isfinite(values["fid"]) and values["fid"] > 0
    fakes = torch.cat([read_image(fake / "g0.png"), read_image(fake / "g1.png")])
    reals = torch.cat([read_image(real / "g0.png"), read_image(real / "g1.jpg")])
    expected = paired_metrics(fakes, reals, ("l1", "psnr", "ssim", "iou", "centroid"))
    assert {k: values[k] for k in expected} == pytest.approx(expected, rel=1e-5)
    assert values["centroid"] == pytest.approx(2.5, abs=0.6)  # squares shifted by 2 and 3 px
    model = load_lpips("alex", weights["lpips"])
    assert values["lpips"] == pytest.approx(
        (lpips_distance(model, fakes[:1], reals[:1]) + lpips_distance(model, fakes[1:], reals[1:])) / 2,
        rel=1e-5,
    )
    markdown = (out / "metrics.md").read_text()
    assert "| fid |" in markdown and "| ssim |" in markdown and "pairs: 2" in markdown
    grid = Image.open(out / "grid.png").convert("RGB")
    # input | output | target, 2 rows of 32 px cells, plus the label strips (column names, pair keys)
    assert grid.width > 3 * 32 + 4 * 2 and grid.height > 2 * 32 + 3 * 2
    assert label_pixels(grid) > 20  # the labels were drawn (in LABEL_COLOR; the glyphs are gray)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1


def test_missing_weights_skip_those_metrics_only(tmp_path, capsys):
    real, fake, _ = _folders(tmp_path)
    _save(fake, "unpaired_extra.png", _glyph(5))  # would count for FID, not for the paired metrics
    out = tmp_path / "out"
    rc = _eval("--real", real, "--fake", fake, "--out", out)  # default metrics: fid, lpips, l1, psnr, ssim
    err = capsys.readouterr().err
    assert rc == 1
    assert "Traceback" not in err
    for text in (
        "pt_inception-2015-12-05-6726825d.pth",
        "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/",
        "alexnet-owt-7be5be79.pth",
        "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
        str(tmp_path / "torch_home" / "hub" / "checkpoints"),
    ):
        assert text in err
    assert list(json.loads((out / "metrics.json").read_text())) == ["l1", "psnr", "ssim"]
    markdown = (out / "metrics.md").read_text()
    assert "| fid | skipped |" in markdown and "| lpips | skipped |" in markdown
    assert "(3 images)" in markdown and "pairs: 2" in markdown


def test_nothing_computed_exits_1(tmp_path, capsys):
    real, fake, _ = _folders(tmp_path)
    rc = _eval("--real", real, "--fake", fake, "--out", tmp_path / "out", "--metrics", "fid")
    assert rc == 1
    assert "pt_inception-2015-12-05-6726825d.pth" in capsys.readouterr().err
    assert json.loads((tmp_path / "out" / "metrics.json").read_text()) == {}


def test_styled_fakes_give_pairs_and_diversity(tmp_path, weights, capsys):
    real, fake, _ = _folders(tmp_path, styled=True)
    out = tmp_path / "out"
    rc = _eval(
        "--real", real, "--fake", fake, "--out", out, "--metrics", "l1,diversity",
        "--lpips-weights", weights["lpips"],
    )  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    values = json.loads((out / "metrics.json").read_text())
    s0 = torch.cat([read_image(fake / "g0_s0.png"), read_image(fake / "g1_s0.png")])
    s1 = torch.cat([read_image(fake / "g0_s1.png"), read_image(fake / "g1_s1.png")])
    reals = torch.cat([read_image(real / "g0.png"), read_image(real / "g1.jpg")])
    assert values["l1"] == pytest.approx(paired_metrics(s0, reals, ("l1",))["l1"], rel=1e-6)
    model = load_lpips("alex", weights["lpips"])
    assert values["diversity"] == pytest.approx(diversity_lpips(model, [s0, s1]), rel=1e-5)
    assert values["diversity"] > 0


def test_no_pairs_skips_paired_metrics(tmp_path, capsys):
    real, _, _ = _folders(tmp_path)
    other = tmp_path / "other"
    _save(other, "different_name.png", _glyph(1))
    rc = _eval("--real", real, "--fake", other, "--out", tmp_path / "out", "--metrics", "l1,psnr")
    assert rc == 1
    assert "shares a relative path and stem" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--fake", "x"], "needs both --real and --fake"),
        (["--real", "x", "--fake", "y", "--checkpoint", "z"], "either --real"),
        (["--real", "{real}", "--fake", "{real}", "--metrics", "fid,bogus"], "unknown metric"),
        (["--real", "{real}", "--fake", "{missing}"], "does not exist"),
        (["--checkpoint", "{missing}", "--data", "glyphs"], "does not exist"),
    ],
)
def test_usage_errors_exit_2(tmp_path, capsys, args, message):
    real, _, _ = _folders(tmp_path)
    args = [a.format(real=real, missing=tmp_path / "missing") for a in args]
    assert _eval(*args, "--out", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_write_report_files(tmp_path):
    rows = [[Image.new("L", (8, 6), 0), Image.new("RGB", (16, 12), "red")]] * 3
    files = write_report(
        tmp_path, {"psnr": 21.5, "l1": 0.25}, skipped={"fid": "weights missing\nmore"}, grid_rows=rows
    )
    assert json.loads(files["json"].read_text()) == {"psnr": 21.5, "l1": 0.25}
    lines = files["markdown"].read_text().splitlines()
    assert lines[2].startswith("| psnr | 21.5000 | higher |")
    assert lines[3].startswith("| l1 | 0.2500 | lower |")
    assert lines[4] == "| fid | skipped | | weights missing |"
    assert Image.open(files["grid"]).size == (2 * 8 + 3 * 2, 3 * 6 + 4 * 2)


def _tiny_run(path, family):
    from ponogan.models import create_generator, save_pretrained

    if family == "munit":
        generators = {
            r: create_generator("munit", dim=4, n_res=1, mlp_dim=8, style_dim=4) for r in ("gen_a", "gen_b")
        }
        data = {"mode": "glyphs", "image_size": 32, "test_jitters": 1, "paired": False}
    else:
        net = create_generator("unet_128", ngf=4, num_downs=4, shortcut="ms", in_channels=1, out_channels=1)
        generators = {"G": net}
        data = {"mode": "glyphs", "image_size": 32, "input_nc": 1, "output_nc": 1, "test_jitters": 1}
    return save_pretrained(path, generators, {"family": family, "data": data})


@pytest.mark.slow
def test_checkpoint_eval_on_glyphs(tmp_path, capsys):
    run = _tiny_run(tmp_path / "run", "pix2pix")
    out = tmp_path / "out"
    args = ["--checkpoint", run, "--data", "glyphs", "--out", out, "--metrics", "l1,psnr,ssim,iou,centroid"]
    assert _eval(*args, "--record", "--device", "cpu") == 0, capsys.readouterr().err
    for folder in ("input", "fake", "real", "mask"):
        assert len(list((out / folder).glob("*.png"))) == 11  # 11 held-out characters x 1 placement
    values = json.loads((out / "metrics.json").read_text())
    assert set(values) == {"l1", "psnr", "ssim", "iou", "centroid"}
    assert json.loads((run / "config.json").read_text())["metrics"] == values
    assert (out / "grid.png").is_file()
    capsys.readouterr()
    assert _eval(*args) == 2  # earlier images would mix into the new evaluation
    assert "--overwrite" in capsys.readouterr().err
    assert _eval(*args, "--overwrite") == 0


@pytest.mark.slow
def test_checkpoint_eval_munit_diversity(tmp_path, weights, capsys):
    run = _tiny_run(tmp_path / "munit", "munit")
    out = tmp_path / "out"
    rc = _eval(
        "--checkpoint", run, "--data", "glyphs", "--out", out, "--metrics", "l1,diversity",
        "--num-styles", "2", "--lpips-weights", weights["lpips"],
    )  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    assert len(list((out / "fake").glob("*_s1.png"))) == 11
    assert json.loads((out / "metrics.json").read_text())["diversity"] > 0


def test_target_masks_folder_is_used_for_structure_metrics(tmp_path, capsys):
    real, fake, _ = _folders(tmp_path)
    blank = tmp_path / "blank"  # targets with no ink: only the masks say where the glyph is
    for name in ("g0.png", "g1.png"):
        _save(blank, name, np.full((32, 32, 3), 255, np.uint8))
        mask = np.zeros((32, 32), np.uint8)
        mask[8:20, 8:20] = 255
        _save(tmp_path / "masks", name, mask)
    base = ["--real", blank, "--fake", fake, "--metrics", "iou"]
    assert _eval(*base, "--out", tmp_path / "a") == 0
    assert json.loads((tmp_path / "a" / "metrics.json").read_text())["iou"] == 0.0
    assert _eval(*base, "--masks", tmp_path / "masks", "--out", tmp_path / "b") == 0
    # squares shifted by 2 and 3 px against the 12 px mask: IoU 120/168 and 108/180
    expected = (12 * 10 / (12 * 14) + 12 * 9 / (12 * 15)) / 2
    assert json.loads((tmp_path / "b" / "metrics.json").read_text())["iou"] == pytest.approx(expected)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_requested_without_cuda_exits_2(tmp_path, capsys):
    real, fake, _ = _folders(tmp_path)
    assert (
        _eval("--real", real, "--fake", fake, "--out", tmp_path / "o", "--metrics", "l1", "--device", "cuda")
        == 2
    )
    assert "CUDA is not available" in capsys.readouterr().err
