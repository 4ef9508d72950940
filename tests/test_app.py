"""The Gradio app: its support logic, then `python app.py` driven by gradio_client and headless Chromium."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_pipeline import make_run  # tests/ is on sys.path (pytest rootdir-less test modules)

from ponogan.app.support import (
    PipelineCache,
    find_checkpoints,
    glyph_font,
    hstack,
    load_upload,
    model_card,
    moment_gallery,
    render_text,
    translate_tiles,
)

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# How long the browser tests wait for the app: CI runs them beside training tests on every core.
UI_WAIT_MS = 90_000
MAX_PIXELS = 5000  # the served app refuses larger uploads, so a 100 x 100 image is "too large"
# Every demo shipped under checkpoints/, found by listing it (a demo added later is covered too); a
# user's own runs there (`python train.py` writes one) are not shipped demos.
SHIPPED = [info.name for info in find_checkpoints(REPO / "checkpoints") if info.is_demo]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("checkpoints")
    make_run(root / "zz_run_munit", "munit", metrics={"fid": 12.5, "paired": {"l1": 0.25}})
    make_run(root / "demo_tiny_pix2pix", "pix2pix")
    make_run(root / "demo_tiny_pix2pix" / "state" / "old", "pix2pix")  # training state: not listed
    (root / "broken").mkdir()
    (root / "broken" / "model.safetensors").write_bytes(b"x")  # no config.json: not listed
    for name in SHIPPED:  # listed after demo_tiny_pix2pix, which stays the one the app opens on
        shutil.copytree(REPO / "checkpoints" / name, root / "shipped" / name)
    return root


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("uploads")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (29, 37, 3), dtype=np.uint8)).save(root / "small.png")
    Image.new("RGB", (100, 100), "white").save(root / "large.png")
    Image.new("RGB", (500, 8), "white").save(root / "wide.png")  # under MAX_PIXELS, aspect 62:1
    (root / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 8)
    (root / "text.png").write_text("plain text with an image extension")
    return root


def test_find_checkpoints_lists_demos_first(checkpoints):
    names = [info.name for info in find_checkpoints(checkpoints)]
    assert names == ["demo_tiny_pix2pix", *(f"shipped/{name}" for name in SHIPPED), "zz_run_munit"]
    assert find_checkpoints(checkpoints / "missing") == []


def test_model_card(checkpoints):
    munit = next(i for i in find_checkpoints(checkpoints) if i.name == "zz_run_munit")
    card = model_card(munit.config, munit.name)
    assert "**family**: munit" in card and "shortcut PONO-MS" in card
    assert "built-in glyphs (paired, plain): DejaVuSans → DejaVuSerif-Bold, 32 px" in card
    assert "| fid | 12.5 |" in card and "| paired.l1 | 0.25 |" in card and "**steps**: 3" in card
    assert "no metrics recorded" in model_card({"family": "pix2pix"})


def test_glyph_font_and_text_rendering():
    config = {"data": {"mode": "glyphs", "font_a": "DejaVuSans", "font_b": "cmr10"}}
    assert glyph_font(config, "AtoB") == "DejaVuSans" and glyph_font(config, "BtoA") == "cmr10"
    swapped = {"data": {**config["data"], "direction": "BtoA"}}
    assert glyph_font(swapped, "AtoB") == "cmr10"
    assert glyph_font({"data": {"mode": "unaligned"}}, "AtoB") is None
    tiles, note = render_text("Hi x", "DejaVuSans", 32)
    assert len(tiles) == 4 and note == "" and all(t.size == (32, 32) for t in tiles)
    assert np.asarray(tiles[2]).min() == 255  # the space is blank
    assert np.asarray(tiles[0]).min() < 50  # black glyph on white
    assert hstack(tiles, gap=2).size == (4 * 32 + 3 * 2, 32)
    with pytest.raises(ValueError, match="limited to 24"):
        render_text("x" * 25, "DejaVuSans", 32)
    with pytest.raises(ValueError, match="Type some text"):
        render_text("  ", "DejaVuSans", 32)


def test_load_upload_messages(images):
    assert load_upload(images / "small.png", MAX_PIXELS).size == (37, 29)
    with pytest.raises(ValueError, match="Cannot use this upload: 100x100 = 10000 pixels exceeds"):
        load_upload(images / "large.png", MAX_PIXELS)
    with pytest.raises(ValueError, match="corrupt or truncated image data"):
        load_upload(images / "corrupt.png", MAX_PIXELS)
    with pytest.raises(ValueError, match="not an image Pillow can read"):
        load_upload(images / "text.png", MAX_PIXELS)


def test_pipeline_cache_and_moment_gallery(checkpoints, images):
    cache = PipelineCache(capacity=1, device="cpu")
    first = cache.get(checkpoints / "demo_tiny_pix2pix")
    assert cache.get(checkpoints / "demo_tiny_pix2pix") is first
    cache.get(checkpoints / "zz_run_munit")
    assert cache.get(checkpoints / "demo_tiny_pix2pix") is not first  # evicted at capacity 1
    gallery = moment_gallery(first, Image.open(images / "small.png"), "AtoB")
    assert [caption.split(" (")[0] for _, caption in gallery[:2]] == ["level 1 mean", "level 1 std"]
    assert len(gallery) == 2 * len(first.moments(Image.open(images / "small.png")))


def test_translate_tiles_keeps_spaces_blank(checkpoints):
    pipe = PipelineCache(device="cpu").get(checkpoints / "zz_run_munit")
    tiles, _ = render_text("a b", "DejaVuSans", 32)
    out = translate_tiles(pipe, tiles, "AtoB")
    assert len(out) == 3 and all(t.size == (32, 32) for t in out)
    assert np.asarray(out[1]).min() == 255  # the space: not sent through the model
    assert not np.array_equal(np.asarray(out[0]), np.asarray(tiles[0]))
    assert np.array_equal(np.asarray(out[0]), np.asarray(pipe([tiles[0]], seed=0)[0]))


def test_collect_checkpoints_picks_what_to_open(checkpoints, tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("ponogan_app", REPO / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False" and os.environ["HF_HUB_OFFLINE"] == "1"

    runs, default, skipped = app.collect_checkpoints(app.parse_args(["--checkpoints-dir", str(checkpoints)]))
    shipped = [f"shipped/{name}" for name in SHIPPED]
    assert default == "demo_tiny_pix2pix" and list(runs) == ["demo_tiny_pix2pix", *shipped, "zz_run_munit"]
    assert list(skipped) == ["broken"] and "needs config.json" in skipped["broken"]
    inside = str(checkpoints / "zz_run_munit")
    args = app.parse_args(["--checkpoints-dir", str(checkpoints), "--checkpoint", inside])
    assert app.collect_checkpoints(args)[1] == "zz_run_munit"
    outside = make_run(tmp_path / "elsewhere", "cyclegan")
    runs, default, _ = app.collect_checkpoints(
        app.parse_args(["--checkpoints-dir", str(checkpoints), "--checkpoint", str(outside)])
    )
    assert default == str(outside) and list(runs)[0] == default and len(runs) == 3 + len(SHIPPED)
    make_run(tmp_path / "ckpts" / app.DEFAULT_DEMO, "pix2pix")
    make_run(tmp_path / "ckpts" / "demo_a", "pix2pix")
    assert (
        app.collect_checkpoints(app.parse_args(["--checkpoints-dir", str(tmp_path / "ckpts")]))[1]
        == app.DEFAULT_DEMO
    )
    with pytest.raises(ValueError, match="no checkpoints under"):
        app.collect_checkpoints(app.parse_args(["--checkpoints-dir", str(tmp_path / "empty")]))
    with pytest.raises(ValueError, match="is not a run folder"):
        app.collect_checkpoints(app.parse_args(["--checkpoint", str(tmp_path)]))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_app(args: list[str], env: dict[str, str], log: Path, started: list | None = None):
    """``python app.py ARGS`` (output to ``log``) on a free localhost port; yields its URL once it
    answers, and stops it on exit. Fails the test with the log if it exits or takes over 90 s.
    ``started``, when given, receives the process (``subprocess.Popen``)."""
    port = free_port()
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, str(REPO / "app.py"), *args, "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    if started is not None:
        started.append(proc)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 90
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"app.py exited with {proc.returncode}:\n{log.read_text()}")
            try:
                urllib.request.urlopen(url + "gradio_api/info", timeout=2).read()
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    pytest.fail(f"app.py did not start in 90 s:\n{log.read_text()}")
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def gradio_tmp(tmp_path_factory):
    """The served app's upload and result cache (`GRADIO_TEMP_DIR`)."""
    return tmp_path_factory.mktemp("gradio_tmp")


