"""Multi-process evaluation (issue 13): `torchrun --nproc_per_node 2 -m ponogan eval` on CPU (gloo over
loopback) gives the metrics of a one-process `python -m ponogan eval` run, and only rank 0 writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_metrics_cli import _glyph, _save, _tiny_run, weights  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
SPLIT_FOLDERS = ("input", "fake", "real", "mask")


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        TORCH_HOME=str(tmp_path / "torch_home"),  # empty: only the weights the test passes are used
        CUDA_VISIBLE_DEVICES="",
        OMP_NUM_THREADS="1",
        PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""),
    )
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    return env


def _ponogan(tmp_path: Path, args: list, processes: int) -> subprocess.CompletedProcess:
    """``python -m ponogan ARGS`` (one process) or ``torchrun --standalone --nproc_per_node N -m ponogan``."""
    launcher = [sys.executable]
    if processes > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
    command = [*launcher, "-m", "ponogan", *map(str, args)]
    return subprocess.run(
        command, env=_env(tmp_path), capture_output=True, text=True, timeout=600, cwd=tmp_path
    )


def _folders(tmp_path: Path) -> tuple[Path, Path]:
    """6 targets and 5 fakes (paired by name; 5 vs 6 makes KID's subsets differ)."""
    real, fake = tmp_path / "real", tmp_path / "fake"
    for i in range(6):
        _save(real, f"g{i}.png", _glyph(i % 3))
        if i < 5:
            _save(fake, f"g{i}.png", _glyph(i % 4 + 1))
    return real, fake


def _assert_same_metrics(one: dict, two: dict) -> None:
    assert list(one) == list(two)
    for name in one:
        assert two[name] == pytest.approx(one[name], rel=1e-6, abs=1e-12), name


@pytest.mark.slow
def test_two_processes_equal_one(tmp_path, weights):  # noqa: F811
    real, fake = _folders(tmp_path)
    results = {}
    for processes in (1, 2):
        out = tmp_path / f"out{processes}"
        args = ["eval", "--real", real, "--fake", fake, "--out", out, "--metrics", "l1,psnr,ssim,fid,kid",
                "--fid-weights", weights["fid"], "--cache-dir", tmp_path / f"cache{processes}",
                "--batch-size", "2", "--kid-subsets", "10", "--no-progress", "--device", "cpu"]  # fmt: skip
        done = _ponogan(tmp_path, args, processes)
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.count("| metric | value |") == 1  # only rank 0 prints the report
        assert sorted(p.name for p in out.iterdir()) == sorted(
            [".ponogan-eval-manifest.jsonl", "metrics.json", "metrics.md", "grid.png"]
        )
        results[processes] = json.loads((out / "metrics.json").read_text())
    assert list(results[1]) == ["l1", "psnr", "ssim", "fid", "kid", "kid_std"]
    assert results[1]["kid_std"] > 0 and results[1]["fid"] > 0
    _assert_same_metrics(results[1], results[2])
    assert "computed by 2 processes" in (tmp_path / "out2" / "metrics.md").read_text()


@pytest.mark.slow
def test_two_processes_translate_and_score_a_run(tmp_path):
    """`--checkpoint`: the batches are shared out, the images and the metrics are those of one process."""
    run = _tiny_run(tmp_path / "run", "pix2pix")
    results = {}
    for processes in (1, 2):
        out = tmp_path / f"out{processes}"
        args = ["eval", "--checkpoint", run, "--data", "glyphs", "--out", out,
                "--metrics", "l1,psnr,ssim,iou", "--no-progress", "--device", "cpu"]  # fmt: skip
        done = _ponogan(tmp_path, args, processes)
        assert done.returncode == 0, done.stderr[-3000:]
        results[processes] = json.loads((out / "metrics.json").read_text())
    _assert_same_metrics(results[1], results[2])
    for folder in SPLIT_FOLDERS:
        one = sorted((tmp_path / "out1" / folder).glob("*.png"))
        two = sorted((tmp_path / "out2" / folder).glob("*.png"))
        assert [p.name for p in one] == [p.name for p in two] and len(one) == 11
        for a, b in zip(one, two, strict=True):
            np.testing.assert_array_equal(np.asarray(_open(a)), np.asarray(_open(b)))
    manifest = (tmp_path / "out2" / ".ponogan-eval-manifest.jsonl").read_text()
    assert manifest.count('"file"') == 4 * 11 + 3  # every image and report file listed once


def _open(path):
    from PIL import Image

    with Image.open(path) as image:
        return image.copy()
