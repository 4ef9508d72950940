"""Issue 12 (eval and app safety) and the CLI side of issue 11 (`--test-mode`).

- `ponogan eval` never replaces or deletes a file it did not write (manifest in `--out`), skips
  unreadable images with one warning, and stops with one line when no image can be read.
- `app.py`: a taken port is one line; broken runs are skipped when good ones exist; gradio's cache
  of uploads and results is emptied after `--upload-max-age`.
- `ponogan translate --test-mode` and `ponogan eval --test-mode` reach the pipeline.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_app import running_app
from test_metrics_cli import _empty_torch_home, _eval, _folders, _glyph, _save, _tiny_run, weights  # noqa: F401
from test_pipeline import make_run

from ponogan.cli import main
from ponogan.data import load_image
from ponogan.inference.pipeline import TranslationPipeline
from ponogan.metrics import fid_between_folders, load_fid_model, paired_metrics
from ponogan.metrics.images import read_image
from ponogan.metrics.report import MANIFEST_NAME, EvalOutput

REPO = Path(__file__).resolve().parents[1]
APP_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "CUDA_VISIBLE_DEVICES": "",
    "OMP_NUM_THREADS": "1",
}


def _snapshot(root: Path) -> dict[str, bytes | None]:
    """Every entry under `root` (relative path -> file bytes, None for folders)."""
    return {
        p.relative_to(root).as_posix(): (p.read_bytes() if p.is_file() else None)
        for p in sorted(root.rglob("*"))
    }


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# --- ponogan eval: --out holds the user's files ---


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny grayscale pix2pix U-Net (BatchNorm) on 32 px glyphs: 11 held-out test items."""
    return _tiny_run(tmp_path_factory.mktemp("run") / "run", "pix2pix")


def _user_folder(root: Path) -> Path:
    """The issue's --out: the user's own real/, fake/ (with a nested folder) and another file."""
    for rel in ("real/a.png", "fake/a.png", "fake/nested/b.png"):
        _save((root / rel).parent, Path(rel).name, _glyph(1))
    (root / "notes.txt").write_text("my notes")
    return root


@pytest.mark.parametrize("overwrite", [True, False])
def test_eval_never_touches_a_users_folder(tmp_path, run, capsys, overwrite):
    out = _user_folder(tmp_path / "X")
    before = _snapshot(out)
    rc = _eval(
        "--checkpoint",
        run,
        "--data",
        "glyphs",
        "--out",
        out,
        "--metrics",
        "l1",
        "--device",
        "cpu",
        *(["--overwrite"] if overwrite else []),
    )
    assert rc == 2
    line = _one_line(capsys.readouterr().err)
    assert "did not write" in line and "choose a new or empty --out" in line
    assert _snapshot(out) == before  # nothing deleted, replaced or added


def test_overwrite_removes_only_files_listed_in_the_manifest(tmp_path, run, capsys):
    out = tmp_path / "out"
    args = ["--checkpoint", run, "--data", "glyphs", "--out", out, "--metrics", "l1", "--device", "cpu"]
    assert _eval(*args) == 0
    manifest = EvalOutput(out)
    assert len([f for f in manifest.files if f.startswith("fake/")]) == 11
    assert {"metrics.json", "metrics.md", "grid.png"} <= manifest.files
    assert (out / MANIFEST_NAME).is_file()

    (out / "notes.txt").write_text("mine")  # the user's files beside the evaluation: never touched
    _save(out / "mine", "keep.png", _glyph(2))
    capsys.readouterr()
    assert _eval(*args) == 2  # earlier images would mix into the new evaluation
    assert "pass --overwrite" in _one_line(capsys.readouterr().err)
    assert _eval(*args, "--overwrite") == 0
    assert (out / "notes.txt").read_text() == "mine" and (out / "mine" / "keep.png").is_file()
    assert len(list((out / "fake").glob("*.png"))) == 11
    assert not {"notes.txt", "mine/keep.png"} & EvalOutput(out).files

    _save(out / "fake", "extra.png", _glyph(3))  # a user's image inside eval's folder: refuse, delete nothing
    before = _snapshot(out)
    capsys.readouterr()
    assert _eval(*args, "--overwrite") == 2
    assert "fake/extra.png" in _one_line(capsys.readouterr().err)
    assert _snapshot(out) == before