@pytest.fixture(scope="module")
def server(checkpoints, gradio_tmp, tmp_path_factory):
    """`python app.py` on a free localhost port, serving the tiny checkpoints; yields its URL."""
    log = tmp_path_factory.mktemp("server") / "app.log"
    env = {
        **os.environ,
        "GRADIO_TEMP_DIR": str(gradio_tmp),
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "CUDA_VISIBLE_DEVICES": "",
        "OMP_NUM_THREADS": "1",
    }
    args = ["--checkpoints-dir", str(checkpoints), "--max-pixels", str(MAX_PIXELS), "--device", "cpu"]
    with running_app(args, env, log) as url:
        yield url


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client

    return Client(server, verbose=False)


def test_client_translate_returns_png(client, images):
    from gradio_client import handle_file

    result = client.predict(handle_file(str(images / "small.png")), api_name="/translate")
    with Image.open(result) as img:
        assert img.format == "PNG" and img.size == (37, 29)


def test_client_munit_styles_and_reference(client, images):
    from gradio_client import handle_file

    strip = client.predict(
        handle_file(str(images / "small.png")),
        seed=3,
        n_styles=3,
        checkpoint="zz_run_munit",
        api_name="/translate",
    )
    with Image.open(strip) as img:
        assert img.size == (3 * 37 + 2 * 4, 29)
    small = handle_file(str(images / "small.png"))
    guided = client.predict(
        small, direction="BtoA", checkpoint="zz_run_munit", style_image=small, api_name="/translate"
    )
    with Image.open(guided) as img:
        assert img.size == (37, 29)


