"""Pictures of training: losses.png / metrics.png of a run, ``ponogan plot``, labelled sample grids,
the tolerant log reader and the smoothing, the TensorBoard tracker, and plotting failures that must
not stop a run."""

import errno
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from accelerate import Accelerator
from accelerate.tracking import GeneralTracker
from PIL import Image
from test_train_run import (
    poison_pix2pix_l1_at_step_3,
    tiny,
)  # tests/ is on sys.path (pytest rootdir-less test modules)

import ponogan.training.loop as loop
from ponogan.cli import main as ponogan_main
from ponogan.core.atomic import temp_target
from ponogan.data import build_dataset
from ponogan.training import NonFiniteLossError, create_trainer, train
from ponogan.training.plots import (
    PlotError,
    compare_runs,
    default_smoothing,
    draw_losses,
    draw_metrics,
    loss_group,
    loss_series,
    lr_series,
    metric_series,
    read_log,
    smooth,
)
from ponogan.training.samples import labelled_grid
from ponogan.training.state import is_temp_name

ROOT = Path(__file__).resolve().parents[1]
TILE = 32  # tiny runs' image size


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny pix2pix run (evaluated at steps 2 and 3) and a tiny CycleGAN run, trained once."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        root = tmp_path_factory.mktemp("runs")
        steps = {"train.max_steps": 3, "train.eval_every": 2, "train.sample_every": 2}
        train(tiny("pix2pix", root / "p2p", None, **steps))
        train(tiny("cyclegan", root / "cyc", None, **steps))
    finally:
        torch.set_num_threads(threads)
    return {"pix2pix": root / "p2p", "cyclegan": root / "cyc"}


def _png(path: Path) -> np.ndarray:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"))


def _drawn(pixels: np.ndarray, min_width: int = 300, min_height: int = 200) -> None:
    """A real picture: big enough, with more than a handful of colours (not a blank canvas)."""
    assert pixels.shape[1] >= min_width and pixels.shape[0] >= min_height, pixels.shape
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20


# ---------------------------------------------------------------- a run's pictures
def test_tiny_runs_draw_losses_and_metrics(runs):
    for family, run in runs.items():
        losses = run / "losses.png"
        assert losses.stat().st_size > 10_000, family
        _drawn(_png(losses))
        metrics = run / "metrics.png"  # the glyph test split is paired for every family: evaluated
        _drawn(_png(metrics))
        assert not [p.name for p in run.iterdir() if p.name.startswith(".")], "temp files left behind"
    records = read_log(runs["pix2pix"] / "log.jsonl")
    assert [r["step"] for r in records if "eval" in r] == [2, 3]
    assert set(metric_series(records)) == {"l1", "psnr", "ssim"}


def test_metrics_png_only_with_evaluations_and_a_failed_write_leaves_nothing(tmp_path, monkeypatch):
    records = [{"step": 1, "lr": 1e-3, "G_GAN": 1.0, "D_real": 0.5}]
    assert draw_metrics(records, tmp_path / "metrics.png") is None
    assert not (tmp_path / "metrics.png").exists()
    # pictures go through ponogan.core.atomic: its temp name (the one a kill leaves, which the run-folder
    # sweeper must know), and nothing at all after a failed write
    from matplotlib.figure import Figure

    temps = []

    def disk_full(fig, fname, **kwargs):
        temps.append(Path(fname))
        Path(fname).write_bytes(b"half a PNG")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", disk_full)
    with pytest.raises(OSError, match="No space"):
        draw_losses(records, tmp_path / "losses.png")
    assert temp_target(temps[0].name) == "losses.png" and temps[0].parent == tmp_path
    assert is_temp_name(temps[0].name)  # the run-folder sweeper removes it, check_run_dir ignores it
    assert list(tmp_path.iterdir()) == []


