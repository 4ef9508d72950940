"""Gradio front end: translate images with a trained ponogan checkpoint in the browser.

    python app.py [--checkpoint RUN] [--host 127.0.0.1] [--port 7860] [--share]

With no `--checkpoint` it opens the shipped demo `checkpoints/demo_pix2pix_pono_ms_glyphs`, on the tab
that fits the model (typed text for glyph models) with clickable examples from the run's test split.
`--host`/`--port` default to `GRADIO_SERVER_NAME`/`GRADIO_SERVER_PORT`, then 127.0.0.1:7860 (so it runs
as a Hugging Face Space: docs/app.md). The logic lives in `ponogan.app.support` and
`ponogan.inference.pipeline`; this file only lays out the UI and wires events.
The endpoint `/translate` takes the image first, every other input optional, and returns the image.

Start-up problems are one `error:` line on stderr and exit status 2, found before any model loads where
they can be: a flag that cannot work (`--concurrency` under 1, `--max-pixels` under a 64x64 image, a
device this machine lacks, a host that is not an address here, a port in use), an explicit `--checkpoint`
that does not load, or no run under `--checkpoints-dir` that loads (a run that fails in any way is
skipped with one warning line). Uploads and results are deleted from gradio's cache after
`--upload-max-age` seconds, a rejected upload at once, and all of the app's files on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

# No outbound network: set before gradio (and huggingface_hub) are imported.
os.environ.update(GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1")

import gradio as gr  # noqa: E402
from gradio.route_utils import delete_files_created_by_app  # noqa: E402
from gradio.utils import get_upload_folder  # noqa: E402
from PIL import Image  # noqa: E402

from ponogan.app.support import (  # noqa: E402
    APP_MAX_PIXELS,
    DEFAULT_DEMO,
    DEFAULT_HOST,
    DEFAULT_PORT,
    MAX_TEXT_CHARS,
    MIN_MAX_PIXELS,
    SAMPLE_TEXTS,
    UPLOAD_MAX_AGE_S,
    CheckpointInfo,
    PipelineCache,
    check_run_view,
    check_server,
    direction_labels,
    discard_upload,
    domain_note,
    example_inputs,
    file_in,
    glyph_font,
    hstack,
    input_domain,
    load_upload,
    model_card,
    moment_gallery,
    port_error,
    read_checkpoint,
    render_text,
    resolve_server,
    scan_checkpoints,
    skip_reason,
    start_tab,
    translate_images,
    translate_tiles,
)
from ponogan.cli import CommandParser  # noqa: E402
from ponogan.core.messages import EXIT_STATUS_HELP, EXIT_USAGE, UsageError, first_line, print_error  # noqa: E402
from ponogan.core.runtime import resolve_device  # noqa: E402
from ponogan.data.image_io import is_within  # noqa: E402
from ponogan.families import all_families, get_family  # noqa: E402
from ponogan.inference.images import check_processed_size  # noqa: E402

ROOT = Path(__file__).resolve().parent
PAPER_MODE_LABEL = "pix2pix test mode: batch statistics + dropout"
IMAGE_HEIGHT = 300
TEXT_BOX_UNITS = 8 * MAX_TEXT_CHARS  # room for accents and emoji sequences, in UTF-16 code units
# Small images (64 px glyphs) are shown enlarged to fill their boxes, with their pixels kept sharp.
CSS = (
    ".image-frame img, #moments img, #before-after img { image-rendering: pixelated; }\n"
    "#input-image .image-frame img, #output-image .image-frame img, #moments-input .image-frame img "
    "{ width: 100%; height: 100%; object-fit: contain; }"
)
ALL_DIRECTIONS = tuple(dict.fromkeys(d for family in all_families() for d in family.directions))


def image_input(**kwargs) -> gr.Image:
    """A `gr.Image` that hands events the uploaded file's path, unopened: `decode` in `build_app` reads it.

    Why: gradio's own preprocess opens the file with PIL first, so a file that is not an image would fail
    there, with no reason a user can read, and stay in gradio's upload cache.
    """
    component = gr.Image(type="filepath", image_mode=None, **kwargs)
    to_path = component.preprocess  # gradio's own: writes a pasted (base64) image into its cache
    # NOTE: set on the instance, not by subclassing: gradio writes a .pyi stub beside the module of
    # every Component subclass it sees defined.
    component.preprocess = lambda payload: None if payload is None else payload.path or to_path(payload)
    return component


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = CommandParser(
        prog="app.py", description="ponogan translation app (Gradio)", epilog=EXIT_STATUS_HELP
    )
    parser.add_argument(
        "--checkpoint", help=f"run folder to open first (default: checkpoints/{DEFAULT_DEMO})"
    )
    parser.add_argument(
        "--checkpoints-dir",
        default=str(ROOT / "checkpoints"),
        help="folder whose runs the picker lists (default: checkpoints/ beside app.py)",
    )
    parser.add_argument(
        "--host", help=f"address to serve on (default: $GRADIO_SERVER_NAME, else {DEFAULT_HOST})"
    )
    parser.add_argument("--port", type=int, help=f"port (default: $GRADIO_SERVER_PORT, else {DEFAULT_PORT})")
    parser.add_argument(
        "--share",
        action="store_true",
        help="also serve through a temporary public *.gradio.live link (needs internet)",
    )
    parser.add_argument("--device", help="cpu, cuda, mps (default: auto: CUDA, then MPS, else CPU)")
    parser.add_argument(
        "--max-pixels",
        type=int,
        default=APP_MAX_PIXELS,
        help=f"largest upload in pixels (default {APP_MAX_PIXELS})",
    )
    parser.add_argument("--concurrency", type=int, default=1, help="requests computed at once (default 1)")
    parser.add_argument(
        "--upload-max-age",
        type=int,
        default=UPLOAD_MAX_AGE_S,
        metavar="SECONDS",
        help="delete uploads and results from gradio's cache once they are this old "
        f"(default {UPLOAD_MAX_AGE_S}; checked every min(SECONDS, 300) s)",
    )
    return parser.parse_args(argv)


def collect_checkpoints(args: argparse.Namespace) -> tuple[dict[str, CheckpointInfo], str, dict[str, str]]:
    """The picker's runs by name, the name to open first, and the folders skipped as unreadable
    (`{name: reason}`); `ValueError` if there is nothing to open."""
    found, skipped = scan_checkpoints(args.checkpoints_dir)
    runs = {info.name: info for info in found}
    if args.checkpoint is not None:
        chosen = read_checkpoint(args.checkpoint, str(args.checkpoint))
        for name, info in runs.items():
            if info.path.resolve() == chosen.path.resolve():
                return runs, name, skipped
        return {chosen.name: chosen, **runs}, chosen.name, skipped
    if not runs and not skipped:
        raise ValueError(f"no checkpoints under {args.checkpoints_dir}; pass --checkpoint RUN_DIR")
    return runs, DEFAULT_DEMO if DEFAULT_DEMO in runs else next(iter(runs), ""), skipped


def load_runs(args: argparse.Namespace, cache: PipelineCache) -> tuple[dict[str, CheckpointInfo], str]:
    """The runs that load (each loaded once, into `cache`) and the one to open first.

    A run that does not load, or whose config would break the page, is skipped with one warning line
    naming it and the reason: any exception counts (why: a broken or hostile run folder must not keep
    the app from serving the others). `ValueError` when an explicit `--checkpoint` does not load or
    when no run loads at all.
    """
    runs, default, broken = collect_checkpoints(args)
    good = {}
    for name, info in runs.items():  # a run can look complete and still not load (truncated weights)
        try:
            pipe = cache.get(info.path)
            check_run_view(info, pipe.directions)
        except Exception as err:  # noqa: BLE001 - per-run boundary: whatever loading it raised
            broken[name] = skip_reason(err)
        else:
            good[name] = info
    if args.checkpoint is not None and default in broken:
        raise ValueError(f"cannot load --checkpoint {args.checkpoint}: {broken[default]}")
    if not good:
        reasons = "; ".join(f"{name}: {reason}" for name, reason in broken.items())
        raise ValueError(
            f"no checkpoint under {args.checkpoints_dir} loads ({reasons}); pass --checkpoint RUN_DIR"
        )
    for name, reason in broken.items():
        print(f"app.py: warning: skipping checkpoint {name}: {reason}", file=sys.stderr)
    if default not in good:
        default = DEFAULT_DEMO if DEFAULT_DEMO in good else next(iter(good))
    return good, default


def write_examples(
    runs: dict[str, CheckpointInfo], folder: Path
) -> tuple[dict[tuple, tuple[str, str, list[str]]], dict[str, list[tuple]]]:
    """Render every run's example inputs into `folder` as PNGs, once per distinct (data, direction).

    Returns `({key: (label, direction, [path, ...])}, {run name: [its keys]})`. Why files in a folder
    of the app's own (served as gradio static files): gradio would otherwise copy examples into its
    upload cache, which `--upload-max-age` empties.
    """
    sets: dict[tuple, tuple[str, str, list[str]]] = {}
    per_run: dict[str, list[tuple]] = {}
    for name, info in runs.items():
        labels = direction_labels(info.config, get_family(info.config["family"]).directions)
        glyphs = start_tab(info.config) == "text"
        what = "held-out characters, never seen in training" if glyphs else "test images"
        for direction, label in labels.items():
            key = (json.dumps(info.config.get("data"), sort_keys=True, default=str), direction)
            if key not in sets:
                try:
                    images = example_inputs(info.config, direction)
                except Exception:  # noqa: BLE001 - examples are extras: a run whose test split fails has none
                    images = []
                if not images:
                    continue
                paths = [folder / f"set{len(sets)}" / f"{i:02d}.png" for i in range(len(images))]
                paths[0].parent.mkdir(parents=True, exist_ok=True)
                for image, path in zip(images, paths, strict=True):
                    image.save(path)
                sets[key] = (f"Examples: {label} ({what})", direction, [str(path) for path in paths])
            per_run.setdefault(name, []).append(key)
    return sets, per_run


def build_app(
    runs: dict[str, CheckpointInfo],
    default: str,
    cache: PipelineCache,
    max_pixels: int = APP_MAX_PIXELS,
    upload_max_age: int = UPLOAD_MAX_AGE_S,
    examples_dir: str | os.PathLike | None = None,
) -> gr.Blocks:
    """Lay out the UI for the runs in `runs`, opened on `default`.

    `examples_dir` receives the rendered example inputs (default: a temporary folder removed at exit).
    Gradio's cache keeps uploads and results `upload_max_age` seconds, checked every min(that, 300) s.
    """
    if upload_max_age < 1:
        raise ValueError(f"--upload-max-age must be at least 1 second, got {upload_max_age}")
    if examples_dir is None:
        examples_dir = tempfile.mkdtemp(prefix="ponogan-examples-")
        atexit.register(shutil.rmtree, examples_dir, True)
    examples_dir = Path(examples_dir)
    gr.set_static_paths([examples_dir])  # served in place: never copied into (nor deleted from) the cache
    trusted_roots = [get_upload_folder(), examples_dir]

    def pipeline_for(checkpoint: str | None):
        name = checkpoint or default  # gradio's Dropdown has rejected a name not among its choices
        try:
            return runs[name], cache.get(runs[name].path)
        except Exception as err:  # noqa: BLE001 - a run reloaded after the cache dropped it may fail
            raise gr.Error(f"Cannot load checkpoint {name}: {skip_reason(err)}") from None

    def decode(path: str | os.PathLike | None, required: bool = False) -> Image.Image | None:
        """An input's file as an RGB image; a rejected one (not an image, too large...) is deleted from
        gradio's upload cache at once (nothing outside it ever is) and reported as a `gr.Error`."""
        if path is None and required:
            raise gr.Error("Upload or paste an image first, or click an example.")
        if path is None:
            return None
        try:
            return load_upload(path, max_pixels)
        except (ValueError, OSError) as err:
            discard_upload(path, get_upload_folder())
            raise gr.Error(str(err), title="Invalid image") from None

    def stride_of(pipe, direction: str) -> int:
        """The padding multiple of `direction`'s networks; a direction the model lacks is a `gr.Error`."""
        try:
            return pipe.stride(direction)
        except ValueError as err:
            raise gr.Error(str(err)) from None

    def check_size(path: str | os.PathLike | None, image: Image.Image | None, stride: int) -> None:
        """Refuse (and delete from gradio's cache) an input the network would process too large: what
        it processes, after padding to its stride, is what costs memory."""
        if image is None:
            return
        try:
            check_processed_size(image.size, None, stride)
        except ValueError as err:
            discard_upload(path, get_upload_folder())
            raise gr.Error(f"Cannot use this upload: {err}.", title="Invalid image") from None

    def translate(
        image: str,
        direction: str = "AtoB",
        seed: float | None = 0,
        n_styles: float = 1,
        style_image: str | None = None,
        checkpoint: str | None = None,
        paper_mode: bool = False,
    ) -> tuple[Image.Image, tuple]:
        """The translated image (MUNIT: the styles side by side) and, for the UI only (a `gr.State`,
        not part of the API), `(input, [output per style])`."""
        paths = (image, style_image)
        image, style_image = decode(image, required=True), decode(style_image)
        _, pipe = pipeline_for(checkpoint)
        stride = stride_of(pipe, direction)
        check_size(paths[0], image, stride)
        check_size(paths[1], style_image, stride)
        options = {"seed": int(seed or 0)}
        if pipe.multimodal and style_image is not None:  # MUNIT: the reference image's style
            options = {"style": style_image}
        elif pipe.multimodal:  # MUNIT: `n_styles` random styles from the seed
            options["n_styles"] = int(n_styles)
        test_mode = "paper" if paper_mode else "eval"
        try:
            outputs = translate_images(pipe, [image], direction, test_mode, **options)
        except (TypeError, ValueError) as err:
            raise gr.Error(str(err)) from None
        return (outputs[0] if len(outputs) == 1 else hstack(outputs, gap=4)), (image, outputs)

    def result_views(result: tuple, style_image=None, seed: float | None = 0):
        """Before/after slider (input, first output) and the MUNIT styles as a gallery."""
        image, outputs = result  # set by `translate`, which this follows on success only
        source = "reference style" if style_image is not None else f"seed {int(seed or 0)}"
        return (image, outputs[0]), [(out, f"{source}, style {k + 1}") for k, out in enumerate(outputs)]

    def translate_text(
        text: str, direction: str = "AtoB", checkpoint: str | None = None, paper_mode: bool = False
    ) -> tuple[Image.Image, Image.Image, str]:
        """The text drawn in the source font and translated, and, for the UI only (a `gr.State`), the
        line naming the characters left out (controls, emoji sequences, no glyph in the font)."""
        info, pipe = pipeline_for(checkpoint)
        font = glyph_font(info.config, direction)
        if font is None:
            raise gr.Error("This checkpoint was not trained on the built-in glyph data.")
        try:
            tiles, note = render_text(text or "", font, int(info.config["data"].get("image_size", 64)))
            translated = translate_tiles(pipe, tiles, direction, "paper" if paper_mode else "eval")
            return hstack(tiles), hstack(translated), note
        except ValueError as err:
            raise gr.Error(str(err)) from None

    def show_moments(image: str, direction: str = "AtoB", checkpoint: str | None = None):
        path, image = image, decode(image, required=True)
        _, pipe = pipeline_for(checkpoint)
        check_size(path, image, stride_of(pipe, direction))
        try:
            gallery = moment_gallery(pipe, image, direction)
        except ValueError as err:
            raise gr.Error(str(err)) from None
        if not gallery:
            gr.Info("This model has no moment shortcut (shortcut=None): no PONO moments to show.")
        return gallery

    def check_upload(payload):
        """Runs on `.upload`: a bad file is one warning now (not after Translate) and is removed from the
        input and from gradio's cache. (It leaves the outputs alone: a Translate clicked right after the
        upload may already have filled them.)"""
        try:
            decode(file_in(payload, [get_upload_folder()]))
        except gr.Error as err:
            gr.Warning(err.message, title="Invalid image")
            return None
        return gr.skip()

    def on_input(payload, checkpoint: str | None, direction: str | None) -> tuple[str, str | None]:
        """A new input (upload, paste, example, cleared): its domain note and the Moments tab's copy.
        `payload` is not preprocessed: only a file in gradio's cache or the examples folder is read."""
        path, name = file_in(payload, trusted_roots), checkpoint or default
        try:
            image = load_upload(path, max_pixels) if path is not None else None
        except ValueError:  # not an image, too large...: `check_upload` reports it
            image = None
        if image is None:
            return "", None
        if name not in runs:  # not preprocessed, so not checked against the picker's choices
            return "", str(path)
        return domain_note(image, input_domain(runs[name].config, direction or "AtoB")), str(path)

    def input_note(payload, checkpoint: str | None, direction: str | None) -> str:
        """The far-from-training note for the current input (after a model or direction change)."""
        return on_input(payload, checkpoint, direction)[0]

    first = runs[default]
    first_pipe = cache.get(first.path)
    example_sets, examples_of = write_examples(runs, examples_dir)
    first_labels = direction_labels(first.config, ALL_DIRECTIONS)
    glyphs_visible = glyph_font(first.config, "AtoB") is not None
    start_source = start_output = None
    if glyphs_visible:  # the first screen shows a result already (files in examples_dir: kept in place)
        try:
            source, output, _ = translate_text(SAMPLE_TEXTS[0], first_pipe.directions[0], default)
        except gr.Error:  # the run's font cannot draw the sample: the first screen starts empty
            pass
        else:
            start_source, start_output = examples_dir / "start_source.png", examples_dir / "start_output.png"
            source.save(start_source)
            output.save(start_output)

    with gr.Blocks(
        title="ponogan: PONO-MS image translation", delete_cache=(min(upload_max_age, 300), upload_max_age)
    ) as demo:
        gr.Markdown(
            "## ponogan: image-to-image translation with Positional Normalization and Moment Shortcut\n"
            "Pick a checkpoint, then click an example or upload / paste your own image. "
            "Outputs are lossless PNG."
        )
        with gr.Row():
            with gr.Column(scale=1):
                checkpoint = gr.Dropdown(
                    choices=list(runs), value=default, label="Checkpoint", elem_id="checkpoint"
                )
                # All directions here so API calls may ask any; each page load narrows it to the model's,
                # and hides it when the model has only one (its card names that one).
                direction = gr.Radio(
                    choices=[(first_labels[d], d) for d in ALL_DIRECTIONS],
                    value=first_pipe.directions[0],
                    label="Direction",
                    elem_id="direction",
                    visible=len(first_pipe.directions) > 1,
                )
                # Shown only for generators with BatchNorm or dropout (pix2pix U-Net): for the others
                # both test modes give the same output.
                paper_mode = gr.Checkbox(
                    value=False,
                    label=PAPER_MODE_LABEL,
                    elem_id="paper-mode",
                    visible=first_pipe.test_mode_matters,
                    info="As in the pix2pix paper: BatchNorm with the image's own statistics, dropout on "
                    "(seeded, so repeatable). Off: the saved running statistics, no dropout.",
                )
            with gr.Column(scale=2):
                card = gr.Markdown(model_card(first.config, default), elem_id="model-card")

        with gr.Tabs(selected=start_tab(first.config)) as tabs:
            with gr.Tab("Image", id="image"):
                with gr.Row():
                    image_in = image_input(
                        label="Input",
                        sources=["upload", "clipboard"],
                        elem_id="input-image",
                        height=IMAGE_HEIGHT,
                        format="png",
                    )
                    image_out = gr.Image(
                        label="Translated",
                        format="png",
                        type="pil",
                        interactive=False,
                        elem_id="output-image",
                        height=IMAGE_HEIGHT,
                        visible=not first_pipe.multimodal,
                    )
                    styles = gr.Gallery(
                        label="Translated, one per style",
                        format="png",
                        columns=2,
                        elem_id="styles",
                        height=IMAGE_HEIGHT,
                        visible=first_pipe.multimodal,
                    )
                    compare = gr.ImageSlider(
                        label="Before / after (drag the handle)",
                        type="pil",
                        format="png",
                        interactive=False,
                        elem_id="before-after",
                        height=IMAGE_HEIGHT,
                    )
                note = gr.Markdown(elem_id="domain-note")
                with (
                    gr.Accordion("MUNIT style", open=True, visible=first_pipe.multimodal) as style_box,
                    gr.Row(),
                ):
                    seed = gr.Number(value=0, precision=0, label="Style seed")
                    n_styles = gr.Slider(1, 8, value=1, step=1, label="Number of styles", elem_id="n-styles")
                    style_image = image_input(
                        label="Reference style (optional)",
                        height=160,
                        sources=["upload", "clipboard"],
                        elem_id="style-image",
                    )
                translate_btn = gr.Button("Translate", variant="primary", elem_id="translate-btn")
                example_boxes, example_events = {}, []
                for key, (label, example_direction, paths) in example_sets.items():
                    with gr.Column(
                        visible=key in examples_of.get(default, []), elem_classes="examples"
                    ) as box:
                        shown = gr.Examples(
                            [[path] for path in paths],
                            [image_in],
                            label=label,
                            cache_examples=False,
                            examples_per_page=len(paths),
                        )
                    example_boxes[key] = box
                    example_events.append((shown.load_input_event, example_direction))

            with gr.Tab("Glyph text", id="text", visible=glyphs_visible) as glyph_tab:
                # The box counts UTF-16 code units; the limit of characters as a reader counts them (an
                # accent or an emoji's parts belong to their character) is the server's: `prepare_text`.
                text = gr.Textbox(
                    value=SAMPLE_TEXTS[0],
                    max_length=TEXT_BOX_UNITS,
                    elem_id="glyph-text",
                    label=f"Text (up to {MAX_TEXT_CHARS} characters, left to right; Enter translates)",
                )
                text_note = gr.Markdown(elem_id="text-note")
                text_btn = gr.Button("Render and translate", variant="primary", elem_id="text-btn")
                text_examples = gr.Examples(
                    [[t] for t in SAMPLE_TEXTS], [text], label="Sample texts", cache_examples=False
                )
                text_src = gr.Image(
                    value=start_source,
                    label="Rendered in the source font",
                    format="png",
                    interactive=False,
                    height=140,
                    elem_id="text-source",
                )
                text_out = gr.Image(
                    value=start_output,
                    label="Translated",
                    format="png",
                    interactive=False,
                    elem_id="text-output",
                    height=140,
                )

            with gr.Tab("Moments", id="moments"):
                gr.Markdown(
                    "PONO mean and std of the input (from the Image tab) at each encoder level, "
                    "shallow first: the structure the Moment Shortcut carries to the decoder."
                )
                moments_btn = gr.Button("Show moments of the input", elem_id="moments-btn")
                with gr.Row():
                    moments_src = gr.Image(
                        label="Input",
                        type="filepath",
                        interactive=False,
                        scale=1,
                        elem_id="moments-input",
                        height=IMAGE_HEIGHT,
                    )
                    moments = gr.Gallery(label="Moments", columns=4, format="png", elem_id="moments", scale=3)

        results, left_out = gr.State(), gr.State()
        translate_in = [image_in, direction, seed, n_styles, style_image, checkpoint, paper_mode]

        def run_translate(trigger, **api) -> None:
            """On `trigger`: `translate`, then the before/after slider and the styles gallery."""
            trigger(
                translate, translate_in, [image_out, results], show_progress_on=[image_out, styles], **api
            ).success(result_views, [results, style_image, seed], [compare, styles], api_visibility="private")

        # light handlers: the raw payload (paths checked by `file_in`), outside the compute queue's limit
        quick = dict(
            preprocess=False, api_visibility="private", concurrency_limit=None, show_progress="hidden"
        )
        run_translate(translate_btn.click, api_name="translate")
        for event, example_direction in example_events:  # an example sets its direction, translates at once
            set_direction = event.then(lambda d=example_direction: d, None, direction, **quick)
            run_translate(set_direction.then, api_visibility="private")
        for trigger, api in (
            (text_btn.click, {"api_name": "translate_text"}),
            (text.submit, {"api_visibility": "private"}),
            (text_examples.load_input_event.then, {"api_visibility": "private"}),
        ):
            text_in = [text, direction, checkpoint, paper_mode]
            trigger(
                translate_text, text_in, [text_src, text_out, left_out], show_progress_on=text_out, **api
            ).success(lambda note: note, left_out, text_note, api_visibility="private")
        moments_btn.click(show_moments, [image_in, direction, checkpoint], moments, api_name="moments")

        for box in (image_in, style_image):
            box.upload(check_upload, box, box, **quick)
        note_in = [image_in, checkpoint, direction]
        image_in.change(on_input, note_in, [note, moments_src], **quick)
        gr.on([direction.change, checkpoint.change], input_note, note_in, note, **quick)

        shown_results = [compare, text_src, text_out, text_note, moments]

        def model_view(name: str, clear: bool = False) -> dict:
            """Everything that depends on the model. `clear` (a checkpoint switch) also empties the previous
            model's results and opens the tab that fits the new model (not on page load: the page opens on
            that tab already, and a tab the visitor picked meanwhile must stay)."""
            info, pipe = pipeline_for(name)
            labels = direction_labels(info.config, pipe.directions)
            cleared = {"value": None} if clear else {}
            shown = examples_of.get(name, [])
            view = {
                card: model_card(info.config, name),
                direction: gr.Radio(
                    choices=[(label, d) for d, label in labels.items()],
                    value=pipe.directions[0],
                    visible=len(labels) > 1,
                ),
                style_box: gr.Accordion(visible=pipe.multimodal),
                glyph_tab: gr.Tab(visible=glyph_font(info.config, "AtoB") is not None),
                paper_mode: gr.Checkbox(visible=pipe.test_mode_matters),
                image_out: gr.update(visible=not pipe.multimodal, **cleared),
                styles: gr.update(visible=pipe.multimodal, **cleared),
                **{box: gr.Column(visible=key in shown) for key, box in example_boxes.items()},
            }
            if clear:
                view |= {tabs: gr.Tabs(selected=start_tab(info.config)), **dict.fromkeys(shown_results)}
            return view

        model_outputs = [card, direction, style_box, glyph_tab, paper_mode, tabs, image_out, styles]
        model_outputs += [*shown_results, *example_boxes.values()]
        checkpoint.change(
            lambda name: model_view(name, clear=True), checkpoint, model_outputs, api_visibility="private"
        )
        demo.load(model_view, checkpoint, model_outputs, api_visibility="private")
    return demo


