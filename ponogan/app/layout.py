"""The app's page: `build_app` lays out the Blocks and wires each event to an `AppHandlers` method.

Nothing is computed here: the handlers (`ponogan.app.handlers`) return plain values, and this module
maps them onto components (an `AppError` becomes gradio's error box, a `ModelView` the component
updates, a notice `gr.Info` / `gr.Warning`). Import it after the no-network environment is set
(app.py sets it before importing gradio).
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
from gradio.utils import get_upload_folder

from ponogan.app.examples import ExampleSets, write_examples
from ponogan.app.handlers import AppError, AppHandlers, ModelView
from ponogan.app.support import (
    APP_MAX_PIXELS,
    MAX_TEXT_CHARS,
    SAMPLE_TEXTS,
    UPLOAD_MAX_AGE_S,
    CheckpointInfo,
    PipelineCache,
)

PAPER_MODE_LABEL = "pix2pix test mode: batch statistics + dropout"
IMAGE_HEIGHT = 300
TEXT_BOX_UNITS = 8 * MAX_TEXT_CHARS  # room for accents and emoji sequences, in UTF-16 code units
# Small images (64 px glyphs) are shown enlarged to fill their boxes, with their pixels kept sharp.
CSS = (
    ".image-frame img, #moments img, #before-after img { image-rendering: pixelated; }\n"
    "#input-image .image-frame img, #output-image .image-frame img, #moments-input .image-frame img "
    "{ width: 100%; height: 100%; object-fit: contain; }"
)


def image_input(**kwargs) -> gr.Image:
    """A `gr.Image` that hands events the uploaded file's path, unopened: the handlers decode it.

    Why: gradio's own preprocess opens the file with PIL first, so a file that is not an image would fail
    there, with no reason a user can read, and stay in gradio's upload cache.
    """
    component = gr.Image(type="filepath", image_mode=None, **kwargs)
    to_path = component.preprocess  # gradio's own: writes a pasted (base64) image into its cache
    # NOTE: set on the instance, not by subclassing: gradio writes a .pyi stub beside the module of
    # every Component subclass it sees defined.
    component.preprocess = lambda payload: None if payload is None else payload.path or to_path(payload)
    return component


def shown_errors(handler):
    """`handler` (same name and signature, which gradio reads for the API) with its `AppError` shown as
    gradio's error box."""

    @functools.wraps(handler)
    def event(*args, **kwargs):
        try:
            return handler(*args, **kwargs)
        except AppError as err:
            raise gr.Error(str(err), **({"title": err.title} if err.title else {})) from None

    return event


def notify(level: str, message: str, title: str | None = None) -> None:
    """A handler's side message as a gradio toast."""
    show = gr.Warning if level == "warning" else gr.Info
    show(message, **({"title": title} if title else {}))


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
    examples_dir.mkdir(parents=True, exist_ok=True)
    gr.set_static_paths([examples_dir])  # served in place: never copied into (nor deleted from) the cache
    example_sets, examples_of = write_examples(runs, examples_dir)
    handlers = AppHandlers(
        runs,
        default,
        cache,
        max_pixels=max_pixels,
        upload_root=get_upload_folder(),
        trusted_roots=(examples_dir,),
        examples=examples_of,
        notify=notify,
    )
    try:  # the first screen: the default run's view and, for a glyph model, a result already shown
        first = handlers.model_view(default)
        start = handlers.first_screen(examples_dir)
    except AppError as err:
        raise ValueError(str(err)) from None

    with gr.Blocks(
        title="ponogan: PONO-MS image translation", delete_cache=(min(upload_max_age, 300), upload_max_age)
    ) as demo:
        page = SimpleNamespace()  # the components, by name, for the wiring
        model_panel(page, list(runs), default, handlers.api_directions(default), first)
        with gr.Tabs(selected=first.tab) as page.tabs:
            image_tab(page, first, example_sets)
            text_tab(page, first, start)
            moments_tab(page)
        wire_events(demo, page, handlers)
    return demo