def test_client_text_and_moments(client, images):
    from gradio_client import handle_file

    source, translated = client.predict("Ab", api_name="/translate_text")
    assert Image.open(source).size == Image.open(translated).size == (64, 32)
    gallery = client.predict(handle_file(str(images / "small.png")), api_name="/moments")
    assert gallery and gallery[0]["caption"].startswith("level 1 mean")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("large.png", "exceeds max_pixels=5000"),
        ("corrupt.png", "corrupt or truncated image data"),
        ("text.png", "not an image Pillow can read"),
    ],
)
def test_client_bad_uploads_get_a_message(client, images, name, message):
    from gradio_client import handle_file

    with pytest.raises(Exception, match=message):
        client.predict(handle_file(str(images / name)), api_name="/translate")
    with pytest.raises(Exception, match="not available for a pix2pix"):
        client.predict(handle_file(str(images / "small.png")), direction="BtoA", api_name="/translate")


def test_rejected_uploads_leave_the_cache_at_once(client, images, gradio_tmp):
    """A rejected upload is deleted from gradio's cache by the app, not kept until the cache is cleaned."""
    from gradio_client import handle_file

    for name in ("large.png", "text.png", "corrupt.png", "wide.png"):
        with pytest.raises(Exception, match="Cannot use this upload"):
            client.predict(handle_file(str(images / name)), api_name="/translate")
        assert not [p for p in gradio_tmp.rglob(name)], f"{name} is still in gradio's cache"
    result = client.predict(handle_file(str(images / "small.png")), api_name="/translate")
    assert Path(result).is_file() and list(gradio_tmp.rglob("small.png"))  # accepted uploads stay


