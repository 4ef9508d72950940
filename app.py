"""Gradio front end: translate images with a trained ponogan checkpoint in the browser.

    python app.py [--checkpoint RUN] [--host 127.0.0.1] [--port 7860]

With no `--checkpoint` it opens the shipped demo `checkpoints/demo_pix2pix_pono_ms_glyphs`. The logic
(checkpoint discovery, model cards, upload checks, glyph text, moment maps) lives in
`ponogan.app_support` and `ponogan.pipeline`; this file only lays out the UI and wires events.
The endpoint `/translate` takes the image first, every other input optional, and returns the image.

Start-up problems are one line on stderr and exit status 2: a port already in use, an explicit
`--checkpoint` that does not load, or no run under `--checkpoints-dir` that loads (broken runs are
skipped with a warning when good ones exist). Uploads and results are deleted from gradio's cache
after `--upload-max-age` seconds, a rejected upload at once.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# No outbound network: set before gradio (and huggingface_hub) are imported.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

import gradio as gr  # noqa: E402
from gradio.utils import get_upload_folder  # noqa: E402
from PIL import Image  # noqa: E402

from ponogan.app_support import (  # noqa: E402
    APP_MAX_PIXELS,
    DEFAULT_DEMO,
    MAX_TEXT_CHARS,
    UPLOAD_MAX_AGE_S,
    CheckpointInfo,
    PipelineCache,
    discard_upload,
    find_checkpoints,
    glyph_font,
    hstack,
    load_upload,
    model_card,
    moment_gallery,
    port_in_use,
    read_checkpoint,
    render_text,
    translate_tiles,
    usable_checkpoints,
)
from ponogan.pipeline import FAMILIES  # noqa: E402

ROOT = Path(__file__).resolve().parent
PAPER_MODE_LABEL = "pix2pix test mode: batch statistics + dropout"
IMAGE_HEIGHT = 300
# Small images (64 px glyphs) are shown enlarged: keep their pixels sharp.
CSS = ".image-frame img, #moments img { image-rendering: pixelated; }"
ALL_DIRECTIONS = tuple(dict.fromkeys(d for family in FAMILIES.values() for d in family.routes))


def checked_image(max_pixels: int, **kwargs) -> gr.Image:
    """A `gr.Image` whose uploads are decoded by ponogan's loader into an RGB PIL image.

    A file that is not an image, is truncated or has more than `max_pixels` pixels becomes a `gr.Error`
    with the loader's reason, shown in the UI and returned to API clients, and is deleted from
    gradio's upload cache right away (only files inside that cache are ever deleted).
    """
    component = gr.Image(type="filepath", image_mode=None, **kwargs)
    to_path = component.preprocess  # gradio's own: moves the upload to its cache, returns the path

    def preprocess(payload):
        if payload is None:
            return None
        path = payload.path or to_path(payload)
        try:
            return load_upload(path, max_pixels)
        except (ValueError, OSError) as err:
            discard_upload(path, get_upload_folder())
            raise gr.Error(str(err), title="Invalid image") from None

    # NOTE: set on the instance, not by subclassing: gradio writes a .pyi stub beside the module of
    # every Component subclass it sees defined.
    component.preprocess = preprocess
    return component


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="ponogan translation app (Gradio)")
    parser.add_argument("--checkpoint", default=None,
                        help=f"run folder to open first (default: checkpoints/{DEFAULT_DEMO})")
    parser.add_argument("--checkpoints-dir", default=str(ROOT / "checkpoints"),
                        help="folder whose runs the picker lists (default: checkpoints/ beside app.py)")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--max-pixels", type=int, default=APP_MAX_PIXELS,
                        help=f"largest upload in pixels (default {APP_MAX_PIXELS})")
    parser.add_argument("--concurrency", type=int, default=1, help="requests computed at once (default 1)")
    parser.add_argument("--upload-max-age", type=int, default=UPLOAD_MAX_AGE_S, metavar="SECONDS",
                        help="delete uploads and results from gradio's cache once they are this old "
                             f"(default {UPLOAD_MAX_AGE_S}; checked every min(SECONDS, 300) s)")
    return parser.parse_args(argv)


def collect_checkpoints(args: argparse.Namespace) -> tuple[dict[str, CheckpointInfo], str]:
    """The picker's runs by name, and the name to open first; `ValueError` if there is nothing to open."""
    runs = {info.name: info for info in find_checkpoints(args.checkpoints_dir)}
    if args.checkpoint is not None:
        chosen = read_checkpoint(args.checkpoint, str(args.checkpoint))
        for name, info in runs.items():
            if info.path.resolve() == chosen.path.resolve():
                return runs, name
        return {chosen.name: chosen, **runs}, chosen.name
    if not runs:
        raise ValueError(f"no checkpoints under {args.checkpoints_dir}; pass --checkpoint RUN_DIR")
    return runs, DEFAULT_DEMO if DEFAULT_DEMO in runs else next(iter(runs))


