"""`ponogan translate` under torchrun: 2 CPU processes on loopback split the inputs, each image is
translated exactly once, and the outputs are byte-identical to a one-process run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from test_pipeline import make_run

from ponogan.cli import main
from ponogan.core.distributed import ProcessGroup, current_group
from ponogan.core.runtime import default_inference_settings


def _images(root: Path, count: int) -> Path:
    rng = np.random.default_rng(1)
    for i in range(count):
        path = root / ("sub" if i % 2 else "") / f"img_{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (20 + i, 24, 3), dtype=np.uint8)).save(path)
    return root


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_two_processes_translate_each_image_once_and_identically(tmp_path):
    run = make_run(tmp_path / "run", "cyclegan")
    images = _images(tmp_path / "images", 7)
    assert (
        main(
            [
                "translate",
                "--checkpoint",
                str(run),
                "--input",
                str(images),
                "--output",
                str(tmp_path / "one"),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "ponogan",
        "translate",
        "--checkpoint",
        str(run),
        "--input",
        str(images),
        "--output",
        str(tmp_path / "two"),
        "--device",
        "cpu",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "translated 7 image(s)" in proc.stderr and "by 2 processes" in proc.stderr
    assert _files(tmp_path / "one") == _files(tmp_path / "two") and len(_files(tmp_path / "two")) == 7
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)  # resumable
    assert again.returncode == 0 and "skipped 7 already done" in again.stderr


def test_process_group_alone_is_local(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    current_group.cache_clear()
    group = current_group()
    assert (group.rank, group.world_size) == (0, 1)
    assert group.shard(list(range(5))) == [0, 1, 2, 3, 4] and group.all_gather(3) == [3]
    assert ProcessGroup(rank=1, world_size=3).shard(list(range(7))) == [1, 4]  # the share of rank 1 of 3


def test_inference_defaults_per_device(monkeypatch):
    import ponogan.core.runtime as runtime

    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: False)
    assert default_inference_settings("cpu") == {"batch_size": 1, "dtype": "float32"}
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: True)
    assert default_inference_settings("cpu") == {"batch_size": 1, "dtype": "bf16"}