def test_manifest_entries_never_reach_outside_or_remove_foreign_folders(tmp_path):
    out, outside = tmp_path / "out", tmp_path / "outside.png"
    outside.write_bytes(b"keep")
    (out / "fake").mkdir(parents=True)  # made by the user, not by eval
    (out / "fake" / "x.png").write_bytes(b"eval's")
    lines = [
        {"written_by": "ponogan eval", "version": 1},
        {"file": "../outside.png"},
        {"file": str(outside)},
        {"file": "fake/x.png"},
    ]
    (out / MANIFEST_NAME).write_text("\n".join(map(json.dumps, lines)) + '\n{"file": "fake/y.p')  # torn line
    output = EvalOutput(out)
    assert output.files == {"fake/x.png"}
    assert output.own_files(trees=["fake"]) == [out / "fake" / "x.png"]
    output.remove([outside, out / "fake" / "x.png"])
    assert outside.read_bytes() == b"keep" and (out / "fake").is_dir()  # not eval's folder: kept
    created = output.mkdir("input/deep")
    output.claim([created / "z.png"])
    (created / "z.png").write_bytes(b"z")
    again = EvalOutput(out)
    assert again.files == {"input/deep/z.png"} and again.dirs == {"input", "input/deep"}
    again.remove([created / "z.png"])
    assert not (out / "input").exists() and (out / "fake").is_dir()

    (out / MANIFEST_NAME).write_text("[1, 2]\n")
    with pytest.raises(FileExistsError, match="cannot read the evaluation manifest"):
        EvalOutput(out)


def test_folder_eval_writes_beside_the_users_files_but_never_over_them(tmp_path, capsys):
    real, fake, _ = _folders(tmp_path)
    shared = tmp_path / "shared"  # apart from --real and --fake (eval refuses an --out holding them)
    shared.mkdir()
    (shared / "notes.txt").write_text("mine")
    for _ in range(2):  # a second run replaces its own report
        assert _eval("--real", real, "--fake", fake, "--out", shared, "--metrics", "l1") == 0
    assert (shared / "notes.txt").read_text() == "mine" and (shared / "metrics.json").is_file()
    other = tmp_path / "other"
    other.mkdir()
    (other / "metrics.json").write_text('{"mine": 1}')
    capsys.readouterr()
    assert _eval("--real", real, "--fake", fake, "--out", other, "--metrics", "l1") == 2
    assert "other/metrics.json" in _one_line(capsys.readouterr().err)
    assert (other / "metrics.json").read_text() == '{"mine": 1}'


# --- ponogan eval: unreadable images ---


def _ten_pairs(tmp_path):
    real, fake = tmp_path / "real", tmp_path / "fake"
    for i in range(10):
        _save(real, f"g{i}.png", _glyph(0))
        _save(fake, f"g{i}.png", _glyph(i % 4))
    return real, fake