def test_client_paper_test_mode(client, images, checkpoints):
    """`paper_mode` reaches the pipeline: BatchNorm with the image's statistics, seeded dropout."""
    from gradio_client import handle_file

    from ponogan.inference.pipeline import TranslationPipeline

    small = handle_file(str(images / "small.png"))
    plain = client.predict(small, api_name="/translate")
    paper = client.predict(small, paper_mode=True, api_name="/translate")
    pipe = TranslationPipeline.from_pretrained(checkpoints / "demo_tiny_pix2pix", device="cpu")
    image = load_upload(images / "small.png", MAX_PIXELS)
    for result, mode in ((plain, "eval"), (paper, "paper")):
        expected = np.asarray(pipe([image], seed=0, test_mode=mode)[0], np.int16)
        assert np.abs(np.asarray(Image.open(result), np.int16) - expected).max() <= 1
    assert not np.array_equal(np.asarray(Image.open(plain)), np.asarray(Image.open(paper)))


def _load_app():
    import importlib.util

    spec = importlib.util.spec_from_file_location("ponogan_app", REPO / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    return app


def test_paper_mode_control_only_for_batchnorm_models(checkpoints, tmp_path):
    """The checkbox shows for the pix2pix U-Net (BatchNorm) and hides for MUNIT (no BN, no dropout)."""
    app = _load_app()
    cache = PipelineCache(device="cpu")
    runs = {info.name: info for info in find_checkpoints(checkpoints)}
    for default, visible in (("demo_tiny_pix2pix", True), ("zz_run_munit", False)):
        demo = app.build_app(runs, default, cache, examples_dir=tmp_path / default)
        [box] = [c for c in demo.config["components"] if c["props"].get("elem_id") == "paper-mode"]
        assert box["props"]["visible"] is visible and box["props"]["label"] == app.PAPER_MODE_LABEL
        assert model_view(demo, "zz_run_munit")["paper-mode"].visible is False
        assert model_view(demo, "demo_tiny_pix2pix")["paper-mode"].visible is True
        assert demo.delete_cache == (300, 3600)


def model_view(demo, name: str) -> dict:
    """What the app sets when checkpoint `name` is chosen (its `model_view`), by output `elem_id`."""
    fn = next(f for f in demo.fns.values() if f.name == "model_view")
    updates = fn.fn(name)
    assert set(updates) <= set(fn.outputs)  # every component it updates is an output of the event
    return {block.elem_id: update for block, update in updates.items() if block.elem_id}


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} missing: apt-get install -y chromium")
def test_browser_upload_translate_and_paper_mode(server, images):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(UI_WAIT_MS)
            expect.set_options(timeout=UI_WAIT_MS)
            page.goto(server)
            page.get_by_role("tab", name="Image").click()  # a glyph model opens on the Glyph text tab
            page.locator("#input-image input[type=file]").set_input_files(str(images / "small.png"))
            page.locator("#translate-btn").click()
            output = page.locator("#output-image img")
            output.wait_for(timeout=UI_WAIT_MS)
            src = output.get_attribute("src")
            data = urllib.request.urlopen(src if src.startswith("http") else server + src.lstrip("/")).read()
            with Image.open(io.BytesIO(data)) as img:
                assert img.format == "PNG" and img.size == (37, 29)

            paper_box = page.locator("#paper-mode input[type=checkbox]")  # pix2pix U-Net: BatchNorm
            assert page.get_by_text("pix2pix test mode: batch statistics + dropout").is_visible()
            paper_box.check()
            page.locator("#translate-btn").click()
            page.wait_for_function(
                "src => { const img = document.querySelector('#output-image img'); "
                "return img && img.getAttribute('src') !== src; }",
                arg=src,
                timeout=UI_WAIT_MS,
            )
            paper_src = output.get_attribute("src")
            paper = urllib.request.urlopen(
                paper_src if paper_src.startswith("http") else server + paper_src.lstrip("/")
            ).read()
            assert (
                np.asarray(Image.open(io.BytesIO(paper))).tolist()
                != np.asarray(Image.open(io.BytesIO(data))).tolist()
            )

        finally:
            browser.close()


