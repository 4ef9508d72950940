"""A corpus of hostile inputs through translate, eval, train and the app's translate call.

Every command must end with an exit status and at most a few clear lines (never a traceback), leave
every file of the corpus byte-identical, and stay within a memory bound (peak RSS of the process).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_pipeline import make_run

REPO = Path(__file__).resolve().parents[1]
RSS_LIMIT_MB = 3000  # the biggest hostile file decodes to 243 MB; a failure to bound would need GBs


def _png_of_size(path: Path, width: int, height: int) -> None:
    """A valid, tiny PNG of ``width x height`` black pixels (1-bit grayscale, compressed rows)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([1, 0, 0, 0, 0])
    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )


def make_corpus(root: Path) -> Path:
    """Good images next to every kind of bad one, and a symlink loop."""
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (36, 40, 3), dtype=np.uint8)).save(root / f"good_{i}.png")
    good = (root / "good_0.png").read_bytes()
    (root / "truncated.png").write_bytes(good[: len(good) // 2])
    (root / "empty.png").write_bytes(b"")
    (root / "text.png").write_text("not an image at all")
    (root / "html.jpg").write_text("<html><body>hello</body></html>")
    (root / "pickle.png").write_bytes(pickle.dumps({"x": 1}))
    _png_of_size(root / "strip.png", 262144, 1)
    _png_of_size(root / "huge.png", 9000, 9000)
    _png_of_size(root / "tiny.png", 1, 1)
    Image.fromarray(rng.integers(0, 65535, (30, 30), dtype=np.uint16)).save(root / "sixteen_bit.png")
    Image.fromarray(rng.integers(0, 256, (30, 30, 3), dtype=np.uint8)).convert("CMYK").save(root / "cmyk.jpg")
    (root / "nested").mkdir()
    Image.fromarray(rng.integers(0, 256, (30, 34, 3), dtype=np.uint8)).convert("P").save(
        root / "nested" / "pal.png"
    )
    os.symlink("..", root / "nested" / "loop")
    return root


def snapshot(root: Path) -> dict[str, str]:
    """SHA-256 of every file under ``root`` (not following links)."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            if not path.is_symlink():
                out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _high_water_kb(pid: int) -> int:
    """The peak RSS (``VmHWM``) of process ``pid`` so far; 0 once it has exited."""
    try:
        with open(f"/proc/{pid}/status") as lines:
            return next((int(line.split()[1]) for line in lines if line.startswith("VmHWM")), 0)
    except OSError:
        return 0


def run_cli(args: list[str], cwd: Path) -> tuple[int, str, float]:
    """Run a command in a fresh process: ``(exit status, stderr + stdout, peak RSS in MB)``. The peak is
    the child's own high-water mark, read from /proc while it runs (``Popen`` returns after the exec, so
    it is the command's memory alone: rusage would report at least the test process's RSS at the fork)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    peak_kb, deadline = 0, time.monotonic() + 900
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(
            [sys.executable, *args], stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env=env
        )
        while proc.poll() is None:
            peak_kb = max(peak_kb, _high_water_kb(proc.pid))
            if time.monotonic() > deadline:
                proc.kill()
            time.sleep(0.02)
        out.seek(0)
        output = out.read()
    return proc.returncode, output, peak_kb / 1024


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    data = make_corpus(root / "corpus")
    return root, data, snapshot(data)


def _check(code: int, output: str, peak_mb: float, allowed: set[int]) -> None:
    assert "Traceback" not in output, output[-3000:]
    assert code in allowed, (code, output[-2000:])
    assert peak_mb < RSS_LIMIT_MB, f"peak RSS {peak_mb:.0f} MB"


def test_translate_survives_the_corpus(corpus):
    root, data, before = corpus
    run = make_run(root / "run", "cyclegan")
    code, out, peak = run_cli(
        [
            "-m",
            "ponogan",
            "translate",
            "--checkpoint",
            str(run),
            "--input",
            str(data),
            "--output",
            str(data / "out"),
            "--device",
            "cpu",
        ],
        root,
    )
    _check(code, out, peak, {1})  # the good ones translated, the bad ones listed
    assert sorted(p.name for p in (data / "out").rglob("*.png") if p.name.startswith("good")) == [
        "good_0.png",
        "good_1.png",
        "good_2.png",
    ]
    assert "strip.png" in out and "huge.png" in out and "empty.png" in out
    assert {k: v for k, v in snapshot(data).items() if not k.startswith("out/")} == before


def test_eval_survives_the_corpus(corpus):
    root, data, before = corpus
    real = root / "corpus_copy"  # eval refuses --real == --fake: each image would be scored against itself
    if not real.exists():
        shutil.copytree(data, real, symlinks=True)
    code, out, peak = run_cli(
        [
            "-m",
            "ponogan",
            "eval",
            "--real",
            str(real),
            "--fake",
            str(data),
            "--metrics",
            "l1,psnr,ssim",
            "--out",
            str(root / "eval"),
        ],
        root,
    )
    _check(code, out, peak, {0})
    assert (root / "eval" / "metrics.json").is_file()
    assert {k: v for k, v in snapshot(data).items() if not k.startswith("out/")} == before


def test_train_survives_the_corpus(corpus):
    root, data, before = corpus
    dataset = root / "dataset"
    dataset.mkdir()
    for split in ("trainA", "trainB"):
        os.symlink(data, dataset / split, target_is_directory=True)
    code, out, peak = run_cli(
        [
            str(REPO / "train.py"),
            "--config",
            "cyclegan_glyphs",
            "--dataroot",
            str(dataset),
            "--output-dir",
            str(root / "trained"),
            "--max-steps",
            "2",
            "--device",
            "cpu",
            "model.generator_kwargs.ngf=4",
            "model.generator_kwargs.n_blocks=1",
            "model.discriminator_kwargs.ndf=4",
            "model.discriminator_kwargs.n_layers=1",
            "data.options.load_size=32",
            "data.options.crop_size=32",
            "data.batch_size=2",
            "train.eval_every=0",
            "train.sample_every=0",
            "train.save_every=0",
        ],
        root,
    )
    _check(code, out, peak, {0})
    assert (root / "trained" / "model.safetensors").is_file()
    assert {k: v for k, v in snapshot(data).items() if not k.startswith("out/")} == {
        k: v for k, v in before.items() if not k.startswith("out/")
    }


def test_app_upload_path_survives_the_corpus(corpus):
    """What `app.py` does with an upload: `load_upload`, the processed-size check, the pipeline; every
    bad file must end as one readable ValueError (shown as a gr.Error), never anything else."""
    from ponogan.app.support import APP_MAX_PIXELS, load_upload
    from ponogan.inference.images import check_processed_size
    from ponogan.inference.pipeline import TranslationPipeline

    root, data, before = corpus
    pipe = TranslationPipeline.from_pretrained(make_run(root / "app_run", "cyclegan"), device="cpu")
    start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    outcomes = {}
    for path in sorted(p for p in data.rglob("*") if p.is_file() and "out" not in p.parts):
        try:
            image = load_upload(path, APP_MAX_PIXELS)
            check_processed_size(image.size, None, pipe.stride("AtoB"))
            pipe(image)
            outcomes[path.name] = "ok"
        except ValueError as err:
            assert "\n" not in str(err).strip(), str(err)
            outcomes[path.name] = "refused"
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - start < RSS_LIMIT_MB
    assert outcomes["good_0.png"] == "ok" and outcomes["cmyk.jpg"] == "ok"
    assert {outcomes[n] for n in ("empty.png", "huge.png", "strip.png", "pickle.png", "tiny.png")} == {
        "refused"
    }
    assert {k: v for k, v in snapshot(data).items() if not k.startswith("out/")} == before
