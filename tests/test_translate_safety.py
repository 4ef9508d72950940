"""`ponogan translate` never collides, never crashes, says the real cause: unique output names
(case-insensitive, stable across re-runs), per-process temp names, usage errors as one line (exit 2)
before any image, multi-frame inputs noted."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_pipeline import make_run  # tests/ is on sys.path (pytest rootdir-less test modules)

from ponogan.cli import main
from ponogan.inference.translate import Job, partial_path, plan_jobs, sweep_partials

pytestmark = pytest.mark.usefixtures("one_thread")
REPO = Path(__file__).resolve().parents[1]
COLLIDING = ("x.png", "x.jpg", "x_png.png", "X.PNG")


@pytest.fixture(scope="module")
def run_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {family: make_run(root / family, family) for family in ("pix2pix", "munit")}


def _image(path: Path, seed: int, size=(20, 12), frames: int = 1) -> Path:
    rng = np.random.default_rng(seed)
    images = [
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)) for _ in range(frames)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = {".jpg": "JPEG", ".gif": "GIF"}.get(path.suffix.lower(), "PNG")
    images[0].save(path, format=fmt, save_all=frames > 1, append_images=images[1:])
    return path


def _translate(ckpt, source, out, *extra: str) -> int:
    return main(
        ["translate", "--checkpoint", str(ckpt), "--input", str(source), "--output", str(out), *extra]
    )


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.strip()]


def test_planned_names_are_unique_case_insensitively_and_stable(tmp_path):
    inputs = [(Path("in", rel), Path(rel)) for rel in (*COLLIDING, "sub/y.png", "SUB/y.png", "x_jpg_2.png")]
    jobs = plan_jobs(inputs, tmp_path, 1, "png")
    names = {job.source.as_posix(): job.outputs[0].relative_to(tmp_path).as_posix() for job in jobs}
    keys = [name.casefold() for name in names.values()]
    assert len(set(keys)) == len(inputs)
    assert names["in/x_png.png"] == "x_png.png"  # a plain stem keeps its name; the renamed ones move
    assert names["in/x_jpg_2.png"] == "x_jpg_2.png"
    for _ in range(3):  # the same inputs in any order: the same names
        shuffled = random.Random(_).sample(inputs, len(inputs))
        again = {
            job.source.as_posix(): job.outputs[0].relative_to(tmp_path).as_posix()
            for job in plan_jobs(shuffled, tmp_path, 1, "png")
        }
        assert again == names
    styles = plan_jobs(
        [(Path("a.png"), Path("a.png")), (Path("a_s0.png"), Path("a_s0.png"))], tmp_path, 2, "png"
    )
    all_outputs = [p.name.casefold() for job in styles for p in job.outputs]
    assert len(set(all_outputs)) == 4


def test_colliding_names_translate_each_input_once_and_resume(run_dirs, tmp_path, capsys):
    source, out = tmp_path / "in", tmp_path / "out"
    for seed, name in enumerate(COLLIDING):
        _image(source / name, seed)
    ckpt = run_dirs["pix2pix"]
    assert _translate(ckpt, source, out, "--device", "cpu") == 0
    assert "translated 4 image(s)" in capsys.readouterr().err
    outputs = sorted(p.name for p in out.iterdir())
    assert len(outputs) == 4 and len({name.casefold() for name in outputs}) == 4
    arrays = {name: np.asarray(Image.open(out / name)) for name in outputs}
    assert len({a.tobytes() for a in arrays.values()}) == 4  # four different results, none overwritten
    victim = sorted(outputs)[1]
    (out / victim).unlink()
    assert _translate(ckpt, source, out, "--device", "cpu") == 0
    err = capsys.readouterr().err
    assert "translated 1 image(s)" in err and "skipped 3 already done" in err
    assert np.array_equal(np.asarray(Image.open(out / victim)), arrays[victim])


def test_a_255_byte_name_translates(run_dirs, tmp_path, capsys):
    name = "n" * 251 + ".png"
    _image(tmp_path / "in" / name, 0)
    assert _translate(run_dirs["pix2pix"], tmp_path / "in", tmp_path / "out", "--device", "cpu") == 0
    assert (tmp_path / "out" / name).is_file()
    assert len(partial_path(tmp_path / name).name) < 40


def test_sweep_removes_only_dead_processes_temps(tmp_path):
    output = tmp_path / "o" / "a.png"
    output.parent.mkdir()
    dead = output.with_name(".ponogan-999999999-0a1b2c3d.partial")
    live = output.with_name(f".ponogan-{os.getppid()}-0a1b2c3d.partial")  # a running process's
    legacy = output.with_name(".a.png.partial")
    user = output.with_name(".ponogan-notes.partial")
    for path in (dead, live, legacy, user):
        path.write_bytes(b"x")
    assert sweep_partials([Job(Path("a.png"), (output,))]) == 2
    assert not dead.exists() and not legacy.exists() and live.exists() and user.exists()
    first, second = partial_path(output), partial_path(output)
    assert first != second and str(os.getpid()) in first.name


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (("--device", "bogus"), "unknown device 'bogus'"),
        (("--device", "cpu:1"), "'cpu:1' does not exist"),
        (("--max-aspect", "nan"), "--max-aspect must be a number >= 1"),
        (("--max-pixels", "0"), "--max-pixels must be a number >= 1"),
        (("--seed", str(2**64)), "--seed must be an integer from 0 to"),
        (("--seed", "-1"), "--seed must be an integer from 0 to"),
        (("--size", "big"), "--size"),
    ],
)
def test_bad_flags_are_one_usage_line_before_any_output(run_dirs, tmp_path, capsys, extra, words):
    _image(tmp_path / "in" / "a.png", 0)
    out = tmp_path / "out"
    assert _translate(run_dirs["pix2pix"], tmp_path / "in", out, *extra) == 2
    lines = _error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], lines
    assert "checkpoint" not in lines[0] and not out.exists()


def test_unwritable_output_folder_is_one_line_up_front(run_dirs, tmp_path, capsys):
    for k in range(3):
        _image(tmp_path / "in" / f"{k}.png", k)
    assert _translate(run_dirs["pix2pix"], tmp_path / "in", "/sys/ponogan-test-out", "--device", "cpu") == 2
    lines = _error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and "cannot write into --output /sys/ponogan-test-out" in lines[0], lines


def test_multi_frame_inputs_are_noted(run_dirs, tmp_path, capsys):
    _image(tmp_path / "in" / "anim.gif", 0, frames=3)
    _image(tmp_path / "in" / "still.png", 1)
    assert _translate(run_dirs["pix2pix"], tmp_path / "in", tmp_path / "out", "--device", "cpu") == 0
    err = capsys.readouterr().err
    assert "translated 2 image(s)" in err
    assert "1 input(s) hold several frames" in err and "anim.gif" in err and "first frame" in err


@pytest.mark.slow
def test_concurrent_overwrite_runs_into_one_folder(run_dirs, tmp_path):
    for k in range(24):
        _image(tmp_path / "in" / f"{k:02d}.png", k, size=(8, 8))
    out = tmp_path / "out"
    command = [
        sys.executable, "-m", "ponogan", "translate", "--checkpoint", str(run_dirs["pix2pix"]),
        "--input", str(tmp_path / "in"), "--output", str(out), "--overwrite", "--device", "cpu",
        "--dtype", "float32", "--workers", "1",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    errors = [proc.communicate(timeout=240)[1] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], errors
    assert all("translated 24 image(s)" in err for err in errors), errors
    assert sorted(p.name for p in out.iterdir()) == [f"{k:02d}.png" for k in range(24)]  # no temp left
    for k in range(24):
        assert Image.open(out / f"{k:02d}.png").size == (8, 8)