def test_plotting_failure_does_not_stop_training(tmp_path, monkeypatch, capsys):
    calls = []

    def broken(run_dir):
        calls.append(run_dir)
        raise RuntimeError("no fonts today\nsecond line of the error")

    monkeypatch.setattr(loop, "write_run_plots", broken)
    torch.set_num_threads(1)
    result = train(tiny("pix2pix", tmp_path / "run", None, **{"train.sample_every": 1}))
    assert result.step == 2 and result.stopped_by == "max_steps"
    assert (tmp_path / "run" / "model.safetensors").is_file()
    assert len(calls) == 2  # after the samples of step 1, and at the end
    err = capsys.readouterr().err.splitlines()  # (splits at the progress bar's carriage returns too)
    warnings = [line for line in err if line.startswith("warning: could not draw")]
    assert len(warnings) == 2 and all("no fonts today" in w and "second line" not in w for w in warnings)
    assert not (tmp_path / "run" / "losses.png").exists()


def test_a_nan_stop_still_draws_the_curves_up_to_it(tmp_path, monkeypatch):
    poison_pix2pix_l1_at_step_3(monkeypatch)
    torch.set_num_threads(1)
    with pytest.raises(NonFiniteLossError):
        train(tiny("pix2pix", tmp_path / "run", None, **{"train.max_steps": 4}))
    _drawn(_png(tmp_path / "run" / "losses.png"))


# ---------------------------------------------------------------- reading and smoothing
def test_log_reader_skips_a_truncated_last_line_and_garbage(tmp_path):
    log = tmp_path / "log.jsonl"
    lines = [
        {"step": 1, "epoch": 0, "lr": 2e-4, "time_s": 0.1, "G_GAN": 0.7, "G_L1": 40.0, "D_real": 0.3},
        {"step": 2, "epoch": 0, "lr": 1e-4, "time_s": 0.2, "G_GAN": 0.6, "G_L1": 30.0, "D_real": 0.4},
        {"step": 2, "eval": {"l1": 0.2, "psnr": 12.5, "ssim": 0.4}},
    ]
    text = "".join(json.dumps(r) + "\n" for r in lines)
    log.write_text(text[:40] + "\n" + "[1, 2]\n\n" + '{"epoch": 3}\n' + text + '{"step": 3, "G_GAN": 0.')
    records = read_log(log)
    assert records == lines
    assert loss_series(records) == {
        "G_GAN": ([1, 2], [0.7, 0.6]),
        "G_L1": ([1, 2], [40.0, 30.0]),
        "D_real": ([1, 2], [0.3, 0.4]),
    }
    assert lr_series(records) == ([1, 2], [2e-4, 1e-4])
    assert metric_series(records) == {"l1": ([2], [0.2]), "psnr": ([2], [12.5]), "ssim": ([2], [0.4])}
    assert [loss_group(n) for n in ("G_GAN", "D_real", "D_A_gp", "cycle_A", "recon_x", "D")] == [
        "generator",
        "discriminator",
        "discriminator",
        "generator",
        "generator",
        "discriminator",
    ]


def test_smoothing_is_a_debiased_ema_that_skips_non_finite_values():
    assert smooth([3.0, 3.0, 3.0], 0.9) == pytest.approx([3.0, 3.0, 3.0])  # no pull towards 0
    assert smooth([0.0, 10.0], 0.5) == pytest.approx([0.0, 5.0 / 0.75])
    assert smooth([1.0, 5.0, 2.0], 0.0) == [1.0, 5.0, 2.0]
    with_nan = smooth([2.0, math.nan, 4.0], 0.5)
    assert math.isnan(with_nan[1]) and with_nan[2] == pytest.approx((0.25 * 2 + 0.5 * 4) / 0.75)
    noisy = [float(i % 2) for i in range(200)]  # 0, 1, 0, 1, ...
    assert max(smooth(noisy, 0.9)[100:]) - min(smooth(noisy, 0.9)[100:]) < 0.2
    assert default_smoothing(5) == 0.0 and default_smoothing(100) == pytest.approx(0.9)
    assert default_smoothing(10**6) == 0.99
    with pytest.raises(PlotError, match="smoothing"):
        smooth([1.0], 1.0)