# --- what a first visitor sees (issue 14): examples, before/after, checks on upload, model switch ---

needs_chromium = pytest.mark.skipif(
    not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} missing: apt-get install -y chromium"
)


@contextlib.contextmanager
def _browser_page(server):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.set_default_timeout(UI_WAIT_MS)
            expect.set_options(timeout=UI_WAIT_MS)
            page.goto(server)
            yield page
        finally:
            browser.close()


def _shown_png(server: str, img) -> Image.Image:
    """The PNG an `<img>` locator shows, fetched from the server."""
    src = img.get_attribute("src")
    data = urllib.request.urlopen(src if src.startswith("http") else server + src.lstrip("/")).read()
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return image


def _wait_src_change(page, selector: str, old: str | None) -> None:
    page.wait_for_function(
        "([sel, old]) => { const img = document.querySelector(sel); "
        "return img && img.getAttribute('src') && img.getAttribute('src') !== old; }",
        arg=[selector, old],
        timeout=UI_WAIT_MS,
    )


@needs_chromium
def test_browser_first_screen_and_examples(server, checkpoints):
    """A glyph model opens on the Glyph text tab with a result on screen; a sample text fills the box and
    translates; an image example fills the input, translates at once and shows the before/after slider;
    Translate on that input (paper mode, so the output changes) gives the pipeline's output."""
    from playwright.sync_api import expect

    from ponogan.inference.pipeline import TranslationPipeline

    with _browser_page(server) as page:
        expect(page.get_by_role("tab", name="Glyph text")).to_have_attribute("aria-selected", "true")
        start = page.locator("#text-output img")
        start.wait_for(timeout=UI_WAIT_MS)
        assert _shown_png(server, start).size == (4 * 32, 32)  # "PONO", already translated
        page.get_by_role("button", name="Hello", exact=True).click()
        _wait_src_change(page, "#text-output img", start.get_attribute("src"))
        assert page.locator("#glyph-text textarea").input_value() == "Hello"
        assert _shown_png(server, page.locator("#text-output img")).size == (5 * 32, 32)

        page.get_by_role("tab", name="Image").click()
        expect(page.get_by_text("Examples: DejaVu Sans → DejaVu Serif Bold")).to_be_visible()
        page.locator(".examples .gallery-item").first.click()
        page.locator("#input-image img").wait_for(timeout=UI_WAIT_MS)
        output = page.locator("#output-image img")
        output.wait_for(timeout=UI_WAIT_MS)
        expect(page.locator("#before-after img")).to_have_count(2, timeout=UI_WAIT_MS)  # before and after
        expect(page.locator("#before-after img").first).to_be_visible()
        example = _shown_png(server, page.locator("#input-image img")).convert("RGB")
        assert example.size == (32, 32) and np.asarray(example).min() < 60  # a held-out glyph tile

        eval_src = output.get_attribute("src")
        page.locator("#paper-mode input[type=checkbox]").check()
        page.locator("#translate-btn").click()
        _wait_src_change(page, "#output-image img", eval_src)
        pipe = TranslationPipeline.from_pretrained(checkpoints / "demo_tiny_pix2pix", device="cpu")
        expected = np.asarray(pipe([example], seed=0, test_mode="paper")[0], np.int16)
        shown = np.asarray(_shown_png(server, output).convert("RGB"), np.int16)
        assert np.abs(shown - expected).max() <= 1