def load_runs(args: argparse.Namespace, cache: PipelineCache) -> tuple[dict[str, CheckpointInfo], str]:
    """The runs that load (each loaded once, into `cache`) and the one to open first.

    Broken runs are skipped with one warning line each; `ValueError` when an explicit `--checkpoint`
    does not load or when no run loads at all.
    """
    runs, default = collect_checkpoints(args)
    good, broken = usable_checkpoints(runs, cache)
    explicit = args.checkpoint is not None
    if explicit and default in broken:
        raise ValueError(f"cannot load --checkpoint {args.checkpoint}: {broken[default]}")
    if not good:
        reasons = "; ".join(f"{name}: {reason}" for name, reason in broken.items())
        raise ValueError(f"no checkpoint under {args.checkpoints_dir} loads ({reasons}); "
                         "pass --checkpoint RUN_DIR")
    for name, reason in broken.items():
        print(f"app.py: warning: skipping checkpoint {name}: {reason}", file=sys.stderr)
    if default not in good:
        default = DEFAULT_DEMO if DEFAULT_DEMO in good else next(iter(good))
    return good, default


def cache_schedule(max_age: int) -> tuple[int, int]:
    """`gr.Blocks(delete_cache=(frequency, age))`: files older than `max_age` s, checked every
    min(`max_age`, 300) s, so the cache holds at most about `max_age` + 300 s of uploads and results."""
    if max_age < 1:
        raise ValueError(f"--upload-max-age must be at least 1 second, got {max_age}")
    return min(max_age, 300), max_age


