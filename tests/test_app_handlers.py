"""The app's event handlers (`ponogan.app.handlers`) called as plain functions: no server, no browser.

Tiny run folders made here cover the families' controls (pix2pix paper mode, MUNIT's style seed and
reference image, a model not trained on glyphs); every shipped demo under checkpoints/, found by listing
the folder, opens and translates.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_pipeline import make_run  # tests/ is on sys.path (pytest rootdir-less test modules)

import ponogan.app.handlers as handlers_module
from ponogan.app.handlers import AppError, AppHandlers
from ponogan.app.support import PipelineCache, example_inputs, find_checkpoints, load_upload

REPO = Path(__file__).resolve().parents[1]
MAX_PIXELS = 5000  # so a 100 x 100 upload is too large

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    make_run(root / "pix", "pix2pix")  # U-Net with BatchNorm: paper mode changes its output
    make_run(root / "munit", "munit")
    make_run(root / "photos", "pix2pix", data={"mode": "aligned", "root": "datasets/facades"})
    return {info.name: info for info in find_checkpoints(root)}


@pytest.fixture(scope="module")
def cache():
    return PipelineCache(capacity=8, device="cpu")


@pytest.fixture
def upload_root(tmp_path):
    folder = tmp_path / "gradio_cache"
    folder.mkdir()
    return folder


@pytest.fixture
def app(runs, cache, upload_root):
    """Handlers over the tiny runs, opened on `pix`; their notices collect in `app.notices`."""
    notices = []
    handlers = AppHandlers(
        runs,
        "pix",
        cache,
        max_pixels=MAX_PIXELS,
        upload_root=upload_root,
        notify=lambda level, message, title=None: notices.append((level, message, title)),
    )
    handlers.notices = notices
    return handlers


def _upload(root: Path, name: str, image: Image.Image | None = None, data: bytes | None = None) -> Path:
    """A file as gradio stores an upload: in a folder of its own inside the cache."""
    path = root / f"f{len(list(root.iterdir()))}" / name
    path.parent.mkdir()
    if data is not None:
        path.write_bytes(data)
    else:
        image.save(path)
    return path


def _colour(height: int = 29, width: int = 37, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), np.uint8))


def test_one_upload_is_decoded_once_and_translated_in_both_modes(app, cache, runs, upload_root, monkeypatch):
    """Upload check, note, Translate (eval and paper mode) and Moments on one upload: one decode."""
    decodes = []

    def counted(path, max_pixels):
        decodes.append(path)
        return load_upload(path, max_pixels)

    monkeypatch.setattr(handlers_module, "load_upload", counted)
    upload = _upload(upload_root, "in.png", _colour())
    payload = {"path": str(upload)}
    assert app.check_upload(payload) is True
    note, moments_input = app.on_input(payload, None, None)
    assert "in colour" in note and "32x32 black-on-white glyphs in DejaVu Sans" in note
    assert moments_input == str(upload.resolve())
    plain, (shown, outputs) = app.translate(str(upload))
    paper, _ = app.translate(str(upload), paper_mode=True)
    gallery = app.show_moments(str(upload))
    assert app.input_note(payload, "pix", "AtoB") == note
    assert len(decodes) == 1

    pipe = cache.get(runs["pix"].path)
    image = load_upload(upload, MAX_PIXELS)
    assert plain.size == paper.size == shown.size == (37, 29) and len(outputs) == 1
    for result, mode in ((plain, "eval"), (paper, "paper")):
        assert np.array_equal(np.asarray(result), np.asarray(pipe([image], seed=0, test_mode=mode)[0]))
    assert not np.array_equal(np.asarray(plain), np.asarray(paper))
    (before, after), samples = app.result_views((shown, outputs))
    assert before is shown and after is outputs[0] and [c for _, c in samples] == ["seed 0, sample 1"]
    assert [caption.split(" (")[0] for _, caption in gallery[:2]] == ["level 1 mean", "level 1 std"]
    assert app.notices == []


def test_munit_style_seed_samples_and_reference_image(app, upload_root):
    upload = str(_upload(upload_root, "in.png", _colour()))
    strip, (_, outputs) = app.translate(upload, "BtoA", seed=3, n_styles=3, checkpoint="munit")
    assert strip.size == (3 * 37 + 2 * 4, 29) and len(outputs) == 3
    again = app.translate(upload, "BtoA", seed=3, n_styles=3, checkpoint="munit")[0]
    other = app.translate(upload, "BtoA", seed=4, n_styles=3, checkpoint="munit")[0]
    assert np.array_equal(np.asarray(strip), np.asarray(again))  # the seed picks the styles
    assert not np.array_equal(np.asarray(strip), np.asarray(other))
    captions = [caption for _, caption in app.result_views((None, outputs), seed=3)[1]]
    assert captions == ["seed 3, sample 1", "seed 3, sample 2", "seed 3, sample 3"]
    reference = str(_upload(upload_root, "style.png", _colour(seed=1)))
    guided, (_, one) = app.translate(upload, "AtoB", n_styles=3, style_image=reference, checkpoint="munit")
    assert guided.size == (37, 29) and len(one) == 1
    assert app.result_views((None, one), style_image=reference)[1][0][1] == "reference image, sample 1"

    view = app.model_view("munit", clear=True)
    assert view.multimodal and view.show_directions and "munit" in view.style_label
    assert [d for _, d in view.directions] == ["AtoB", "BtoA"] and view.clear and view.tab == "text"
    pix = app.model_view("pix")
    assert not pix.multimodal and not pix.show_directions and pix.test_mode_matters and not pix.clear


def test_refused_uploads_are_deleted_from_the_cache_and_nothing_else_is(app, upload_root, tmp_path):
    text = _upload(upload_root, "text.png", data=b"plain text with an image extension")
    assert app.check_upload({"path": str(text)}) is False
    assert not text.exists() and not text.parent.exists()
    [(level, message, title)] = app.notices
    assert level == "warning" and "not an image Pillow can read" in message and title == "Invalid image"

    outside = tmp_path / "mine.png"  # the visitor's own file: refused, never deleted
    Image.new("RGB", (100, 100), "white").save(outside)
    large = _upload(upload_root, "large.png", Image.new("RGB", (100, 100), "white"))
    wide = _upload(upload_root, "wide.png", Image.new("RGB", (500, 8), "white"))  # under MAX_PIXELS
    for path, words in ((large, "exceeds max_pixels=5000"), (outside, "exceeds"), (wide, "aspect ratio")):
        with pytest.raises(AppError, match=f"Cannot use this upload: .*{words}") as refused:
            app.translate(str(path))
        assert refused.value.title == "Invalid image"
    assert not large.exists() and not wide.exists() and outside.exists()
    assert app.on_input({"path": str(large)}, None, None) == ("", None)  # gone: no note, no error
    with pytest.raises(AppError, match="Upload or paste an image first"):
        app.translate(None)
    small = str(_upload(upload_root, "small.png", _colour()))
    with pytest.raises(AppError, match="not available for a pix2pix"):
        app.translate(small, "BtoA")
    with pytest.raises(AppError, match="Unknown checkpoint 'nope'"):
        app.translate(small, checkpoint="nope")
    assert app.on_input({"path": str(outside)}, None, None) == ("", None)  # outside the trusted roots


def test_glyph_text_tab_and_a_model_without_it(app, tmp_path):
    source, translated, note = app.translate_text("Hi\x07!")
    assert source.size == translated.size == (3 * 32, 32) and "U+0007" in note
    serif, _, _ = app.translate_text("Ab", "BtoA", "munit", paper_mode=True)
    assert serif.size == (2 * 32, 32)
    with pytest.raises(AppError, match="Right-to-left"):
        app.translate_text("\u05e9\u05dc\u05d5\u05dd")
    with pytest.raises(AppError, match="not trained on the built-in glyph data"):
        app.translate_text("PONO", checkpoint="photos")
    view = app.model_view("photos", clear=True)
    assert not view.glyphs and view.tab == "image" and view.directions == [("facades A → facades B", "AtoB")]
    start = app.first_screen(tmp_path / "start")
    assert all(path.is_file() for path in start) and Image.open(start[1]).size == (4 * 32, 32)
    app.default = "photos"
    assert app.first_screen(tmp_path / "none") == (None, None)
    assert [d for _, d in app.api_directions("pix")] == ["AtoB", "BtoA"]


# the shipped demos (not a user's own runs, which `python train.py` also writes under checkpoints/)
SHIPPED = sorted(info.name for info in find_checkpoints(REPO / "checkpoints") if info.is_demo)


def test_the_demos_are_listed():
    assert len(SHIPPED) >= 5, f"expected a demo per family under {REPO / 'checkpoints'}, found {SHIPPED}"


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_demo_opens_and_translates(name, cache, upload_root, tmp_path):
    """Each shipped demo: its view, its first screen, an example per direction translated."""
    runs = {info.name: info for info in find_checkpoints(REPO / "checkpoints")}
    app = AppHandlers(runs, name, cache, upload_root=upload_root)
    view = app.model_view(name, clear=True)
    assert f"### {name}" in view.card and view.direction == view.directions[0][1]
    for _, direction in view.directions:
        [example] = example_inputs(runs[name].config, direction, limit=1) or [_colour(64, 64)]
        path = _upload(upload_root, f"{direction}.png", example)
        output, (_, outputs) = app.translate(str(path), direction, checkpoint=name)
        assert output.size == example.size and len(outputs) == 1
    if view.glyphs:
        source, translated, _ = app.translate_text("Hello", checkpoint=name)
        assert source.size == translated.size and source.size[0] == 5 * source.size[1]
        assert all(path.is_file() for path in app.first_screen(tmp_path))


def test_the_handlers_import_no_gradio():
    """The handlers and what they import from the app package stay free of gradio (tested without it)."""
    for module in ("handlers", "support", "examples"):
        tree = ast.parse((REPO / "ponogan" / "app" / f"{module}.py").read_text())
        imported = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        imported += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        assert not [name for name in imported if name.split(".")[0] == "gradio"], module
