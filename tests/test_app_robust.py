"""The app holds up (issues 19 and 20): broken runs skipped whatever their content, seeded output
repeatable under concurrent requests, no rejected upload kept, its cache emptied on SIGTERM, and flags
that cannot work refused before start, each as one line."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_app import running_app
from test_pipeline import make_run  # tests/ is on sys.path (pytest rootdir-less test modules)

from ponogan.app.support import PipelineCache, find_checkpoints
from ponogan.models import create_generator

REPO = Path(__file__).resolve().parents[1]
APP_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "CUDA_VISIBLE_DEVICES": "",
    "OMP_NUM_THREADS": "1",
}


def _load_app():
    spec = importlib.util.spec_from_file_location("ponogan_app_robust", REPO / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    return app


def _handler(demo, name: str):
    """The function behind the app's event handler `name` (called directly, without a browser)."""
    return next(f for f in demo.fns.values() if f.name == name).fn


def _deep(depth: int):
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


def _edit_config(run: Path, edit) -> None:
    config = json.loads((run / "config.json").read_text())
    edit(config)
    (run / "config.json").write_text(json.dumps(config))


BROKEN_CONFIGS = {
    "deep_nesting": lambda run: (run / "config.json").write_text("[" * 100_000 + "]" * 100_000),
    "nested_past_the_bound": lambda run: _edit_config(run, lambda c: c.update(extra=_deep(40))),
    "data_not_a_mapping": lambda run: _edit_config(run, lambda c: c.update(data=["glyphs"])),
    "family_not_a_string": lambda run: _edit_config(run, lambda c: c.update(family=["pix2pix"])),
    "generators_wrong_type": lambda run: _edit_config(run, lambda c: c.update(generators="G")),
    "image_size_not_a_number": lambda run: _edit_config(run, lambda c: c["data"].update(image_size="big")),
    "not_utf8": lambda run: (run / "config.json").write_bytes(b"\xff\xfe{\x00"),
    "config_a_folder": lambda run: ((run / "config.json").unlink(), (run / "config.json").mkdir()),
    "truncated_weights": lambda run: (run / "model.safetensors").write_bytes(b"\x00" * 64),
}


@pytest.mark.parametrize("kind", sorted(BROKEN_CONFIGS))
def test_a_broken_run_is_skipped_whatever_its_content(kind, tmp_path, capsys):
    app = _load_app()
    root = tmp_path / "ckpts"
    make_run(root / "good_run", "pix2pix")
    BROKEN_CONFIGS[kind](make_run(root / kind, "pix2pix"))
    args = app.parse_args(["--checkpoints-dir", str(root), "--device", "cpu"])
    runs, default = app.load_runs(args, PipelineCache(device="cpu"))
    assert list(runs) == ["good_run"] and default == "good_run"
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"app.py: warning: skipping checkpoint {kind}: ") and len(line) < 400


def test_any_error_while_loading_one_run_skips_only_that_run(tmp_path, capsys, monkeypatch):
    """Whatever the loader raises (a huge network declared: MemoryError) holds at the per-run boundary."""
    app = _load_app()
    root = tmp_path / "ckpts"
    make_run(root / "good_run", "pix2pix")
    make_run(root / "huge_run", "pix2pix")
    cache = PipelineCache(device="cpu")
    load = cache.get

    def get(path):
        if Path(path).name == "huge_run":
            raise MemoryError("cannot allocate 4000 GB")
        return load(path)

    monkeypatch.setattr(cache, "get", get)
    runs, _ = app.load_runs(app.parse_args(["--checkpoints-dir", str(root)]), cache)
    assert list(runs) == ["good_run"]
    assert "skipping checkpoint huge_run: MemoryError: cannot allocate" in capsys.readouterr().err