def build_app(runs: dict[str, CheckpointInfo], default: str, cache: PipelineCache,
              max_pixels: int = APP_MAX_PIXELS, upload_max_age: int = UPLOAD_MAX_AGE_S) -> gr.Blocks:
    """Lay out the UI for the runs in `runs`, opened on `default`."""

    def pipeline_for(checkpoint: str | None):
        name = checkpoint or default
        if name not in runs:
            raise gr.Error(f"Unknown checkpoint {name!r}; choose one of: {', '.join(runs)}")
        try:
            return runs[name], cache.get(runs[name].path)
        except (OSError, ValueError) as err:
            raise gr.Error(f"Cannot load checkpoint {name}: {err}") from None

    def translate(image: Image.Image, direction: str = "AtoB", seed: float | None = 0, n_styles: float = 1,
                  style_image: Image.Image | None = None, checkpoint: str | None = None,
                  paper_mode: bool = False) -> Image.Image:
        if image is None:
            raise gr.Error("Upload or paste an image first.")
        _, pipe = pipeline_for(checkpoint)
        test_mode = "paper" if paper_mode else "eval"
        try:
            if not pipe.multimodal:
                return pipe([image], direction=direction, seed=int(seed or 0), test_mode=test_mode)[0]
            if style_image is not None:
                return pipe([image], direction=direction, style=style_image, test_mode=test_mode)[0]
            outputs = pipe([image], direction=direction, seed=int(seed or 0), n_styles=int(n_styles),
                           test_mode=test_mode)
            return hstack(outputs, gap=4)
        except (TypeError, ValueError) as err:
            raise gr.Error(str(err)) from None

    def translate_text(text: str, direction: str = "AtoB", checkpoint: str | None = None,
                       paper_mode: bool = False):
        info, pipe = pipeline_for(checkpoint)
        font = glyph_font(info.config, direction)
        if font is None:
            raise gr.Error("This checkpoint was not trained on the built-in glyph data.")
        try:
            tiles = render_text(text or "", font, int(info.config["data"].get("image_size", 64)))
            translated = translate_tiles(pipe, tiles, direction, "paper" if paper_mode else "eval")
            return hstack(tiles), hstack(translated)
        except ValueError as err:
            raise gr.Error(str(err)) from None

    def show_moments(image: Image.Image, direction: str = "AtoB", checkpoint: str | None = None):
        if image is None:
            raise gr.Error("Upload or paste an image first.")
        _, pipe = pipeline_for(checkpoint)
        try:
            gallery = moment_gallery(pipe, image, direction)
        except ValueError as err:
            raise gr.Error(str(err)) from None
        if not gallery:
            gr.Info("This model has no moment shortcut (shortcut=None): no PONO moments to show.")
        return gallery

    def on_checkpoint(name: str):
        info, pipe = pipeline_for(name)
        directions = list(pipe.directions)
        return (
            model_card(info.config, name),
            gr.Radio(choices=directions, value=directions[0], interactive=len(directions) > 1),
            gr.Accordion(visible=pipe.multimodal),
            gr.Tab(visible=glyph_font(info.config, "AtoB") is not None),
            gr.Checkbox(visible=pipe.test_mode_matters),
        )

    first = runs[default]
    first_pipe = cache.get(first.path)
    with gr.Blocks(title="ponogan: PONO-MS image translation",
                   delete_cache=cache_schedule(upload_max_age)) as demo:
        gr.Markdown(
            "## ponogan: image-to-image translation with Positional Normalization and Moment Shortcut\n"
            "Pick a checkpoint, upload or paste an image, press **Translate**. Output is lossless PNG."
        )
        with gr.Row():
            with gr.Column(scale=1):
                checkpoint = gr.Dropdown(choices=list(runs), value=default, label="Checkpoint",
                                         elem_id="checkpoint")
                # All directions here so API calls may ask any; each page load narrows it to the model's.
                direction = gr.Radio(choices=list(ALL_DIRECTIONS), value="AtoB", label="Direction",
                                     elem_id="direction")
                # Shown only for generators with BatchNorm or dropout (pix2pix U-Net): for the others
                # both test modes give the same output.
                paper_mode = gr.Checkbox(
                    value=False, label=PAPER_MODE_LABEL, elem_id="paper-mode",
                    visible=first_pipe.test_mode_matters,
                    info="As in the pix2pix paper: BatchNorm with the image's own statistics, dropout on "
                         "(seeded, so repeatable). Off: the saved running statistics, no dropout.")
            with gr.Column(scale=2):
                card = gr.Markdown(model_card(first.config, default), elem_id="model-card")

        with gr.Tab("Image"):
            with gr.Row():
                image_in = checked_image(max_pixels, label="Input", sources=["upload", "clipboard"],
                                         elem_id="input-image", height=IMAGE_HEIGHT)
                image_out = gr.Image(label="Translated", format="png", type="pil", interactive=False,
                                     elem_id="output-image", height=IMAGE_HEIGHT)
            with gr.Accordion("MUNIT style", open=True, visible=first_pipe.multimodal) as style_box, gr.Row():
                seed = gr.Number(value=0, precision=0, label="Style seed")
                n_styles = gr.Slider(1, 8, value=1, step=1, label="Number of styles")
                style_image = checked_image(max_pixels, label="Reference style (optional)", height=160,
                                            sources=["upload", "clipboard"], elem_id="style-image")
            translate_btn = gr.Button("Translate", variant="primary", elem_id="translate-btn")

        glyphs_visible = glyph_font(first.config, "AtoB") is not None
        with gr.Tab("Glyph text", visible=glyphs_visible) as glyph_tab:
            text = gr.Textbox(value="PONO", label=f"Text (up to {MAX_TEXT_CHARS} characters)",
                              elem_id="glyph-text")
            text_btn = gr.Button("Render and translate", elem_id="text-btn")
            text_src = gr.Image(label="Rendered in the source font", format="png", interactive=False,
                                height=140)
            text_out = gr.Image(label="Translated", format="png", interactive=False, elem_id="text-output",
                                height=140)

        with gr.Tab("Moments"):
            gr.Markdown("PONO mean and std of the input at each encoder level (shallow first): the "
                        "structure the Moment Shortcut carries to the decoder.")
            moments_btn = gr.Button("Show moments of the input", elem_id="moments-btn")
            moments = gr.Gallery(label="Moments", columns=4, format="png", elem_id="moments")

        translate_btn.click(translate,
                            [image_in, direction, seed, n_styles, style_image, checkpoint, paper_mode],
                            image_out, api_name="translate")
        text_btn.click(translate_text, [text, direction, checkpoint, paper_mode], [text_src, text_out],
                       api_name="translate_text")
        moments_btn.click(show_moments, [image_in, direction, checkpoint], moments, api_name="moments")
        model_view = [card, direction, style_box, glyph_tab, paper_mode]
        checkpoint.change(on_checkpoint, checkpoint, model_view, api_visibility="private")
        demo.load(on_checkpoint, checkpoint, model_view, api_visibility="private")
    return demo


def _port_error(args: argparse.Namespace) -> str:
    return f"port {args.port} on {args.host} is in use (another app.py?); choose another with --port"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if port_in_use(args.host, args.port):  # before minutes of model loading, not after
            raise ValueError(_port_error(args))
        cache = PipelineCache(capacity=2, device=args.device)
        runs, default = load_runs(args, cache)
        demo = build_app(runs, default, cache, max_pixels=args.max_pixels, upload_max_age=args.upload_max_age)
    except (OSError, ValueError) as err:
        print(f"app.py: error: {err}", file=sys.stderr)
        return 2
    demo.queue(default_concurrency_limit=args.concurrency, max_size=64)
    try:
        demo.launch(server_name=args.host, server_port=args.port, max_file_size="50mb", ssr_mode=False,
                    footer_links=["api"], css=CSS)
    except OSError as err:  # taken between the check and the launch, or a host it cannot bind
        message = _port_error(args) if "port" in str(err).lower() else str(err).split(". ")[0]
        print(f"app.py: error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
