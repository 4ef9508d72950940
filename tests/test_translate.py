"""`ponogan translate`: nested folders, corrupt files, odd sizes, resuming, globs, exit codes."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_pipeline import make_run  # tests/ is on sys.path (pytest rootdir-less test modules)

from ponogan.cli import main
from ponogan.inference.translate import collect_inputs, plan_jobs, prefetch

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {family: make_run(root / family, family) for family in ("pix2pix", "cyclegan", "munit")}


@pytest.fixture
def photos(tmp_path):
    """Nested dirs, odd sizes, a grayscale JPEG, a corrupt PNG, an empty file and a text file."""
    root = tmp_path / "photos"
    rng = np.random.default_rng(0)
    files = {
        "top.png": (33, 21, "RGB"),
        "a/one.png": (17, 40, "RGB"),
        "a/b/two.jpg": (64, 48, "L"),
        "a/b/three.png": (33, 21, "RGBA"),
    }
    for rel, (w, h, mode) in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        channels = {"RGB": 3, "L": 1, "RGBA": 4}[mode]
        data = rng.integers(0, 256, (h, w, channels), dtype=np.uint8).squeeze()
        Image.fromarray(data, mode).save(path)
    (root / "a" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    (root / "a" / "b" / "empty.png").write_bytes(b"")
    (root / "notes.txt").write_text("not an image")
    return root, {rel: (w, h) for rel, (w, h, _) in files.items()}


def _translate(*args: str) -> int:
    return main(["translate", *args])


def test_folder_nested_corrupt_and_resume(run_dirs, photos, tmp_path, capsys):
    root, sizes = photos
    out = tmp_path / "out"
    code = _translate(
        "--checkpoint",
        str(run_dirs["cyclegan"]),
        "--input",
        str(root),
        "--output",
        str(out),
        "--batch-size",
        "2",
        "--device",
        "cpu",
    )
    assert code == 1  # the good images are written; the exit status says some inputs failed
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == sorted(str(Path(rel).with_suffix(".png").as_posix()) for rel in sizes)
    for rel, size in sizes.items():
        with Image.open(out / Path(rel).with_suffix(".png")) as img:
            assert img.format == "PNG" and img.size == size and img.mode == "RGB"
    err = capsys.readouterr().err
    assert "translated 4 image(s)" in err and "2 input(s) could not be translated" in err
    assert "corrupt.png" in err and "empty" in err

    stamp = (out / "top.png").stat().st_mtime_ns
    (out / "a" / "one.png").unlink()  # an interrupted run: one output missing
    assert (
        _translate(
            "--checkpoint",
            str(run_dirs["cyclegan"]),
            "--input",
            str(root),
            "--output",
            str(out),
            "--device",
            "cpu",
        )
        == 1
    )
    err = capsys.readouterr().err
    assert "translated 1 image(s)" in err and "skipped 3 already done" in err
    assert (out / "a" / "one.png").is_file() and (out / "top.png").stat().st_mtime_ns == stamp
    assert not list(out.rglob(".*.partial"))


def test_direction_size_and_glob(run_dirs, photos, tmp_path):
    root, _ = photos
    out = tmp_path / "out"
    code = _translate(
        "--checkpoint",
        str(run_dirs["cyclegan"]),
        "--input",
        str(root / "a" / "**" / "*.png"),
        "--output",
        str(out),
        "--direction",
        "BtoA",
        "--size",
        "16",
        "--device",
        "cpu",
    )
    assert code == 1  # the glob also matches the corrupt and the empty PNG
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == ["b/three.png", "one.png"]
    with Image.open(out / "one.png") as img:
        assert min(img.size) == 16


def test_munit_n_styles_outputs(run_dirs, photos, tmp_path):
    root, _ = photos
    out = tmp_path / "out"
    assert (
        _translate(
            "--checkpoint",
            str(run_dirs["munit"]),
            "--input",
            str(root / "top.png"),
            "--output",
            str(out),
            "--n-styles",
            "3",
            "--device",
            "cpu",
        )
        == 0
    )
    names = sorted(p.name for p in out.iterdir())
    assert names == ["top_s0.png", "top_s1.png", "top_s2.png"]
    arrays = [np.asarray(Image.open(out / name)) for name in names]
    assert not np.array_equal(arrays[0], arrays[1])


def test_exit_codes(run_dirs, photos, tmp_path, capsys):
    root, _ = photos
    ckpt = str(run_dirs["pix2pix"])
    only_bad = tmp_path / "bad"
    only_bad.mkdir()
    (only_bad / "x.png").write_bytes(b"nope")
    assert _translate("--checkpoint", ckpt, "--input", str(only_bad), "--output", str(tmp_path / "o1")) == 1
    assert "x.png: not an image" in capsys.readouterr().err
    assert (
        _translate(
            "--checkpoint", ckpt, "--input", str(tmp_path / "missing"), "--output", str(tmp_path / "o2")
        )
        == 1
    )
    assert "no images found" in capsys.readouterr().err
    assert (
        _translate(
            "--checkpoint",
            ckpt,
            "--input",
            str(root),
            "--output",
            str(tmp_path / "o3"),
            "--direction",
            "BtoA",
        )
        == 2
    )
    assert "valid: AtoB" in capsys.readouterr().err
    assert (
        _translate(
            "--checkpoint", str(tmp_path / "nothing"), "--input", str(root), "--output", str(tmp_path / "o4")
        )
        == 2
    )
    assert "does not exist" in capsys.readouterr().err
    assert (
        _translate(
            "--checkpoint", ckpt, "--input", str(root), "--output", str(tmp_path / "o5"), "--n-styles", "2"
        )
        == 2
    )
    assert "MUNIT checkpoints only" in capsys.readouterr().err
    if not torch.cuda.is_available():
        out = str(tmp_path / "o6")
        assert (
            _translate("--checkpoint", ckpt, "--input", str(root), "--output", out, "--device", "cuda") == 2
        )
        err = capsys.readouterr().err
        assert "CUDA is not available here" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o3").exists()


def test_collect_and_plan(photos, tmp_path):
    root, _ = photos
    inputs = collect_inputs(str(root))
    rels = [rel.as_posix() for _, rel in inputs]
    assert "notes.txt" not in rels and "a/corrupt.png" in rels and rels == sorted(rels)
    assert collect_inputs(str(root / "notes.txt")) == [(root / "notes.txt", Path("notes.txt"))]
    jobs = plan_jobs(
        [
            (Path("x/a.jpg"), Path("a.jpg")),
            (Path("x/a.png"), Path("a.png")),
            (Path("x/b.png"), Path("sub/b.png")),
        ],
        tmp_path,
        1,
        "png",
    )
    assert [j.outputs[0].relative_to(tmp_path).as_posix() for j in jobs] == [
        "a_jpg.png",
        "a_png.png",
        "sub/b.png",
    ]
    two = plan_jobs([(Path("b.png"), Path("b.png"))], tmp_path, 2, "webp")
    assert [p.name for p in two[0].outputs] == ["b_s0.webp", "b_s1.webp"]


def test_prefetch_keeps_order_and_runs_ahead():
    seen = []
    lock = threading.Lock()

    def work(i):
        time.sleep(0.001 * (5 - i % 5))
        with lock:
            seen.append(i)
        return i * i

    results = prefetch(work, range(20), workers=3, depth=4)
    first = next(results)
    assert first == 0
    time.sleep(0.05)
    assert len(seen) >= 3  # decoded ahead while the consumer was busy
    assert [first, *results] == [i * i for i in range(20)]


def test_unwritable_output_is_reported(run_dirs, photos, tmp_path, capsys):
    root, _ = photos
    out = tmp_path / "out"
    out.mkdir()
    (out / "a").write_text("a file where the output folder a/ should go")
    ckpt = str(run_dirs["pix2pix"])
    assert _translate("--checkpoint", ckpt, "--input", str(root), "--output", str(out)) == 1
    err = capsys.readouterr().err
    assert "translated 1 image(s)" in err and "one.png: cannot write output" in err
    assert (out / "top.png").is_file()
