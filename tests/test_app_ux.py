"""The app's first-visitor helpers (issue 14): direction labels, the model card's generator line, examples,
out-of-domain notes, server address resolution, and `main` wiring them into `launch` (browser checks of the
same features are in test_app.py, which shares its running server)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_app import free_port
from test_pipeline import make_run  # tests/ is on sys.path (pytest rootdir-less test modules)

from ponogan.app.support import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    InputDomain,
    describe_generator,
    direction_labels,
    domain_names,
    domain_note,
    example_inputs,
    file_in,
    font_display_name,
    input_domain,
    model_card,
    resolve_server,
    start_tab,
)

REPO = Path(__file__).resolve().parents[1]
GLYPHS = {"mode": "glyphs", "image_size": 64, "font_a": "DejaVuSans", "font_b": "DejaVuSerif-Bold"}


def _demo_config(name: str) -> dict:
    return json.loads((REPO / "checkpoints" / name / "config.json").read_text())


def test_direction_labels_name_the_domains():
    glyphs = {"data": GLYPHS}
    assert direction_labels(glyphs, ("AtoB", "BtoA")) == {
        "AtoB": "DejaVu Sans → DejaVu Serif Bold",
        "BtoA": "DejaVu Serif Bold → DejaVu Sans",
    }
    swapped = {"data": {**GLYPHS, "direction": "BtoA"}}  # trained BtoA: the model's A is the dataset's B
    assert direction_labels(swapped, ("AtoB",)) == {"AtoB": "DejaVu Serif Bold → DejaVu Sans"}
    horses = {"data": {"mode": "unaligned", "root": "datasets/horse2zebra/"}}
    assert domain_names(horses) == ("horse", "zebra")
    assert domain_names({"data": {"mode": "aligned", "root": "/data/facades"}}) == ("facades A", "facades B")
    assert domain_names(
        {"data": {"mode": "list", "root": "x", "list_a": "lists/photos.txt", "list_b": "lists/paintings.txt"}}
    ) == ("photos", "paintings")
    assert direction_labels({}, ("AtoB",)) == {"AtoB": "A → B"}
    assert direction_labels({"data": {"mode": "unaligned"}}, ("BtoA",)) == {"BtoA": "B → A"}
    assert font_display_name("DejaVuSansMono-BoldOblique") == "DejaVu Sans Mono Bold Oblique"
    assert font_display_name("/nowhere/MyFont.ttf") == "MyFont"  # not on this machine: its own name


def test_generator_line_reads_the_spec_not_the_preset_name():
    pix2pix = _demo_config("demo_pix2pix_pono_ms_glyphs")
    line = describe_generator(pix2pix["generators"]["G"])
    assert line.startswith("U-Net, 6 levels, 64 px, ngf 14, norm batch")
    assert "shortcut PONO-MS" in line and "layout ponogan" in line
    card = model_card(pix2pix, "demo")
    assert "unet_256" not in card and "- **direction**: DejaVu Sans → DejaVu Serif Bold" in card
    cyclegan = model_card(_demo_config("demo_cyclegan_pono_ms_glyphs"), "demo")
    assert "- **G_A, G_B**: ResNet, 4 residual blocks, 2 downsamplings, ngf 16, norm instance" in cyclegan
    assert "- **directions**: DejaVu Sans → DejaVu Serif Bold; DejaVu Serif Bold → DejaVu Sans" in cyclegan
    official = describe_generator(
        {"name": "resnet_9blocks", "kwargs": {"shortcut": "ms", "layout": "official"}}
    )
    assert official.startswith("ResNet, 9 residual blocks, 2 downsamplings, ngf 64")
    assert official.endswith("shortcut PONO-MS, layout official")
    assert describe_generator({"name": "unet_128", "kwargs": {"shortcut": None}}).startswith(
        "U-Net, 7 levels, 128 px"
    )
    munit = describe_generator({"name": "munit", "kwargs": {"dim": 4, "n_res": 1}})
    assert munit == (
        "MUNIT auto-encoder, 2 downsamplings, 1 residual blocks, dim 4, style dim 8, "
        "shortcut PONO-MS, layout ponogan"
    )
    drit = describe_generator({"name": "drit", "kwargs": {"shortcut": "ms", "dim": 16, "n_res": 1}})
    assert drit == "DRIT translator (concat 0), 1 residual blocks, dim 16, attribute dim 8, shortcut PONO-MS"


def test_start_tab_fits_the_model():
    assert start_tab({"data": GLYPHS}) == "text"
    assert start_tab({"data": {"mode": "unaligned", "root": "x"}}) == "image" == start_tab({})


def test_examples_are_the_runs_held_out_glyphs():
    config = _demo_config("demo_cyclegan_pono_ms_glyphs")
    sans, serif = example_inputs(config, "AtoB"), example_inputs(config, "BtoA")
    assert len(sans) == len(serif) == 11  # "aeksHKRW27&"
    assert all(img.size == (64, 64) and img.mode == "RGB" for img in sans + serif)
    a_sans, a_serif = np.asarray(sans[0].convert("L")), np.asarray(serif[0].convert("L"))
    assert a_sans.min() < 50 and np.median(a_sans) > 250  # black glyph on white
    assert (a_serif < 128).sum() > 1.2 * (a_sans < 128).sum()  # the bold serif "a" holds more ink
    for direction, images in (("AtoB", sans), ("BtoA", serif)):
        assert all(domain_note(img, input_domain(config, direction)) == "" for img in images)
    assert example_inputs({"data": {"mode": "unaligned", "root": "/nowhere/horse2zebra"}}) == []
    assert example_inputs({}) == []


def test_examples_of_a_folder_run_come_from_its_test_split(tmp_path):
    rng = np.random.default_rng(0)
    for side in ("A", "B"):
        (tmp_path / f"test{side}").mkdir()
        for i in range(3):
            image = Image.fromarray(rng.integers(0, 256, (40, 50, 3), np.uint8))
            image.save(tmp_path / f"test{side}" / f"{i}.png")
    data = {"mode": "unaligned", "root": str(tmp_path), "load_size": 36, "crop_size": 32}
    images = example_inputs({"data": data}, "BtoA", limit=2)
    assert len(images) == 2 and all(img.size == (32, 32) for img in images)  # preprocessed as in training


def test_domain_note_flags_far_inputs():
    glyph_domain = input_domain({"data": GLYPHS})
    assert glyph_domain == InputDomain(64, True, "64x64 black-on-white glyphs in DejaVu Sans")
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 256, (480, 640, 3), np.uint8))
    note = domain_note(photo, glyph_domain)
    assert note.startswith(
        "⚠️ This model was trained on 64x64 black-on-white glyphs in DejaVu Sans; this "
        "640x480 input is in colour and over 4x the 64 px training size"
    )
    dark = Image.new("L", (64, 64), 40)
    assert "not black on white" in domain_note(dark, glyph_domain)
    tiny = Image.new("RGB", (20, 16), "white")
    assert "under half the 64 px training size" in domain_note(tiny, glyph_domain)
    folder = input_domain({"data": {"mode": "unaligned", "root": "d/horse2zebra", "crop_size": 256}})
    assert folder == InputDomain(256, False, "256 px images of horse")
    assert domain_note(photo, folder) == ""  # colour is expected there, and 480 px is not far from 256
    hard_b = input_domain({"data": {**GLYPHS, "variant": "hard"}}, "BtoA")
    assert not hard_b.black_on_white and "colour-styled" in hard_b.text


def test_resolve_server_flag_then_env_then_default():
    env = {"GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_SERVER_PORT": "8080"}
    assert resolve_server(None, None, env) == ("0.0.0.0", 8080)
    assert resolve_server("127.0.0.2", 9000, env) == ("127.0.0.2", 9000)  # explicit flags win
    assert resolve_server(None, 9000, env) == ("0.0.0.0", 9000)
    assert resolve_server(None, None, {}) == (DEFAULT_HOST, DEFAULT_PORT) == ("127.0.0.1", 7860)
    with pytest.raises(ValueError, match="GRADIO_SERVER_PORT must be a port number, got 'http'"):
        resolve_server(None, None, {"GRADIO_SERVER_PORT": "http"})
    with pytest.raises(ValueError, match="between 1 and 65535, got 70000"):
        resolve_server(None, 70000, {})


def test_file_in_trusts_only_its_roots(tmp_path):
    (tmp_path / "cache").mkdir()
    inside, outside = tmp_path / "cache" / "a.png", tmp_path / "b.png"
    inside.write_bytes(b"x")
    outside.write_bytes(b"x")
    assert file_in({"path": str(inside)}, [tmp_path / "cache"]) == inside.resolve()
    assert file_in({"path": str(outside)}, [tmp_path / "cache"]) is None
    assert file_in({"path": str(tmp_path / "cache" / ".." / "b.png")}, [tmp_path / "cache"]) is None
    assert file_in(None, [tmp_path]) is None and file_in({"path": None}, [tmp_path]) is None


def _load_app():
    spec = importlib.util.spec_from_file_location("ponogan_app_ux", REPO / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    return app


def test_main_serves_where_the_environment_says_and_shares_on_request(tmp_path, monkeypatch):
    """`main` hands `launch` the env's address unless a flag names one, and `share=True` for `--share`."""
    app = _load_app()
    make_run(tmp_path / "runs" / "tiny", "pix2pix")
    launched = []
    monkeypatch.setattr(app.gr.Blocks, "launch", lambda self, **kwargs: launched.append(kwargs))
    env_port, flag_port = free_port(), free_port()
    monkeypatch.setenv("GRADIO_SERVER_NAME", "127.0.0.1")
    monkeypatch.setenv("GRADIO_SERVER_PORT", str(env_port))
    base = ["--checkpoints-dir", str(tmp_path / "runs"), "--device", "cpu"]
    assert app.main(base) == 0
    assert app.main([*base, "--port", str(flag_port), "--share"]) == 0
    assert [(k["server_name"], k["server_port"], k["share"]) for k in launched] == [
        ("127.0.0.1", env_port, False),
        ("127.0.0.1", flag_port, True),
    ]
    args = app.parse_args([])
    assert args.host is None and args.port is None and args.share is False


def test_main_reports_a_bad_env_port_in_one_line(tmp_path, monkeypatch, capsys):
    app = _load_app()
    monkeypatch.setenv("GRADIO_SERVER_PORT", "eighty")
    assert app.main(["--checkpoints-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == "error: GRADIO_SERVER_PORT must be a port number, got 'eighty'\n"


def test_app_refuses_what_the_network_would_process_too_large():
    from ponogan.inference.images import ImageTooLargeError, check_processed_size

    assert check_processed_size((1920, 1080), None, 4) == (1920, 1080)
    with pytest.raises(ImageTooLargeError, match="max"):
        check_processed_size((4_194_304, 1), None, 4)  # within the app's raw limit, absurd to process