def test_the_app_starts_with_the_good_runs(tmp_path, monkeypatch, capsys):
    app = _load_app()
    root = tmp_path / "ckpts"
    make_run(root / "good_run", "pix2pix")
    for kind in ("deep_nesting", "data_not_a_mapping"):
        BROKEN_CONFIGS[kind](make_run(root / kind, "pix2pix"))
    launched = []
    monkeypatch.setattr(app.gr.Blocks, "launch", lambda self, **kwargs: launched.append(kwargs))
    assert app.main(["--checkpoints-dir", str(root), "--device", "cpu", "--port", "7999"]) == 0
    assert len(launched) == 1 and len(capsys.readouterr().err.splitlines()) == 2
    assert [info.name for info in find_checkpoints(root)] == ["good_run"]


def _dropout_run(path: Path) -> Path:
    """A pix2pix run whose U-Net has dropout (6 levels: 2 dropout levels), as the shipped demo."""
    net = create_generator("unet_128", ngf=4, num_downs=6, shortcut="ms", use_dropout=True)
    return make_run(path, "pix2pix", generators={"G": net})


def test_seeded_paper_mode_is_repeatable_under_concurrent_requests(tmp_path):
    """Four threads call the translate handler in paper mode (dropout on, seed 0) on two checkpoints at
    once: every output equals the one a lone request gets."""
    app = _load_app()
    root = tmp_path / "ckpts"
    for name in ("run_a", "run_b"):
        _dropout_run(root / name)
    runs = {info.name: info for info in find_checkpoints(root)}
    demo = app.build_app(runs, "run_a", PipelineCache(device="cpu"), examples_dir=tmp_path / "examples")
    translate = _handler(demo, "translate")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "in.png")

    def run(name: str, paper_mode: bool = True) -> np.ndarray:
        return np.asarray(translate(str(tmp_path / "in.png"), "AtoB", 0, 1, None, name, paper_mode)[0])

    alone = {name: run(name) for name in runs}
    assert not np.array_equal(alone["run_a"], run("run_a", paper_mode=False))  # paper mode is in use
    differ = []

    def work(k: int) -> None:
        for j in range(8):
            name = ("run_a", "run_b")[(k + j) % 2]
            if not np.array_equal(run(name), alone[name]):
                differ.append((k, j))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not differ, f"{len(differ)} of 32 concurrent seeded requests differ from a lone one"


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--concurrency", "0"], "--concurrency must be at least 1"),
        (["--concurrency", "-3"], "--concurrency must be at least 1"),
        (["--max-pixels", "0"], "--max-pixels must be at least 4096"),
        (["--upload-max-age", "0"], "--upload-max-age must be at least 1"),
        (["--device", "cuda"], "CUDA is not available here"),
        (["--device", "tpu9"], "unknown device 'tpu9'"),
        (["--host", "256.1.1.1"], "cannot use host '256.1.1.1'"),
        (["--host", "not a host name"], "cannot use host 'not a host name'"),
        (["--port", "70000"], "port must be between 1 and 65535"),
    ],
)
def test_flags_that_cannot_work_are_one_line_before_start(flags, words, tmp_path, monkeypatch, capsys):
    app = _load_app()
    monkeypatch.setattr(app.resolve_device.__globals__["torch"].cuda, "is_available", lambda: False)
    loaded = []
    monkeypatch.setattr(app, "load_runs", lambda *a: loaded.append(a))
    assert app.main(["--checkpoints-dir", str(tmp_path), *flags]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("error: ") and words in line and not loaded  # refused before any model loads
    assert "in use" not in line


def test_an_address_of_another_machine_is_not_a_port_in_use(capsys):
    from ponogan.app.support import check_server
    from ponogan.core.messages import UsageError

    with pytest.raises(UsageError, match="cannot use host '192.0.2.1': .*not an address of this machine"):
        check_server("192.0.2.1", 7860)  # TEST-NET-1: never assigned to a machine
    check_server("127.0.0.1", 0)  # a free port: fine


@pytest.fixture
def upload_dir(tmp_path, monkeypatch):
    """gradio's upload cache for handlers called directly (`GRADIO_TEMP_DIR`)."""
    folder = tmp_path / "gradio_cache"
    folder.mkdir()
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(folder))
    return folder