def check_args(args: argparse.Namespace) -> tuple[str, int, str]:
    """`(host, port, device)` to serve with, or `UsageError` for the first flag that cannot work, found
    before any model loads: a count under 1, a pixel limit no image fits, a device this machine lacks,
    a host that is not an address here, a port in use."""
    if args.concurrency < 1:
        raise UsageError(
            f"--concurrency must be at least 1 (requests computed at once), got {args.concurrency}"
        )
    if args.max_pixels < MIN_MAX_PIXELS:
        raise UsageError(
            f"--max-pixels must be at least {MIN_MAX_PIXELS} (a 64x64 image), got {args.max_pixels}"
        )
    if args.upload_max_age < 1:
        raise UsageError(f"--upload-max-age must be at least 1 second, got {args.upload_max_age}")
    try:
        device = resolve_device(args.device)
    except RuntimeError:  # torch.device's own error for a name it does not know
        raise UsageError(f"unknown device {args.device!r}; use auto, cpu, cuda, cuda:N or mps") from None
    except ValueError as err:  # runtime.resolve_device's one line (a kind this machine lacks...)
        raise UsageError(first_line(err)) from None
    host, port = resolve_server(args.host, args.port)
    check_server(host, port)  # before minutes of model loading, not after
    return host, port, device


@contextlib.contextmanager
def cache_emptied_on_signals(demo: gr.Blocks, examples_dir: Path):
    """While inside: SIGTERM and SIGINT first delete every upload and result gradio recorded for this
    app, and the examples folder, then go to the handler that was there before (SIGINT: Python's
    KeyboardInterrupt, which stops gradio; SIGTERM: the default, which ends the process).

    Why: Docker, systemd and Spaces stop a service with SIGTERM, whose default action skips gradio's own
    clean-up and `atexit`. Only files in gradio's record of this app are deleted (then their folders,
    when left empty), so other apps sharing `GRADIO_TEMP_DIR` keep theirs.
    """

    def empty_cache() -> None:
        folders = {Path(f).parent for files in demo.temp_file_sets for f in files}
        delete_files_created_by_app(demo, None)
        root = Path(get_upload_folder()).resolve()
        for folder in folders:
            with contextlib.suppress(OSError):  # not empty, or gone already
                if folder.resolve() != root and is_within(folder.resolve(), root):
                    folder.rmdir()
        shutil.rmtree(examples_dir, ignore_errors=True)

    def chain(previous):
        def handler(signum, frame):
            empty_cache()
            if callable(previous):
                previous(signum, frame)
            else:  # SIG_DFL: end the process the signal's default way, as the service manager expects
                signal.signal(signum, signal.SIG_DFL)
                os.kill(os.getpid(), signum)

        return handler

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    for sig, old in previous.items():
        if old not in (signal.SIG_IGN, None):  # an ignored signal stays ignored
            signal.signal(sig, chain(old))
    try:
        yield
    finally:
        for sig, old in previous.items():
            if old is not None:
                signal.signal(sig, old)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        host, port, device = check_args(args)
        cache = PipelineCache(capacity=2, device=device)
        runs, default = load_runs(args, cache)
        examples_dir = Path(tempfile.mkdtemp(prefix="ponogan-examples-"))
        atexit.register(shutil.rmtree, examples_dir, True)
        demo = build_app(
            runs,
            default,
            cache,
            max_pixels=args.max_pixels,
            upload_max_age=args.upload_max_age,
            examples_dir=examples_dir,
        )
    except (OSError, ValueError) as err:
        return print_error(err, EXIT_USAGE)
    demo.queue(default_concurrency_limit=args.concurrency, max_size=64)
    try:
        with cache_emptied_on_signals(demo, examples_dir):
            demo.launch(
                server_name=host,
                server_port=port,
                share=args.share,
                max_file_size="50mb",
                ssr_mode=False,
                footer_links=["api"],
                css=CSS,
            )
    except OSError as err:  # the port taken between the check and the launch
        message = port_error(host, port) if "port" in str(err).lower() else str(err).split(". ")[0]
        return print_error(message, EXIT_USAGE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