# ---------------------------------------------------------------- ponogan plot
def test_plot_command_compares_runs_and_never_overwrites(runs, tmp_path, capsys):
    out = tmp_path / "compare.png"
    args = ["plot", str(runs["pix2pix"]), str(runs["cyclegan"]), "--out", str(out)]
    assert ponogan_main(args) == 0
    first = out.read_bytes()
    _drawn(_png(out), min_width=800, min_height=800)  # a panel per loss name of both runs + metrics
    capsys.readouterr()

    assert ponogan_main(args) == 2  # refuses to replace it
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "already exists" in err and err.count("\n") == 1
    assert out.read_bytes() == first

    assert ponogan_main([*args, "--overwrite", "--metric", "l1", "--loss", "G_GAN", "G_A"]) == 0
    assert out.read_bytes() != first
    smaller = _png(out)
    assert smaller.shape[0] < _png_shape(first)[0]  # 3 panels instead of a dozen

    assert ponogan_main([*args, "--overwrite", "--metric", "fid"]) == 2
    assert "fid" in capsys.readouterr().err


def _png_shape(data: bytes) -> tuple[int, int]:
    import io

    with Image.open(io.BytesIO(data)) as image:
        return image.height, image.width


def test_plot_command_errors_are_one_line(runs, tmp_path, capsys, monkeypatch):
    empty = tmp_path / "not_a_run"
    empty.mkdir()
    monkeypatch.chdir(tmp_path)
    assert ponogan_main(["plot", str(runs["pix2pix"]), str(empty)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not_a_run has no log.jsonl" in err
    assert not (tmp_path / "plot.png").exists()
    assert ponogan_main(["plot", str(tmp_path / "missing")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert ponogan_main(["plot", str(runs["pix2pix"]), "--out", "x.jpg"]) == 2
    assert ".png" in capsys.readouterr().err
    assert ponogan_main(["plot", str(runs["pix2pix"])]) == 0  # default: plot.png in the current folder
    _png(tmp_path / "plot.png")


def test_plot_help_imports_neither_torch_nor_matplotlib():
    code = (
        "import sys, contextlib, io\nfrom ponogan.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n        main(['plot', '--help'])\n    except SystemExit:\n        pass\n"
        "print(sorted(m for m in ('torch', 'matplotlib', 'numpy') if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_compare_runs_needs_something_to_draw(tmp_path):
    with pytest.raises(PlotError, match="nothing to draw"):
        compare_runs([("a", [{"step": 1, "epoch": 0}])], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


# ---------------------------------------------------------------- sample grids
def _header(pixels: np.ndarray, items: int) -> np.ndarray:
    body = items * (TILE + 2) + 2
    assert pixels.shape[0] > body + 6, "no header row above the tiles"
    return pixels[: pixels.shape[0] - body]


def test_cyclegan_sample_grid_has_six_labelled_columns(runs):
    pixels = _png(runs["cyclegan"] / "samples" / "step_000003.png")
    assert pixels.shape[1] == 6 * (TILE + 2) + 2  # one item per row: 6 tiles and their padding
    header = _header(pixels, items=2)
    for column in range(6):  # every column has its label: dark text on the white header
        cell = header[:, 2 + column * (TILE + 2) : 2 + column * (TILE + 2) + TILE]
        assert (cell.min(axis=2) < 100).sum() > 10, f"column {column} has no label"
    # columns 0 and 3 are the real test images A and B of the first sample item
    test_item = build_dataset("glyphs", None, "test", tiny("cyclegan", runs["cyclegan"]).data.options)[0]
    top = header.shape[0] + 2
    for column, key in ((0, "A"), (3, "B")):
        tile = pixels[top : top + TILE, 2 + column * (TILE + 2) : 2 + column * (TILE + 2) + TILE]
        expected = ((test_item[key].clamp(-1, 1) * 0.5 + 0.5) * 255).round().permute(1, 2, 0).numpy()
        assert np.abs(tile.astype(float) - expected).max() <= 1, key


def test_pix2pix_grid_keeps_two_items_per_row(runs):
    pixels = _png(runs["pix2pix"] / "samples" / "step_000003.png")
    assert pixels.shape[1] == 2 * 3 * (TILE + 2) + 2  # input | output | target, twice
    header = _header(pixels, items=1)
    assert (header.min(axis=2) < 100).sum() > 30


@pytest.mark.parametrize("family", ["pix2pix", "cyclegan", "munit"])
def test_sample_columns_of_each_family(tmp_path, family):
    torch.set_num_threads(1)
    cfg = tiny(family, tmp_path / "run", None if family == "pix2pix" else "ms")
    trainer = create_trainer(cfg, Accelerator(cpu=True))
    data = build_dataset("glyphs", None, "test", cfg.data.options)
    items = {key: torch.stack([data[i][key] for i in (0, 1)]) for key in ("A", "B")}
    items["index"] = torch.tensor([0, 1])
    for net in trainer.nets.values():
        net.eval()
    with torch.no_grad():
        columns = trainer.sample_columns(items, paired=True)
        translated = trainer.translate(items["A"], items["index"])
    labels = [label for label, _ in columns]
    if family == "pix2pix":
        assert labels == ["input", "output", "target"]
        with torch.no_grad():
            assert [label for label, _ in trainer.sample_columns(items, paired=False)] == ["input", "output"]
    elif family == "cyclegan":  # the base default for a network per direction, from the routes
        assert labels == ["real A", "G_A(A)", "G_B(G_A(A))", "real B", "G_B(B)", "G_A(G_B(B))"]
        with torch.no_grad():
            back = trainer.unwrap("G_B")(columns[1][1])
            only_a = trainer.sample_columns({"A": items["A"], "index": items["index"]}, paired=False)
        assert torch.equal(columns[2][1], back) and torch.equal(columns[3][1], items["B"])
        assert [label for label, _ in only_a] == labels[:3]
    else:
        assert labels == ["real A", "A->B (fixed style)", "A->B->A", "real B", "B->A", "B->A->B"]
    images = dict(columns)
    assert torch.allclose(images[labels[1]], translated, atol=1e-5)  # the A->B column is translate's output
    assert all(t.shape == items["A"].shape and t.isfinite().all() for t in images.values())
    grid = labelled_grid(columns)
    assert grid.width == (2 if family == "pix2pix" else 1) * len(columns) * (TILE + 2) + 2


# ---------------------------------------------------------------- TensorBoard
class _RecordingTracker(GeneralTracker):
    """Stands in for accelerate's TensorBoard tracker: records what the loop sends it."""

    name = "tensorboard"
    requires_logging_directory = False

    def __init__(self):
        super().__init__()
        self.scalars, self.images, self.finished = [], [], False

    @property
    def tracker(self):
        return self

    def log(self, values, step=None, **kwargs):
        self.scalars.append((step, dict(values)))

    def log_images(self, values, step=None, **kwargs):
        self.images.append((step, {k: np.asarray(v) for k, v in values.items()}, kwargs))

    def finish(self):
        self.finished = True


def test_tracker_receives_losses_lr_metrics_and_sample_grids(tmp_path, monkeypatch):
    tracker = _RecordingTracker()
    build = loop.build_accelerator

    def with_tracker(cfg, runtime=None):
        accelerator = build(cfg, runtime)
        accelerator.log_with = [tracker]
        return accelerator

    monkeypatch.setattr(loop, "build_accelerator", with_tracker)
    torch.set_num_threads(1)
    train(tiny("pix2pix", tmp_path / "run", None))
    losses = [(step, values) for step, values in tracker.scalars if "G_L1" in values]
    assert [step for step, _ in losses] == [1, 2]
    assert {"G_GAN", "G_L1", "D_real", "D_fake", "lr"} <= set(losses[0][1])
    assert any(set(values) == {"eval/l1", "eval/psnr", "eval/ssim"} for _, values in tracker.scalars)
    ((step, images, kwargs),) = tracker.images  # the final grid
    sample = _png(tmp_path / "run" / "samples" / "step_000002.png")
    assert step == 2 and kwargs == {"dataformats": "NHWC"} and np.array_equal(images["samples"][0], sample)
    assert tracker.finished


def test_tensorboard_event_files_hold_losses_and_samples(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    torch.set_num_threads(1)
    train(tiny("cyclegan", tmp_path / "run", None))
    events = EventAccumulator(str(tmp_path / "run" / "run"))  # accelerate logs into <run>/<folder name>
    events.Reload()
    tags = events.Tags()
    assert {"G_A", "cycle_A", "D_A", "lr", "eval/l1"} <= set(tags["scalars"])
    assert [e.step for e in events.Scalars("cycle_A")] == [1, 2]
    assert "samples" in tags["images"]