def model_panel(page, names: list[str], default: str, directions: list, first: ModelView) -> None:
    """The heading, the checkpoint picker, the direction switch, the paper-mode box and the model card."""
    gr.Markdown(
        "## ponogan: image-to-image translation with Positional Normalization and Moment Shortcut\n"
        "Pick a checkpoint, then click an example or upload / paste your own image. "
        "Outputs are lossless PNG."
    )
    with gr.Row():
        with gr.Column(scale=1):
            page.checkpoint = gr.Dropdown(
                choices=names, value=default, label="Checkpoint", elem_id="checkpoint"
            )
            # All directions here so API calls may ask any; each page load narrows it to the model's,
            # and hides it when the model has only one (its card names that one).
            page.direction = gr.Radio(
                choices=directions,
                value=first.direction,
                label="Direction",
                elem_id="direction",
                visible=first.show_directions,
            )
            # Shown only for generators with BatchNorm or dropout (pix2pix U-Net): for the others
            # both test modes give the same output.
            page.paper_mode = gr.Checkbox(
                value=False,
                label=PAPER_MODE_LABEL,
                elem_id="paper-mode",
                visible=first.test_mode_matters,
                info="As in the pix2pix paper: BatchNorm with the image's own statistics, dropout on "
                "(seeded, so repeatable). Off: the saved running statistics, no dropout.",
            )
        with gr.Column(scale=2):
            page.card = gr.Markdown(first.card, elem_id="model-card")


def image_tab(page, first: ModelView, example_sets: ExampleSets) -> None:
    """Input, output, samples gallery, before/after slider, the multimodal controls and the examples."""
    with gr.Tab("Image", id="image"):
        with gr.Row():
            page.image_in = image_input(
                label="Input",
                sources=["upload", "clipboard"],
                elem_id="input-image",
                height=IMAGE_HEIGHT,
                format="png",
            )
            page.image_out = gr.Image(
                label="Translated",
                format="png",
                type="pil",
                interactive=False,
                elem_id="output-image",
                height=IMAGE_HEIGHT,
                visible=not first.multimodal,
            )
            page.styles = gr.Gallery(
                label="Translated, one per sample",
                format="png",
                columns=2,
                elem_id="styles",
                height=IMAGE_HEIGHT,
                visible=first.multimodal,
            )
            page.compare = gr.ImageSlider(
                label="Before / after (drag the handle)",
                type="pil",
                format="png",
                interactive=False,
                elem_id="before-after",
                height=IMAGE_HEIGHT,
            )
        page.note = gr.Markdown(elem_id="domain-note")
        with (
            gr.Accordion(first.style_label, open=True, visible=first.multimodal, elem_id="style-box") as box,
            gr.Row(),
        ):
            page.style_box = box
            page.seed = gr.Number(value=0, precision=0, label="Style / attributes seed")
            page.n_styles = gr.Slider(1, 8, value=1, step=1, label="Number of samples", elem_id="n-styles")
            page.style_image = image_input(
                label="Reference image (optional)",
                height=160,
                sources=["upload", "clipboard"],
                elem_id="style-image",
            )
        page.translate_btn = gr.Button("Translate", variant="primary", elem_id="translate-btn")
        page.example_boxes, page.example_events = {}, []
        for key, (label, direction, paths) in example_sets.items():
            with gr.Column(visible=key in first.examples, elem_classes="examples") as column:
                shown = gr.Examples(
                    [[path] for path in paths],
                    [page.image_in],
                    label=label,
                    cache_examples=False,
                    examples_per_page=len(paths),
                )
            page.example_boxes[key] = column
            page.example_events.append((shown.load_input_event, direction))


def text_tab(page, first: ModelView, start: tuple) -> None:
    """The Glyph text tab: the text box, its samples, the rendered and translated strips (`start`: the
    first screen's pair of image files, or Nones)."""
    with gr.Tab("Glyph text", id="text", visible=first.glyphs) as page.glyph_tab:
        # The box counts UTF-16 code units; the limit of characters as a reader counts them (an
        # accent or an emoji's parts belong to their character) is the server's: `prepare_text`.
        page.text = gr.Textbox(
            value=SAMPLE_TEXTS[0],
            max_length=TEXT_BOX_UNITS,
            elem_id="glyph-text",
            label=f"Text (up to {MAX_TEXT_CHARS} characters, left to right; Enter translates)",
        )
        page.text_note = gr.Markdown(elem_id="text-note")
        page.text_btn = gr.Button("Render and translate", variant="primary", elem_id="text-btn")
        page.text_examples = gr.Examples(
            [[t] for t in SAMPLE_TEXTS], [page.text], label="Sample texts", cache_examples=False
        )
        page.text_src = gr.Image(
            value=start[0],
            label="Rendered in the source font",
            format="png",
            interactive=False,
            height=140,
            elem_id="text-source",
        )
        page.text_out = gr.Image(
            value=start[1],
            label="Translated",
            format="png",
            interactive=False,
            elem_id="text-output",
            height=140,
        )