def test_corrupt_files_are_skipped_with_one_warning(tmp_path, capsys):
    real, fake = _ten_pairs(tmp_path)
    (fake / "g3.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"junk" * 10)
    (real / "g7.png").write_bytes((real / "g7.png").read_bytes()[:60])  # truncated
    out = tmp_path / "out"
    assert _eval("--real", real, "--fake", fake, "--out", out, "--metrics", "l1,psnr,ssim,iou") == 0
    err = capsys.readouterr().err
    warning = _one_line(err)
    assert "warning: skipped 2 unreadable image(s)" in warning
    assert str(fake / "g3.png") in warning and str(real / "g7.png") in warning
    keep = [i for i in range(10) if i not in (3, 7)]
    fakes = torch.cat([read_image(fake / f"g{i}.png") for i in keep])
    reals = torch.cat([read_image(real / f"g{i}.png") for i in keep])
    expected = paired_metrics(fakes, reals, ("l1", "psnr", "ssim", "iou"))
    assert json.loads((out / "metrics.json").read_text()) == pytest.approx(expected, rel=1e-5)
    markdown = (out / "metrics.md").read_text()
    assert "pairs: 8" in markdown and "skipped 2 unreadable image(s)" in markdown
    assert (out / "grid.png").is_file()


def test_no_readable_fake_is_one_line_and_nonzero(tmp_path, capsys):
    real, fake = _ten_pairs(tmp_path)
    for path in fake.iterdir():
        path.write_bytes(b"not an image")
    out = tmp_path / "out"
    assert _eval("--real", real, "--fake", fake, "--out", out, "--metrics", "l1") == 2
    line = _one_line(capsys.readouterr().err)
    assert "holds no readable image: all 10 failed to load" in line
    assert not (out / "metrics.json").exists()


@pytest.mark.slow
def test_fid_uses_the_readable_files(tmp_path, weights, capsys):  # noqa: F811
    real, fake = _ten_pairs(tmp_path)
    clean = tmp_path / "clean"
    clean.mkdir()
    for path in fake.iterdir():
        (clean / path.name).write_bytes(path.read_bytes())
    (fake / "g5.png").write_bytes(b"garbage")
    rc = _eval(
        "--real",
        real,
        "--fake",
        fake,
        "--out",
        tmp_path / "out",
        "--metrics",
        "fid",
        "--fid-weights",
        weights["fid"],
        "--cache-dir",
        tmp_path / "cache",
    )
    assert rc == 0, capsys.readouterr().err
    model = load_fid_model(weights["fid"])
    (clean / "g5.png").unlink()
    expected = fid_between_folders(real, clean, model=model, cache_dir=tmp_path / "cache", progress=False)
    value = json.loads((tmp_path / "out" / "metrics.json").read_text())["fid"]
    assert value == pytest.approx(expected, rel=1e-6)


# --- --test-mode reaches the pipeline ---


def test_translate_test_mode_flag(tmp_path, run):
    inputs = tmp_path / "in"
    _save(inputs, "a.png", _glyph(1)[..., 0])
    _save(inputs, "b.png", _glyph(4)[..., 0])
    pipe = TranslationPipeline.from_pretrained(run, device="cpu")
    outputs = {}
    for mode in ("eval", "paper"):
        out = tmp_path / mode
        assert (
            main(
                [
                    "translate",
                    "--checkpoint",
                    str(run),
                    "--input",
                    str(inputs),
                    "--output",
                    str(out),
                    "--device",
                    "cpu",
                    "--test-mode",
                    mode,
                    "--mixed-precision",
                    "no",  # the pipeline below runs in float32; the CLI's CPU default may be bf16
                ]
            )
            == 0
        )
        for name in ("a.png", "b.png"):
            expected = pipe([load_image(inputs / name, "L")], seed=0, test_mode=mode)[0]
            outputs[mode, name] = np.asarray(Image.open(out / name))
            assert np.array_equal(outputs[mode, name], np.asarray(expected))
    assert not np.array_equal(outputs["eval", "a.png"], outputs["paper", "a.png"])


def test_eval_test_mode_flag(tmp_path, run, capsys):
    pipe = TranslationPipeline.from_pretrained(run, device="cpu")
    fakes = {}
    for mode in ("eval", "paper"):
        out = tmp_path / mode
        args = ["--checkpoint", run, "--data", "glyphs", "--out", out, "--metrics", "l1", "--device", "cpu"]
        assert _eval(*args, "--test-mode", mode, "--seed", "5") == 0
        assert f"test mode {mode}" in (out / "metrics.md").read_text()
        name = sorted(p.name for p in (out / "fake").glob("*.png"))[0]
        expected = pipe([load_image(out / "input" / name, "L")], seed=5, test_mode=mode)[0]
        fakes[mode] = np.asarray(Image.open(out / "fake" / name))
        assert np.array_equal(fakes[mode], np.asarray(expected))
    assert not np.array_equal(fakes["eval"], fakes["paper"])
    real, fake, _ = _folders(tmp_path / "folders")
    capsys.readouterr()
    assert _eval("--real", real, "--fake", fake, "--out", tmp_path / "o", "--test-mode", "paper") == 2
    assert "--test-mode applies to --checkpoint" in _one_line(capsys.readouterr().err)


# --- app.py ---


def _load_app():
    import importlib.util

    spec = importlib.util.spec_from_file_location("ponogan_app_safety", REPO / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    return app


def _broken_newest(root: Path) -> Path:
    """A good run, then a newer run whose weights file is corrupt (config.json is fine)."""
    make_run(root / "good_run", "pix2pix")
    broken = make_run(root / "new_run", "pix2pix")
    (broken / "model.safetensors").write_bytes(b"\x00" * 64)
    os.utime(broken / "model.safetensors", (time.time() + 60, time.time() + 60))
    return root


def test_broken_runs_are_skipped_when_good_ones_exist(tmp_path, capsys):
    from ponogan.app.support import PipelineCache

    app = _load_app()
    root = _broken_newest(tmp_path / "ckpts")
    args = app.parse_args(["--checkpoints-dir", str(root), "--device", "cpu"])
    runs, default = app.load_runs(args, PipelineCache(device="cpu"))
    assert list(runs) == ["good_run"] and default == "good_run"
    assert "app.py: warning: skipping checkpoint new_run:" in _one_line(capsys.readouterr().err)

    args = app.parse_args(["--checkpoints-dir", str(root), "--checkpoint", str(root / "new_run")])
    with pytest.raises(ValueError, match="cannot load --checkpoint"):  # asked for by name: an error
        app.load_runs(args, PipelineCache(device="cpu"))
    (root / "good_run" / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="no checkpoint under .* loads"):
        app.load_runs(app.parse_args(["--checkpoints-dir", str(root)]), PipelineCache(device="cpu"))


def test_port_in_use_is_one_line(tmp_path):
    root = tmp_path / "ckpts"
    make_run(root / "good_run", "pix2pix")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [
                sys.executable,
                str(REPO / "app.py"),
                "--checkpoints-dir",
                str(root),
                "--port",
                str(port),
                "--device",
                "cpu",
            ],
            cwd=REPO,
            env={**os.environ, **APP_ENV},
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert proc.returncode == 2
    line = _one_line(proc.stderr)
    assert line.startswith("error: port ") and str(port) in line and "in use" in line and "--port" in line


@pytest.fixture(scope="module")
def short_cache_server(tmp_path_factory):
    """`app.py` over a folder whose newest run is broken, deleting cached files after 3 s."""
    root = _broken_newest(tmp_path_factory.mktemp("ckpts"))
    cache = tmp_path_factory.mktemp("gradio_cache")
    log = tmp_path_factory.mktemp("log") / "app.log"
    args = ["--checkpoints-dir", str(root), "--device", "cpu", "--upload-max-age", "3"]
    with running_app(args, {**os.environ, **APP_ENV, "GRADIO_TEMP_DIR": str(cache)}, log) as url:
        yield url, cache, log


def test_app_starts_without_its_broken_newest_run_and_empties_its_cache(short_cache_server, tmp_path):
    from gradio_client import Client, handle_file

    url, cache, log = short_cache_server
    assert "skipping checkpoint new_run" in log.read_text()
    client = Client(url, verbose=False)
    for i in range(3):  # unique uploads, each a few hundred kB
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (300, 300, 3), np.uint8)).save(
            tmp_path / f"u{i}.png"
        )
        client.predict(handle_file(str(tmp_path / f"u{i}.png")), api_name="/translate")
    with pytest.raises(Exception, match="new_run"):  # the broken run is not offered
        client.predict(handle_file(str(tmp_path / "u0.png")), checkpoint="new_run", api_name="/translate")
    assert [p for p in cache.rglob("*") if p.is_file()]  # uploads and results are cached...
    deadline = time.monotonic() + 30
    while [p for p in cache.rglob("*") if p.is_file()]:  # ...and deleted after --upload-max-age
        assert time.monotonic() < deadline, sorted(cache.rglob("*"))
        time.sleep(0.5)