@needs_chromium
def test_browser_invalid_upload_is_reported_at_once(server, images):
    """A bad file gets one message on upload (no Translate click) and leaves the input; a colour image
    gets the out-of-domain note."""
    with _browser_page(server) as page:
        page.get_by_role("tab", name="Image").click()
        upload = page.locator("#input-image input[type=file]")
        for name, message in (
            ("text.png", "not an image Pillow can read"),
            ("large.png", "exceeds max_pixels=5000"),
        ):
            upload.set_input_files(str(images / name))
            page.get_by_text(message).first.wait_for(timeout=UI_WAIT_MS)
            page.wait_for_function("() => !document.querySelector('#input-image img')", timeout=UI_WAIT_MS)
        assert page.get_by_text("Error", exact=True).count() == 0  # a warning, not an error box
        upload.set_input_files(str(images / "small.png"))  # 37 x 29 random colours
        note = page.locator("#domain-note")
        note.get_by_text("in colour").wait_for(timeout=UI_WAIT_MS)
        assert "trained on 32x32 black-on-white glyphs in DejaVu Sans" in note.inner_text()


@needs_chromium
def test_browser_checkpoint_switch_clears_results_and_shows_munit_styles(server):
    from playwright.sync_api import expect

    with _browser_page(server) as page:
        page.get_by_role("tab", name="Image").click()
        page.locator(".examples .gallery-item").first.click()
        page.locator("#before-after img").first.wait_for(timeout=UI_WAIT_MS)
        expect(page.locator("#direction")).to_be_hidden()  # pix2pix: one direction, no radio

        page.locator("#checkpoint input").click()
        page.get_by_role("option", name="zz_run_munit").click()
        expect(page.locator("#before-after img")).to_have_count(0, timeout=UI_WAIT_MS)  # results cleared
        expect(page.get_by_role("tab", name="Glyph text")).to_have_attribute("aria-selected", "true")
        expect(page.get_by_label("DejaVu Serif Bold → DejaVu Sans")).to_be_visible()

        page.get_by_role("tab", name="Image").click()
        expect(page.locator("#output-image")).to_be_hidden()
        expect(page.locator("#styles")).to_be_visible()
        box = page.locator(".examples").filter(has_text="Examples: DejaVu Serif Bold → DejaVu Sans")
        expect(box).to_be_visible()
        page.locator("#n-styles input[type=number]").fill("3")
        page.locator("#n-styles input[type=number]").press("Enter")
        box.locator(".gallery-item").first.click()  # sets the example's direction too
        expect(page.locator("#styles img")).to_have_count(3, timeout=UI_WAIT_MS)
        expect(page.get_by_label("DejaVu Serif Bold → DejaVu Sans")).to_be_checked()
        expect(page.locator("#before-after img")).to_have_count(2)


@pytest.mark.slow
@needs_chromium
def test_browser_every_shipped_demo_translates(server, images):
    """Each run under checkpoints/, picked in the browser, translates an upload (the input stays across
    a checkpoint switch; the results are cleared)."""
    from playwright.sync_api import expect

    assert SHIPPED, f"no run folders under {REPO / 'checkpoints'}"
    with _browser_page(server) as page:
        page.get_by_role("tab", name="Image").click()
        page.locator("#input-image input[type=file]").set_input_files(str(images / "small.png"))
        page.locator("#input-image img").wait_for(timeout=UI_WAIT_MS)
        for name in SHIPPED:
            page.locator("#checkpoint input").click()
            page.get_by_role("option", name=f"shipped/{name}", exact=True).click()
            expect(page.locator("#model-card")).to_contain_text(f"shipped/{name}", timeout=UI_WAIT_MS)
            expect(page.locator("#before-after img")).to_have_count(0, timeout=UI_WAIT_MS)
            page.get_by_role("tab", name="Image").click()
            page.locator("#translate-btn").click()
            expect(page.locator("#before-after img")).to_have_count(2, timeout=UI_WAIT_MS)
            assert _shown_png(server, page.locator("#before-after img").nth(1)).size == (37, 29)