@pytest.mark.parametrize(
    ("size", "words"),
    [((640, 8), "aspect ratio of 80:1"), ((2048, 1030), "would process 2048x1040")],
)
def test_an_upload_refused_by_the_processed_size_check_is_deleted_at_once(size, words, tmp_path, upload_dir):
    import gradio as gr

    app = _load_app()
    make_run(tmp_path / "ckpts" / "run", "pix2pix")
    runs = {info.name: info for info in find_checkpoints(tmp_path / "ckpts")}
    demo = app.build_app(runs, "run", PipelineCache(device="cpu"), examples_dir=tmp_path / "examples")
    outside = tmp_path / "mine.png"  # a file outside gradio's cache is never deleted
    Image.new("RGB", size, "white").save(outside)
    for handler in ("translate", "show_moments"):
        upload = upload_dir / "f00d" / "wide.png"
        upload.parent.mkdir(exist_ok=True)
        Image.new("RGB", size, "white").save(upload)
        for path in (upload, outside):
            with pytest.raises(gr.Error, match=f"Cannot use this upload: .*{words}"):
                _handler(demo, handler)(str(path))
        assert not upload.exists() and not upload.parent.exists() and outside.exists()


@pytest.mark.slow
def test_sigterm_empties_the_cache_of_the_apps_files(tmp_path):
    """A real app process: uploads and results are in its cache; after SIGTERM none of them are, a file
    of another app in the same cache stays, and the process ends by the signal (as services expect)."""
    from gradio_client import Client, handle_file

    root = tmp_path / "ckpts"
    make_run(root / "run", "pix2pix")
    cache, scratch = tmp_path / "gradio_cache", tmp_path / "tmp"
    scratch.mkdir()
    foreign = cache / "another_app" / "keep.png"
    foreign.parent.mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(foreign)
    env = {**os.environ, **APP_ENV, "GRADIO_TEMP_DIR": str(cache), "TMPDIR": str(scratch)}
    started = []
    with running_app(
        ["--checkpoints-dir", str(root), "--device", "cpu"], env, tmp_path / "app.log", started
    ) as url:
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 40, 3), np.uint8)).save(
            tmp_path / "u.png"
        )
        Client(url, verbose=False).predict(handle_file(str(tmp_path / "u.png")), api_name="/translate")
        files = {p for p in cache.rglob("*") if p.is_file()}
        assert len(files) >= 3 and list(scratch.glob("ponogan-examples-*"))  # upload, result, foreign
        [proc] = started
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == -signal.SIGTERM
    assert [p for p in cache.rglob("*") if p.is_file()] == [foreign]
    assert not [p.parent for p in files - {foreign} if p.parent.exists()]  # their folders too
    assert not list(scratch.glob("ponogan-examples-*"))


@pytest.mark.parametrize(
    ("text", "units"),
    [
        ("cafe\u0301", ["c", "a", "f", "e\u0301"]),  # a base and its combining mark: one
        ("\U0001f44d\U0001f3fd!", ["\U0001f44d\U0001f3fd", "!"]),  # skin tone
        ("\U0001f468\u200d\U0001f469\u200d\U0001f467", ["\U0001f468\u200d\U0001f469\u200d\U0001f467"]),  # ZWJ
        (
            "\U0001f1eb\U0001f1f7\U0001f1e9\U0001f1ea",
            ["\U0001f1eb\U0001f1f7", "\U0001f1e9\U0001f1ea"],
        ),  # flags
        ("\u263a\ufe0fa", ["\u263a\ufe0f", "a"]),  # variation selector
    ],
)
def test_text_is_counted_as_a_reader_sees_it(text, units):
    from ponogan.app.support import text_units

    assert text_units(text) == units


