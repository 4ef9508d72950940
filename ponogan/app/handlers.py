"""What each of the app's events computes, as plain methods of `AppHandlers` over explicit state.

The state is the runs the picker lists, the loaded pipeline cache, the upload limits and the folders
whose files may be read; the results are plain values (PIL images, strings, `ModelView`). Nothing here
imports gradio, so every handler runs in a test without a server or a browser: a refused request is an
`AppError` (the layout shows it as an error box), a side message (a warning, an info line) goes to the
`notify` callable the layout passes in.

One decode per upload: every handler reads an input file through `DecodedUploads`, so the upload check,
the far-from-training note, Translate and Moments share the image decoded the first time.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from ponogan.app.support import (
    APP_MAX_PIXELS,
    SAMPLE_TEXTS,
    CheckpointInfo,
    PipelineCache,
    direction_labels,
    discard_upload,
    domain_note,
    file_in,
    glyph_font,
    hstack,
    input_domain,
    load_upload,
    model_card,
    moment_gallery,
    render_text,
    skip_reason,
    start_tab,
    translate_images,
    translate_tiles,
)
from ponogan.families import all_families
from ponogan.inference.images import check_processed_size
from ponogan.inference.pipeline import TranslationPipeline

INVALID_IMAGE = "Invalid image"  # the title of every message about an input file the app refuses
# Every direction any family translates: the API accepts each of them whatever the page shows.
ALL_DIRECTIONS = tuple(dict.fromkeys(d for family in all_families() for d in family.directions))


class AppError(Exception):
    """A request the app refuses, with the one line a visitor reads (`title`: the message box's heading,
    None for the UI's default)."""

    def __init__(self, message: str, title: str | None = None) -> None:
        super().__init__(message)
        self.title = title


# notify(level, message, title=None): level is "info" or "warning"; title None for the UI's default.
Notify = Callable[..., None]


class _Decoded:
    """One upload's decode, done once: `image` or `error` once `lock` has been released by the decoder."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.done = False
        self.image: Image.Image | None = None
        self.error: Exception | None = None


class DecodedUploads:
    """Input files decoded once each (`decode`, default `load_upload` with `max_pixels`), the last
    `capacity` kept; thread-safe, and two events asking for one file at once share a single decode.

    A file is known by its real path, modification time and size, so a file rewritten in place is
    decoded again. A refused file (`ValueError`, `OSError`) is not kept: the error reaches every caller
    waiting on that decode, then the entry is dropped. The images are shared between callers: never
    modify one in place.
    """

    def __init__(self, max_pixels: int = APP_MAX_PIXELS, capacity: int = 4, decode=None) -> None:
        self.max_pixels = max_pixels
        self.capacity = capacity
        self._decode = decode
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple, _Decoded] = OrderedDict()

    def get(self, path: str | os.PathLike) -> Image.Image:
        """The RGB image in `path`; `ValueError` (a plain reason) or `OSError` when it cannot be used."""
        real = os.path.realpath(path)
        info = os.stat(real)
        key = (real, info.st_mtime_ns, info.st_size)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Decoded()
                while len(self._entries) > self.capacity:
                    self._entries.popitem(last=False)
            else:
                self._entries.move_to_end(key)
        with entry.lock:
            if not entry.done:
                try:
                    decode = self._decode or load_upload
                    entry.image = decode(real, self.max_pixels)
                except (ValueError, OSError) as err:
                    entry.error = err
                    self.forget(path)
                entry.done = True
        if entry.error is not None:
            raise entry.error
        return entry.image

    def forget(self, path: str | os.PathLike) -> None:
        """Drop every kept decode of `path` (a file deleted or refused)."""
        real = os.path.realpath(path)
        with self._lock:
            for key in [key for key in self._entries if key[0] == real]:
                del self._entries[key]


@dataclass(frozen=True)
class ModelView:
    """Everything on the page that depends on the chosen model, as plain values.

    `directions` are the radio's `(label, direction)` choices and `direction` its value; `style_label`
    names the multimodal controls' box after the family; `examples` are the keys of the example sets
    shown. `clear` (a checkpoint switch) asks to empty the previous model's results and open `tab`.
    """

    card: str
    directions: list[tuple[str, str]]
    direction: str
    show_directions: bool
    multimodal: bool
    style_label: str
    glyphs: bool
    test_mode_matters: bool
    examples: tuple
    clear: bool
    tab: str


def style_label(family: str) -> str:
    """The heading of the multimodal controls (style seed, samples, reference image) for `family`."""
    return f"Style / attributes ({family})"


class AppHandlers:
    """The app's event handlers over explicit state.

    - `runs`: the picker's runs by name; `default`: the one a request naming none uses.
    - `cache`: loaded pipelines; `max_pixels`: the largest input decoded.
    - `upload_root`: gradio's upload cache, the only folder a refused input is ever deleted from;
      `trusted_roots`: the folders whose files an unprocessed payload may name (uploads, examples).
    - `examples`: the example-set keys shown for each run (`ponogan.app.examples.write_examples`).
    - `notify`: where warnings and info lines go (`notify(level, message, title)`); None drops them
      (a caller with no one to show them to: a script, a test).
    """

    def __init__(
        self,
        runs: dict[str, CheckpointInfo],
        default: str,
        cache: PipelineCache,
        *,
        max_pixels: int = APP_MAX_PIXELS,
        upload_root: str | os.PathLike,
        trusted_roots: tuple[str | os.PathLike, ...] = (),
        examples: dict[str, list[tuple]] | None = None,
        notify: Notify | None = None,
        decoded: DecodedUploads | None = None,
    ) -> None:
        self.runs, self.default, self.cache = runs, default, cache
        self.upload_root = upload_root
        self.trusted_roots = (upload_root, *trusted_roots)
        self.examples = examples or {}
        self.notify = notify
        self.decoded = decoded or DecodedUploads(max_pixels)

    # --- shared steps ---

    def pipeline_for(self, checkpoint: str | None) -> tuple[CheckpointInfo, TranslationPipeline]:
        """The run named `checkpoint` (None: the default) and its loaded pipeline."""
        name = checkpoint or self.default
        if name not in self.runs:
            raise AppError(f"Unknown checkpoint {name!r}; pick one of {', '.join(self.runs)}.")
        try:
            return self.runs[name], self.cache.get(self.runs[name].path)
        except Exception as err:  # noqa: BLE001 - a run reloaded after the cache dropped it may fail
            raise AppError(f"Cannot load checkpoint {name}: {skip_reason(err)}") from None

    def decode(self, path: str | os.PathLike | None, required: bool = False) -> Image.Image | None:
        """An input's file as an RGB image (None for no input); a refused one (not an image, too
        large...) is deleted from gradio's upload cache at once (nothing outside it ever is)."""
        if path is None and required:
            raise AppError("Upload or paste an image first, or click an example.")
        if path is None:
            return None
        try:
            return self.decoded.get(path)
        except (ValueError, OSError) as err:
            self.refuse(path)
            raise AppError(str(err), INVALID_IMAGE) from None

    def tell(self, level: str, message: str, title: str | None = None) -> None:
        """A side message for the visitor, through `notify` when there is one."""
        if self.notify is not None:
            self.notify(level, message, title)

    def refuse(self, path: str | os.PathLike) -> None:
        """Forget `path`'s decode and delete it when it lies in gradio's upload cache."""
        self.decoded.forget(path)
        discard_upload(path, self.upload_root)

    @staticmethod
    def stride_of(pipe: TranslationPipeline, direction: str) -> int:
        """The padding multiple of `direction`'s networks; a direction the model lacks is an `AppError`."""
        try:
            return pipe.stride(direction)
        except ValueError as err:
            raise AppError(str(err)) from None

    def check_size(self, path: str | os.PathLike | None, image: Image.Image | None, stride: int) -> None:
        """Refuse (and delete from gradio's cache) an input the network would process too large: what
        it processes, after padding to its stride, is what costs memory."""
        if image is None:
            return
        try:
            check_processed_size(image.size, None, stride)
        except ValueError as err:
            self.refuse(path)
            raise AppError(f"Cannot use this upload: {err}.", INVALID_IMAGE) from None

    # --- the events ---

    def translate(
        self,
        image: str,
        direction: str = "AtoB",
        seed: float | None = 0,
        n_styles: float = 1,
        style_image: str | None = None,
        checkpoint: str | None = None,
        paper_mode: bool = False,
    ) -> tuple[Image.Image, tuple]:
        """The translated image (a multimodal family: its samples side by side) and, for the UI only,
        `(input, [output per sample])`."""
        paths = (image, style_image)
        image, style_image = self.decode(image, required=True), self.decode(style_image)
        _, pipe = self.pipeline_for(checkpoint)
        stride = self.stride_of(pipe, direction)
        self.check_size(paths[0], image, stride)
        self.check_size(paths[1], style_image, stride)
        options = {"seed": int(seed or 0)}
        if pipe.multimodal and style_image is not None:  # the reference image's style / attributes
            options = {"style": style_image}
        elif pipe.multimodal:  # `n_styles` random samples from the seed
            options["n_styles"] = int(n_styles)
        test_mode = "paper" if paper_mode else "eval"
        try:
            outputs = translate_images(pipe, [image], direction, test_mode, **options)
        except (TypeError, ValueError) as err:
            raise AppError(str(err)) from None
        return (outputs[0] if len(outputs) == 1 else hstack(outputs, gap=4)), (image, outputs)

    @staticmethod
    def result_views(result: tuple, style_image=None, seed: float | None = 0):
        """The before/after pair (input, first output) and the samples as `[(image, caption)]`."""
        image, outputs = result  # set by `translate`, which this follows on success only
        source = "reference image" if style_image is not None else f"seed {int(seed or 0)}"
        return (image, outputs[0]), [(out, f"{source}, sample {k + 1}") for k, out in enumerate(outputs)]

    def translate_text(
        self, text: str, direction: str = "AtoB", checkpoint: str | None = None, paper_mode: bool = False
    ) -> tuple[Image.Image, Image.Image, str]:
        """The text drawn in the source font and translated, and, for the UI only, the line naming the
        characters left out (controls, emoji sequences, no glyph in the font)."""
        info, pipe = self.pipeline_for(checkpoint)
        font = glyph_font(info.config, direction)
        if font is None:
            raise AppError("This checkpoint was not trained on the built-in glyph data.")
        try:
            tiles, note = render_text(text or "", font, int(info.config["data"].get("image_size", 64)))
            translated = translate_tiles(pipe, tiles, direction, "paper" if paper_mode else "eval")
            return hstack(tiles), hstack(translated), note
        except ValueError as err:
            raise AppError(str(err)) from None

    def show_moments(
        self, image: str, direction: str = "AtoB", checkpoint: str | None = None
    ) -> list[tuple[Image.Image, str]]:
        """The PONO mean and std maps of each encoder level of the input, as `[(image, caption)]`."""
        path, image = image, self.decode(image, required=True)
        _, pipe = self.pipeline_for(checkpoint)
        self.check_size(path, image, self.stride_of(pipe, direction))
        try:
            gallery = moment_gallery(pipe, image, direction)
        except ValueError as err:
            raise AppError(str(err)) from None
        if not gallery:
            self.tell("info", "This model has no moment shortcut (shortcut=None): no PONO moments to show.")
        return gallery

    def check_upload(self, payload) -> bool:
        """On upload (`payload` unprocessed: only a file in gradio's cache is read): whether to keep it.
        A refused file is one warning now (not after Translate), deleted from the cache."""
        try:
            self.decode(file_in(payload, [self.upload_root]))
        except AppError as err:
            self.tell("warning", str(err), err.title)
            return False
        return True

    def on_input(self, payload, checkpoint: str | None, direction: str | None) -> tuple[str, str | None]:
        """A new input (upload, paste, example, cleared): its far-from-training note and the file's path
        for the Moments tab. `payload` is not processed: only a file in a trusted root is read."""
        path, name = file_in(payload, self.trusted_roots), checkpoint or self.default
        try:
            image = self.decoded.get(path) if path is not None else None
        except (ValueError, OSError):  # not an image, too large...: `check_upload` reports it
            image = None
        if image is None:
            return "", None
        if name not in self.runs:  # not processed, so not checked against the picker's choices
            return "", str(path)
        return domain_note(image, input_domain(self.runs[name].config, direction or "AtoB")), str(path)

    def input_note(self, payload, checkpoint: str | None, direction: str | None) -> str:
        """The far-from-training note for the current input (after a model or direction change)."""
        return self.on_input(payload, checkpoint, direction)[0]

    def model_view(self, name: str, clear: bool = False) -> ModelView:
        """What the page shows for run `name`; `clear` for a checkpoint switch (not on page load: the
        page opens on the right tab already, and a tab the visitor picked meanwhile must stay)."""
        info, pipe = self.pipeline_for(name)
        labels = direction_labels(info.config, pipe.directions)
        return ModelView(
            card=model_card(info.config, name),
            directions=[(label, d) for d, label in labels.items()],
            direction=pipe.directions[0],
            show_directions=len(labels) > 1,
            multimodal=pipe.multimodal,
            style_label=style_label(pipe.family),
            glyphs=glyph_font(info.config, "AtoB") is not None,
            test_mode_matters=pipe.test_mode_matters,
            examples=tuple(self.examples.get(name, [])),
            clear=clear,
            tab=start_tab(info.config),
        )

    def api_directions(self, name: str) -> list[tuple[str, str]]:
        """`(label, direction)` for every family's direction, labelled with run `name`'s domains: the
        radio's choices before a page load narrows them, so API calls may ask any direction."""
        labels = direction_labels(self.runs[name].config, ALL_DIRECTIONS)
        return [(labels[d], d) for d in ALL_DIRECTIONS]

    def first_screen(self, folder: str | os.PathLike) -> tuple[Path | None, Path | None]:
        """For a glyph model: the first sample text drawn and translated, saved as PNGs in `folder` (the
        page opens with a result on screen); `(None, None)` for other models or a font that cannot draw it."""
        info, pipe = self.pipeline_for(self.default)
        if glyph_font(info.config, "AtoB") is None:
            return None, None
        try:
            source, output, _ = self.translate_text(SAMPLE_TEXTS[0], pipe.directions[0], self.default)
        except AppError:
            return None, None
        paths = Path(folder) / "start_source.png", Path(folder) / "start_output.png"
        Path(folder).mkdir(parents=True, exist_ok=True)
        source.save(paths[0])
        output.save(paths[1])
        return paths