def moments_tab(page) -> None:
    """The Moments tab: the input beside its PONO mean and std maps."""
    with gr.Tab("Moments", id="moments"):
        gr.Markdown(
            "PONO mean and std of the input (from the Image tab) at each encoder level, "
            "shallow first: the structure the Moment Shortcut carries to the decoder."
        )
        page.moments_btn = gr.Button("Show moments of the input", elem_id="moments-btn")
        with gr.Row():
            page.moments_src = gr.Image(
                label="Input",
                type="filepath",
                interactive=False,
                scale=1,
                elem_id="moments-input",
                height=IMAGE_HEIGHT,
            )
            page.moments = gr.Gallery(label="Moments", columns=4, format="png", elem_id="moments", scale=3)


def wire_events(demo: gr.Blocks, page, handlers: AppHandlers) -> None:
    """Every event of the page, each to its `handlers` method (named endpoints: `/translate`,
    `/translate_text`, `/moments`; the others are private)."""
    p = page
    results, left_out = gr.State(), gr.State()
    translate_in = [p.image_in, p.direction, p.seed, p.n_styles, p.style_image, p.checkpoint, p.paper_mode]
    views_in = [results, p.style_image, p.seed]
    translate = shown_errors(handlers.translate)
    translate_text = shown_errors(handlers.translate_text)

    def run_translate(trigger, **api) -> None:
        """On `trigger`: `translate`, then the before/after slider and the samples gallery."""
        trigger(
            translate, translate_in, [p.image_out, results], show_progress_on=[p.image_out, p.styles], **api
        ).success(handlers.result_views, views_in, [p.compare, p.styles], api_visibility="private")

    # light handlers: the raw payload (paths checked by `file_in`), outside the compute queue's limit
    quick = dict(preprocess=False, api_visibility="private", concurrency_limit=None, show_progress="hidden")
    run_translate(p.translate_btn.click, api_name="translate")
    for event, example_direction in p.example_events:  # an example sets its direction, translates at once
        set_direction = event.then(lambda d=example_direction: d, None, p.direction, **quick)
        run_translate(set_direction.then, api_visibility="private")
    text_in = [p.text, p.direction, p.checkpoint, p.paper_mode]
    for trigger, api in (
        (p.text_btn.click, {"api_name": "translate_text"}),
        (p.text.submit, {"api_visibility": "private"}),
        (p.text_examples.load_input_event.then, {"api_visibility": "private"}),
    ):
        trigger(
            translate_text, text_in, [p.text_src, p.text_out, left_out], show_progress_on=p.text_out, **api
        ).success(lambda note: note, left_out, p.text_note, api_visibility="private")
    moments_in = [p.image_in, p.direction, p.checkpoint]
    p.moments_btn.click(shown_errors(handlers.show_moments), moments_in, p.moments, api_name="moments")

    def check_upload(payload):
        """A refused upload leaves the input (the outputs stay: a Translate clicked right after the
        upload may already have filled them)."""
        return gr.skip() if handlers.check_upload(payload) else None

    for box in (p.image_in, p.style_image):
        box.upload(check_upload, box, box, **quick)
    note_in = [p.image_in, p.checkpoint, p.direction]
    p.image_in.change(handlers.on_input, note_in, [p.note, p.moments_src], **quick)
    gr.on([p.direction.change, p.checkpoint.change], handlers.input_note, note_in, p.note, **quick)

    shown_results = [p.compare, p.text_src, p.text_out, p.text_note, p.moments]

    def model_view(name: str, clear: bool = False) -> dict:
        """The components that depend on the model, updated from `handlers.model_view`."""
        view: ModelView = shown_errors(handlers.model_view)(name, clear)
        cleared = {"value": None} if view.clear else {}
        updates = {
            p.card: view.card,
            p.direction: gr.Radio(
                choices=view.directions, value=view.direction, visible=view.show_directions
            ),
            p.style_box: gr.Accordion(label=view.style_label, visible=view.multimodal),
            p.glyph_tab: gr.Tab(visible=view.glyphs),
            p.paper_mode: gr.Checkbox(visible=view.test_mode_matters),
            p.image_out: gr.update(visible=not view.multimodal, **cleared),
            p.styles: gr.update(visible=view.multimodal, **cleared),
            **{box: gr.Column(visible=key in view.examples) for key, box in p.example_boxes.items()},
        }
        if view.clear:
            updates |= {p.tabs: gr.Tabs(selected=view.tab), **dict.fromkeys(shown_results)}
        return updates

    model_outputs = [p.card, p.direction, p.style_box, p.glyph_tab, p.paper_mode, p.tabs]
    model_outputs += [p.image_out, p.styles, *shown_results, *p.example_boxes.values()]
    p.checkpoint.change(
        lambda name: model_view(name, clear=True), p.checkpoint, model_outputs, api_visibility="private"
    )
    demo.load(model_view, p.checkpoint, model_outputs, api_visibility="private")