def test_the_24_character_limit_counts_what_a_reader_sees():
    from ponogan.app.support import prepare_text
    from ponogan.data.fonts import resolve_font

    font = resolve_font("DejaVuSans")
    accented = "e\u0301" * 24  # 48 code points, 24 characters
    assert prepare_text(accented, font).units == ["e\u0301"] * 24
    with pytest.raises(ValueError, match=r"limited to 24 characters \(got 25\)"):
        prepare_text("e\u0301" * 25, font)


def test_glyph_text_names_what_it_leaves_out_and_refuses_right_to_left():
    from ponogan.app.support import prepare_text, render_text
    from ponogan.data.fonts import resolve_font

    font = resolve_font("DejaVuSans")
    kept = prepare_text("a\x07b\u200bc", font)
    assert kept.units == ["a", "b", "c"] and "control or invisible character: U+0007, U+200B" in kept.note
    family = prepare_text("ab\U0001f468\u200d\U0001f469\u200d\U0001f467", font)
    assert family.units == ["a", "b"] and "emoji sequence" in family.note and "U+1F468 U+200D" in family.note
    missing = prepare_text("a\u4e2d", font)  # no CJK in DejaVu Sans
    assert missing.units == ["a"] and "no glyph in DejaVu Sans: '\u4e2d' (U+4E2D)" in missing.note
    assert "no glyph in" in prepare_text("a\U0001f600", resolve_font("pil-default")).note  # no cmap read
    for rtl in ("\u05e9\u05dc\u05d5\u05dd", "abc \u0645\u0631\u062d\u0628\u0627", "ab\u202ec"):
        with pytest.raises(ValueError, match="Right-to-left text .* is not supported"):
            prepare_text(rtl, font)
    with pytest.raises(ValueError, match="Nothing to draw"):
        prepare_text("\u4e2d\u6587", font)
    tiles, note = render_text("cafe\u0301", "DejaVuSans", 32)  # the accent drawn with its letter
    assert len(tiles) == 4 and note == ""
    assert np.array_equal(np.asarray(tiles[3]), np.asarray(render_text("caf\u00e9", "DejaVuSans", 32)[0][3]))


def test_the_glyph_tab_shows_the_left_out_line(tmp_path):
    import gradio as gr

    app = _load_app()
    make_run(tmp_path / "ckpts" / "run", "pix2pix")
    runs = {info.name: info for info in find_checkpoints(tmp_path / "ckpts")}
    demo = app.build_app(runs, "run", PipelineCache(device="cpu"), examples_dir=tmp_path / "examples")
    source, translated, note = _handler(demo, "translate_text")("Hi\x07!")
    assert source.size == translated.size == (3 * 32, 32) and "U+0007" in note
    with pytest.raises(gr.Error, match="Right-to-left"):
        _handler(demo, "translate_text")("\u05e9\u05dc\u05d5\u05dd")
    [box] = [c for c in demo.config["components"] if c["props"].get("elem_id") == "text-note"]
    assert box["type"] == "markdown"


def test_a_glyph_run_whose_font_cannot_draw_the_sample_opens_on_an_empty_screen(tmp_path):
    app = _load_app()
    run = make_run(tmp_path / "ckpts" / "run", "pix2pix")
    _edit_config(run, lambda c: c["data"].update(font_a="cmex10"))  # a font the renderer refuses
    runs = {info.name: info for info in find_checkpoints(tmp_path / "ckpts")}
    demo = app.build_app(runs, "run", PipelineCache(device="cpu"), examples_dir=tmp_path / "examples")
    [source] = [c for c in demo.config["components"] if c["props"].get("elem_id") == "text-source"]
    assert source["props"].get("value") is None
    with pytest.raises(app.gr.Error, match="cmex10"):
        _handler(demo, "translate_text")("PONO")
