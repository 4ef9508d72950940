"""The logic behind the Gradio app (app.py), kept free of UI code so it is testable on its own:
finding and loading checkpoints, the model card, upload checks, glyph text, PONO moment maps, what a
first visitor sees (direction labels named after the run's domains, clickable examples from its test
split, a note when an upload is far from the training data) and where to serve.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import socket
import threading
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ponogan.core.messages import UsageError, first_line, one_line
from ponogan.core.run_folder import CONFIG, MODEL, STATE_DIR, RunCard, RunFolder, RunFolderMissing
from ponogan.data import TEST_CHARS, ImageLoadError, load_image
from ponogan.data.image_io import is_within
from ponogan.families import family_names, get_family
from ponogan.inference.pipeline import TranslationPipeline

DEMO_PREFIX = "demo_"
DEFAULT_DEMO = "demo_pix2pix_pono_ms_glyphs"
MAX_TEXT_CHARS = 24
# Largest upload the app decodes, in pixels. Smaller than `ponogan.data.DEFAULT_MAX_PIXELS` (Pillow's
# decompression-bomb threshold, meant for the batch tools reading the user's own files) because anyone
# who can reach the server can upload, and one 89-megapixel image costs gigabytes to decode and translate.
# NOTE: kept here until `ponogan.data` defines an app limit of its own; `app.py --max-pixels` overrides it.
APP_MAX_PIXELS = 2048 * 2048
MIN_MAX_PIXELS = 64 * 64  # the smallest `--max-pixels`: a glyph tile must fit
# gradio's cache of uploads and results: files older than this are deleted (see app.py --upload-max-age).
UPLOAD_MAX_AGE_S = 3600


@dataclass(frozen=True)
class CheckpointInfo:
    """A run folder the app can load: `name` is its path relative to the checkpoints root."""

    name: str
    path: Path
    config: dict

    @property
    def is_demo(self) -> bool:
        return Path(self.name).name.startswith(DEMO_PREFIX)


def read_checkpoint(path: str | Path, name: str | None = None) -> CheckpointInfo:
    """A run folder (or its `model.safetensors`) -> `CheckpointInfo` with its card migrated to this
    ponogan's format; `ValueError` (`RunFolderError`) when it is not one (a file missing, config.json
    unreadable, oversized, nested too deeply, foreign, or with entries of the wrong type)."""
    folder = RunFolder.of(path)
    if not folder.is_run():
        raise RunFolderMissing(f"{folder.path} is not a run folder: it needs {CONFIG} and {MODEL}")
    card = RunCard.load(folder.config, family=True)
    return CheckpointInfo(name or folder.path.name, folder.path, card.to_dict())


def skip_reason(err: BaseException, limit: int = 300) -> str:
    """Why a run was skipped, on one line of at most `limit` characters (its error's first line)."""
    reason = one_line(first_line(err))
    if not isinstance(err, (ValueError, OSError)):  # an unexpected kind: name it
        reason = f"{type(err).__name__}: {reason}"
    return reason if len(reason) <= limit else reason[: limit - 3] + "..."


def scan_checkpoints(root: str | Path) -> tuple[list[CheckpointInfo], dict[str, str]]:
    """Every run folder under `root` (any depth, skipping training `state/` folders), and the folders
    holding a `model.safetensors` that are not readable runs, `{name: reason}`.

    Order: shipped `demo_*` models by name, then the other runs, newest first. Any error while reading
    one folder skips that folder only (why: one broken or hostile run must not keep the app from
    serving the others).
    """
    root = Path(root)
    if not root.is_dir():
        return [], {}
    found, skipped = [], {}
    for weights in root.rglob(MODEL):
        name = str(weights.parent.relative_to(root))
        if STATE_DIR in weights.relative_to(root).parts[:-1]:
            continue
        try:
            info = read_checkpoint(weights.parent, name)
            found.append((info, 0.0 if info.is_demo else -weights.stat().st_mtime))
        except Exception as err:  # noqa: BLE001 - per-run boundary: whatever reading it raised
            skipped[name] = skip_reason(err)
    demos = sorted((c for c, _ in found if c.is_demo), key=lambda c: c.name)
    runs = [c for c, _ in sorted((f for f in found if not f[0].is_demo), key=lambda f: f[1])]
    return demos + runs, skipped


def find_checkpoints(root: str | Path) -> list[CheckpointInfo]:
    """The readable runs of `scan_checkpoints(root)`."""
    return scan_checkpoints(root)[0]


def check_run_view(info: CheckpointInfo, directions: tuple[str, ...]) -> None:
    """Build everything the UI shows for run `info` once (model card, direction labels, tab, input
    domain, glyph font), so a config that would break a page fails here, at start-up, instead."""
    model_card(info.config, info.name)
    direction_labels(info.config, directions)
    start_tab(info.config)
    for direction in directions:
        input_domain(info.config, direction)
        glyph_font(info.config, direction)


def _flatten(metrics: dict, prefix: str = "") -> list[tuple[str, str]]:
    """`{"fid": 12.5, "paired": {"l1": 0.25}}` -> `[("fid", "12.5"), ("paired.l1", "0.25")]`."""
    rows = []
    for key, value in metrics.items():
        if isinstance(value, dict):
            rows += _flatten(value, f"{prefix}{key}.")
        elif isinstance(value, (int, float, str, bool)):
            rows.append((f"{prefix}{key}", f"{value:.4g}" if isinstance(value, float) else str(value)))
    return rows


def describe_data(data: dict) -> str:
    """One line on the training data from `config["data"]`."""
    mode = data.get("mode", "unknown")
    if mode == "glyphs":
        pairing = "paired" if data.get("paired", True) else "unpaired"
        return (
            f"built-in glyphs ({pairing}, {data.get('variant', 'plain')}): "
            f"{data.get('font_a', '?')} → {data.get('font_b', '?')}, {data.get('image_size', '?')} px"
        )
    root = data.get("root")
    size = data.get("crop_size")
    return f"{mode} dataset{f' at {root}' if root else ''}{f', {size} px crops' if size else ''}"


def _unet(option: dict) -> list[str]:
    levels = option.get("num_downs")
    return [f"U-Net, {levels} levels, {2**levels} px", *_conv(option)]


def _resnet(option: dict) -> list[str]:
    blocks, downs = option.get("n_blocks"), option.get("n_downsampling")
    return [f"ResNet, {blocks} residual blocks, {downs} downsamplings", *_conv(option)]


def _munit(option: dict) -> list[str]:
    return [
        f"MUNIT auto-encoder, {option.get('n_downsample')} downsamplings",
        f"{option.get('n_res')} residual blocks",
        f"dim {option.get('dim')}",
        f"style dim {option.get('style_dim')}",
    ]


def _drit(option: dict) -> list[str]:
    return [
        f"DRIT translator (concat {option.get('concat')})",
        f"{option.get('n_res')} residual blocks",
        f"dim {option.get('dim')}",
        f"attribute dim {option.get('attribute_dim')}",
    ]


def _conv(option: dict) -> list[str]:
    return [f"ngf {option.get('ngf')}", f"norm {option.get('norm')}"] + (
        ["dropout"] if option.get("use_dropout") else []
    )


# generator class -> the words that describe its shape, from its options
DESCRIBERS = {
    "UnetGenerator": _unet,
    "ResnetGenerator": _resnet,
    "MunitGenerator": _munit,
    "DritTranslator": _drit,
}


def describe_generator(spec: dict) -> str:
    """What a generator spec builds, from its options rather than its preset name.

    Why: a run's preset name can mislead (`unet_256` with `num_downs=6` is a 6-level U-Net whose
    bottleneck is 1x1 at 64 px, not a 256 px net), so the card reads the options that shape the network.
    """
    import inspect

    from ponogan.models import GENERATORS

    name, option = spec.get("name", "?"), spec.get("kwargs", {})
    preset = GENERATORS.get(name)
    params = {}
    if preset is not None:  # options an older spec left out: the preset's, else the class's defaults
        params = inspect.signature(preset.cls).parameters
        option = (
            {p.name: p.default for p in params.values() if p.default is not p.empty}
            | preset.defaults
            | option
        )
    shortcut = option.get("shortcut")
    shortcut = f"shortcut {f'PONO-{shortcut.upper()}' if shortcut else 'none'}"
    describe = DESCRIBERS.get(preset.cls.__name__) if preset is not None else None
    if describe is None:
        return f"{name} (unknown preset), {shortcut}"
    layout = [f"layout {option.get('layout') or 'ponogan'}"] if "layout" in params else []
    return ", ".join([*describe(option), shortcut, *layout])


def model_card(config: dict, name: str = "") -> str:
    """Markdown card: family, directions, each generator as built, training data and steps, metrics.

    Generators with the same description (CycleGAN's `G_A`/`G_B`) share one line.
    """
    lines = [
        f"### {name or config.get('run_name', 'checkpoint')}",
        "",
        f"- **family**: {config.get('family', 'unknown')}",
    ]
    if config.get("family") in family_names():
        labels = direction_labels(config, get_family(config["family"]).directions)
        lines.append(f"- **direction{'s' if len(labels) > 1 else ''}**: {'; '.join(labels.values())}")
    by_text: dict[str, list[str]] = {}
    for role, spec in (config.get("generators") or {}).items():
        by_text.setdefault(describe_generator(spec), []).append(role)
    lines += [f"- **{', '.join(roles)}**: {text}" for text, roles in by_text.items()]
    if isinstance(config.get("data"), dict):
        lines.append(f"- **training data**: {describe_data(config['data'])}")
    if "step" in config:
        lines.append(f"- **steps**: {config['step']}")
    metrics = _flatten(config["metrics"]) if isinstance(config.get("metrics"), dict) else []
    if metrics:
        lines += ["", "| metric | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in metrics]
    else:
        lines += ["", "_no metrics recorded (run `ponogan eval` on this run)_"]
    return "\n".join(lines)


class PipelineCache:
    """Loaded pipelines by path, at most `capacity`, least recently used dropped first; thread-safe
    (one load at a time, so two requests never load the same run twice)."""

    def __init__(self, capacity: int = 2, device: str | None = None, dtype: str | None = None):
        load = functools.partial(TranslationPipeline.from_pretrained, device=device, dtype=dtype)
        self._load = functools.lru_cache(maxsize=capacity)(load)
        self._lock = threading.Lock()

    def get(self, path: str | Path) -> TranslationPipeline:
        with self._lock:
            return self._load(str(Path(path).resolve()))


def load_upload(path: str | Path, max_pixels: int) -> Image.Image:
    """An uploaded file -> RGB PIL image; `ValueError` with a plain reason (not an image, too large...)."""
    try:
        return load_image(path, "RGB", max_pixels)
    except ImageLoadError as err:
        raise ValueError(f"Cannot use this upload: {err.reason}.") from None


def discard_upload(path: str | os.PathLike, cache_root: str | os.PathLike) -> bool:
    """Delete `path` when it is a file inside gradio's upload cache `cache_root` (and its folder when
    that is left empty); anything outside the cache is never touched. Returns whether it was deleted.

    Why: a rejected upload (not an image, too many pixels) is useless, and gradio would otherwise keep
    it until its cache is next cleaned, so repeated bad uploads of tens of MB fill the disk.
    """
    path, root = Path(path).resolve(), Path(cache_root).resolve()
    if not path.is_file() or not is_within(path, root):
        return False
    path.unlink()
    if path.parent != root and not any(path.parent.iterdir()):
        path.parent.rmdir()
    return True


def port_error(host: str, port: int) -> str:
    return f"port {port} on {host} is in use (another app.py?); choose another with --port"


def check_server(host: str, port: int) -> None:
    """`UsageError` unless the app can serve on `host:port`: `host` must be an IP address or a name that
    resolves, it must be an address of this machine, and no other process may listen on the port.

    Binds a socket with `SO_REUSEADDR`, as servers do, so a port left in TIME_WAIT by an earlier run
    does not count as taken. Why before launch: gradio reports any failure to bind as "port in use",
    and only after the models have loaded.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (OSError, UnicodeError) as err:
        raise UsageError(
            f"cannot use host {host!r}: not an IP address or a name that resolves "
            f"({getattr(err, 'strerror', None) or err}); pass --host 127.0.0.1 or 0.0.0.0"
        ) from None
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise UsageError(port_error(host, port)) from None
            raise UsageError(
                f"cannot use host {host!r}: {err.strerror or err} (not an address of this machine?); "
                "pass --host 127.0.0.1 or 0.0.0.0"
            ) from None


def glyph_font(config: dict, direction: str) -> str | None:
    """The font a glyph model's source domain is drawn in, or `None` for a model not trained on glyphs."""
    data = config.get("data") or {}
    if data.get("mode") != "glyphs":
        return None
    fonts = (data.get("font_a", "DejaVuSans"), data.get("font_b", "DejaVuSerif-Bold"))
    if data.get("direction", "AtoB") == "BtoA":
        fonts = fonts[::-1]
    return fonts[0] if direction == "AtoB" else fonts[1]


# Code points that extend the character before them: variation selectors, emoji skin-tone modifiers,
# tag characters (flag subdivisions), the zero-width joiner (which also joins the next character).
_VARIATION = (range(0xFE00, 0xFE10), range(0xE0100, 0xE01F0))
_EMOJI_PARTS = (range(0x1F3FB, 0x1F400), range(0xE0020, 0xE0080))
ZWJ = "\u200d"
_REGIONAL = range(0x1F1E6, 0x1F200)  # two of them make a flag
_RTL_CLASSES = ("R", "AL", "RLE", "RLO", "RLI")


def _extends(char: str) -> bool:
    code = ord(char)
    return (
        unicodedata.category(char) in ("Mn", "Mc", "Me")
        or char == ZWJ
        or any(code in block for block in (*_VARIATION, *_EMOJI_PARTS))
    )


def text_units(text: str) -> list[str]:
    """`text` split into the characters a reader sees: a base with its combining marks, an emoji with
    its variation selector, skin tone or ZWJ-joined parts, a pair of regional indicators (a flag), as
    one unit each. (A simplified form of Unicode's extended grapheme clusters, UAX #29.)"""
    units: list[str] = []
    for char in text:
        joins = units and (
            _extends(char)
            or units[-1].endswith(ZWJ)
            or (ord(char) in _REGIONAL and len(units[-1]) == 1 and ord(units[-1]) in _REGIONAL)
        )
        if joins:
            units[-1] += char
        else:
            units.append(char)
    return units


@functools.lru_cache(maxsize=16)
def font_cmap(font: str) -> frozenset[int] | None:
    """The code points `font` (a `resolve_font` value) has glyphs for, from its cmap (fontTools, which
    matplotlib brings), or `None` when it cannot be read that way (Pillow's built-in font)."""
    try:
        from fontTools.ttLib import TTFont

        return frozenset(TTFont(font, lazy=True).getBestCmap())
    except (ImportError, OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def has_glyph(font: str, char: str) -> bool:
    """Whether `font` draws `char` (one code point): its cmap says so, or, with no cmap to read, the
    character renders as something other than the font's missing-glyph shape."""
    cmap = font_cmap(font)
    if cmap is not None:
        return ord(char) in cmap
    from ponogan.data.fonts import render_glyph

    mask = render_glyph(font, char, 32)
    return mask.max() >= 0.5 and not np.array_equal(mask, render_glyph(font, "\U0010fffd", 32))


def _drawn_form(unit: str) -> str:
    """What a tile draws for `unit`: without variation selectors, composed (NFC: `e` + U+0301 -> `é`)."""
    bare = "".join(c for c in unit if not any(ord(c) in block for block in _VARIATION))
    return unicodedata.normalize("NFC", bare)


def _describe(unit: str) -> str:
    """`'é' (U+0065 U+0301)`; code points only for a unit holding invisible characters."""
    codes = " ".join(f"U+{ord(c):04X}" for c in unit)
    visible = all(unicodedata.category(c)[0] not in "CZ" for c in unit if c != ZWJ)
    return f"'{unit}' ({codes})" if visible else codes


def _why_not_drawn(unit: str, font: str) -> str | None:
    """Why glyph tiles cannot show `unit` (one `text_units` unit), or `None` when they can."""
    categories = {unicodedata.category(c) for c in unit if c != ZWJ}
    if categories & {"Cc", "Cf"}:
        return "control or invisible character"
    if categories & {"Co", "Cs", "Cn"}:
        return "private-use or unassigned character"
    if ZWJ in unit or any(ord(c) in _REGIONAL or any(ord(c) in b for b in _EMOJI_PARTS) for c in unit):
        return "emoji sequence, which glyph tiles cannot join into one picture"
    if not all(has_glyph(font, c) for c in _drawn_form(unit)):
        return f"no glyph in {font_display_name(font)}"
    return None


@dataclass(frozen=True)
class GlyphText:
    """Typed text made ready for glyph tiles: `units` to draw (a space is a blank tile), and `note`,
    one line naming the characters left out and why ("" when none were)."""

    units: list[str]
    note: str


def prepare_text(text: str, font: str) -> GlyphText:
    """Check `text` for the Glyph text tab (`font`: a `resolve_font` value).

    `ValueError` with the reason when it is refused: empty, over `MAX_TEXT_CHARS` characters as a reader
    counts them (`text_units`), right-to-left, or nothing in it drawable. Right-to-left scripts are refused
    rather than drawn: tiles go left to right one code point each, so Hebrew would read reversed and
    Arabic would lose the joining forms its letters take in a word. Characters that cannot be drawn
    (controls, emoji sequences, no glyph in the font) are left out and named in `note`.
    """
    units = text_units(text.strip())
    if not units:
        raise ValueError("Type some text to render.")
    if len(units) > MAX_TEXT_CHARS:
        raise ValueError(f"Text is limited to {MAX_TEXT_CHARS} characters (got {len(units)}).")
    rtl = [c for c in text if unicodedata.bidirectional(c) in _RTL_CLASSES]
    if rtl:
        raise ValueError(
            f"Right-to-left text ({_describe(rtl[0])}) is not supported: glyph tiles run left to "
            "right one character at a time, so it would read reversed and unjoined. Type left-to-right text."
        )
    kept, skipped = [], {}
    for unit in units:
        why = None if unit == " " or unicodedata.category(unit[0]) == "Zs" else _why_not_drawn(unit, font)
        if why is None:
            kept.append(" " if unicodedata.category(unit[0]) == "Zs" else unit)
        else:
            skipped.setdefault(why, []).append(unit)
    parts = [
        f"{why}: {', '.join(_describe(u) for u in dict.fromkeys(found))}" for why, found in skipped.items()
    ]
    note = f"Left out ({'; '.join(parts)})." if parts else ""
    if not any(unit != " " for unit in kept):
        raise ValueError(f"Nothing to draw: every character was left out. {note}")
    return GlyphText(kept, note)


def render_text(text: str, font: str, size: int) -> tuple[list[Image.Image], str]:
    """One `(size, size)` black-on-white tile per character of `text` a reader sees (spaces blank), as in
    training, and the `prepare_text` note naming the characters left out."""
    from ponogan.data.fonts import render_glyph, resolve_font

    resolved = resolve_font(font)
    prepared = prepare_text(text, resolved)
    tiles = []
    for unit in prepared.units:
        blank = unit == " "
        mask = (
            np.zeros((size, size), np.float32) if blank else render_glyph(resolved, _drawn_form(unit), size)
        )
        tiles.append(Image.fromarray(np.rint((1.0 - mask) * 255).astype(np.uint8), "L").convert("RGB"))
    return tiles, prepared.note


# One lock for the whole process around every pipeline call that draws from torch's global RNG (paper
# mode: dropout on, seeded per image by the pipeline with fork_rng + manual_seed). Why a lock and not a
# per-request `torch.Generator`: `nn.Dropout` draws from the global generator and takes none of its own,
# so a generator could only reach it by replacing the networks' dropout modules. The pipeline's own lock
# is one per pipeline, so two pipelines (two checkpoints, or a run reloaded after `PipelineCache` dropped
# it) seeding the global generator at once would draw each other's numbers; this lock makes a seeded call
# see only its own seed. MUNIT's random styles come from a private generator and need no lock.
RANDOM_LOCK = threading.Lock()


def translate_images(
    pipe: TranslationPipeline, images: list[Image.Image], direction: str, test_mode: str, **options
) -> list[Image.Image]:
    """`pipe(images, direction=..., test_mode=..., **options)`, holding `RANDOM_LOCK` when the call
    draws random numbers (paper mode on a generator with dropout or BatchNorm)."""
    draws = test_mode == "paper" and pipe.test_mode_matters
    with RANDOM_LOCK if draws else contextlib.nullcontext():
        return pipe(images, direction=direction, test_mode=test_mode, **options)


def translate_tiles(
    pipe: TranslationPipeline, tiles: list[Image.Image], direction: str, test_mode: str = "eval"
) -> list[Image.Image]:
    """Translate glyph tiles; blank tiles (spaces) stay blank instead of going through the model.

    A blank tile is outside the training data (every training tile holds a glyph); instance-normalised
    generators turn its constant input into artefacts. `test_mode` is passed to the pipeline (seed 0).
    """
    inked = [i for i, tile in enumerate(tiles) if tile.convert("L").getextrema()[0] < 255]
    tiles_in = [tiles[i] for i in inked]
    outputs = translate_images(pipe, tiles_in, direction, test_mode, seed=0) if inked else []
    translated = list(tiles)
    for i, output in zip(inked, outputs, strict=True):  # one output per tile (MUNIT: one style)
        translated[i] = output
    return translated


def hstack(images: list[Image.Image], gap: int = 0) -> Image.Image:
    """Images side by side, top-aligned, on white, with `gap` pixels between them."""
    width = sum(img.width for img in images) + gap * (len(images) - 1)
    height = max(img.height for img in images)
    canvas = Image.new("RGB", (width, height), "white")
    x = 0
    for img in images:
        canvas.paste(img.convert("RGB"), (x, 0))
        x += img.width + gap
    return canvas


def moment_gallery(
    pipe: TranslationPipeline, image: Image.Image, direction: str, display_width: int = 192
) -> list[tuple[Image.Image, str]]:
    """`[(image, caption)]`: mean then std map of each encoder level, upscaled (nearest) for display."""
    levels = pipe.moments(image, direction, as_images=True)
    gallery = []
    for level, (mean, std) in enumerate(levels, start=1):
        scale = max(1, display_width // mean.width)
        for name, moment in (("mean", mean), ("std", std)):
            shown = moment.resize((moment.width * scale, moment.height * scale), Image.Resampling.NEAREST)
            gallery.append((shown, f"level {level} {name} ({moment.width}x{moment.height})"))
    return gallery


# --- what a first visitor sees: domain names, examples, out-of-domain notes ---

SAMPLE_TEXTS = ("PONO", "Hello", TEST_CHARS, "Moment 42")  # the third: every held-out character
EXAMPLES_PER_DIRECTION = len(TEST_CHARS)  # one per held-out glyph character


def font_display_name(font: str) -> str:
    """A glyph font as people name it: `DejaVuSerif-Bold` -> "DejaVu Serif Bold" (the font file's own
    family and style names); the config's name itself when the font cannot be opened here."""
    from PIL import ImageFont

    from ponogan.data.fonts import PIL_DEFAULT, resolve_font

    try:
        resolved = resolve_font(font)
        is_default = resolved == PIL_DEFAULT
        face = ImageFont.load_default(size=12) if is_default else ImageFont.truetype(resolved, 12)
        family, style = face.getname()
    except (ValueError, OSError):
        return Path(font).stem if font.lower().endswith((".ttf", ".otf")) else font
    return family if style in ("Regular", "Book", "Roman", "Normal") else f"{family} {style}"


def domain_names(config: dict) -> tuple[str, str]:
    """Human names of the model's domains A and B (the input and output of `AtoB`).

    Glyph runs: the fonts. Folder runs: `horse2zebra` -> ("horse", "zebra"), another root `facades` ->
    ("facades A", "facades B"); list mode: the list files' names. Otherwise ("A", "B"). A run trained
    with `direction="BtoA"` has the dataset's domains swapped.
    """
    data = config.get("data") if isinstance(config.get("data"), dict) else {}
    if data.get("mode") == "glyphs":  # glyph_font has swapped them already for a run trained BtoA
        return font_display_name(glyph_font(config, "AtoB")), font_display_name(glyph_font(config, "BtoA"))
    if data.get("list_a") and data.get("list_b"):
        names = (Path(data["list_a"]).stem, Path(data["list_b"]).stem)
    elif data.get("root"):
        root = Path(str(data["root"]).rstrip("/\\")).name
        first, sep, second = root.partition("2")
        names = (first, second) if sep and first and second else (f"{root} A", f"{root} B")
    else:
        names = ("A", "B")
    return names[::-1] if data.get("direction") == "BtoA" else names


def direction_labels(config: dict, directions: tuple[str, ...]) -> dict[str, str]:
    """`{"AtoB": "DejaVu Sans → DejaVu Serif Bold", "BtoA": ...}` for the given direction values."""
    a, b = domain_names(config)
    return {d: f"{a} → {b}" if d == "AtoB" else f"{b} → {a}" for d in directions}


def start_tab(config: dict) -> str:
    """The tab a model opens on: `"text"` (typed glyphs) for glyph models, else `"image"`."""
    return "text" if (config.get("data") or {}).get("mode") == "glyphs" else "image"


@dataclass(frozen=True)
class InputDomain:
    """What a model's inputs looked like in training: `size` (px, None = any), whether they were black
    glyphs on white, and `text` describing it for the note ("64x64 black-on-white glyphs in DejaVu Sans")."""

    size: int | None
    black_on_white: bool
    text: str


def input_domain(config: dict, direction: str = "AtoB") -> InputDomain:
    """The training inputs of `direction` (the source domain), from `config["data"]`."""
    data = config.get("data") if isinstance(config.get("data"), dict) else {}
    source = direction_labels(config, (direction,))[direction].split(" → ")[0]
    if data.get("mode") == "glyphs":
        size = int(data.get("image_size", 64))
        # the model's input is the dataset's B side for BtoA (or for a run trained BtoA), never both
        input_is_b = (direction == "BtoA") != (data.get("direction") == "BtoA")
        plain = not (input_is_b and data.get("variant") == "hard")
        look = "black-on-white" if plain else "colour-styled"
        return InputDomain(size, plain, f"{size}x{size} {look} glyphs in {source}")
    preprocess = data.get("preprocess", "resize_and_crop")
    size = data.get("crop_size") if "crop" in preprocess else data.get("load_size")
    size = None if preprocess == "none" or not size else int(size)
    return InputDomain(size, False, f"{f'{size} px ' if size else ''}images of {source}")


def colourfulness(image: Image.Image) -> float:
    """Hasler & Süsstrunk's colourfulness on a 128 px thumbnail: 0 for gray, ~15 slightly colourful,
    ~33 moderately, ~59 quite, >80 extremely colourful."""
    thumb = image.convert("RGB")
    thumb.thumbnail((128, 128))
    r, g, b = np.asarray(thumb, np.float32).reshape(-1, 3).T
    rg, yb = r - g, 0.5 * (r + g) - b
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def domain_note(image: Image.Image, domain: InputDomain) -> str:
    """One line when `image` is far from the model's training inputs, else "".

    Far means: for a glyph model, a colourful image or one that is not mostly white (a photo); for
    any model with a training size, a shorter side over 4x that size or a longer side under half of it.
    Why: generators output noise or mush on such inputs, and without a note that looks like a bug.
    """
    reasons = []
    if domain.black_on_white:
        if colourfulness(image) > 15:
            reasons.append("in colour")
        elif (np.asarray(image.convert("L")) > 200).mean() < 0.5:
            reasons.append("not black on white")
    if domain.size:
        if min(image.size) > 4 * domain.size:
            reasons.append(f"over 4x the {domain.size} px training size")
        elif max(image.size) < domain.size / 2:
            reasons.append(f"under half the {domain.size} px training size")
    if not reasons:
        return ""
    return (
        f"⚠️ This model was trained on {domain.text}; this {image.width}x{image.height} input is "
        f"{' and '.join(reasons)}, so it will not translate meaningfully."
    )


def example_inputs(
    config: dict, direction: str = "AtoB", limit: int = EXAMPLES_PER_DIRECTION
) -> list[Image.Image]:
    """Up to `limit` inputs for `direction` from the run's own test split, or [] when it is unavailable.

    Glyph runs: one image per held-out character, rendered exactly as in the test split (same font,
    size, variant), so clicking an example shows what the model was trained for. Folder runs: the
    first test images, preprocessed as in training, when the dataset is still on disk (its `root` as
    stored, or relative to this repository). Why the test split: those inputs were never trained on.
    """
    from ponogan.data import DataOptions, create_dataset, tensor_to_pil

    data = config.get("data") if isinstance(config.get("data"), dict) else {}
    mode, root = data.get("mode"), data.get("root")
    if mode is None:
        return []
    if root is not None and not Path(root).is_dir():
        root = Path(__file__).resolve().parents[1] / root
    options = {k: v for k, v in data.items() if k in DataOptions.field_names()}
    try:
        dataset = create_dataset(mode, root, "test", **options)
        step = int(options.get("test_jitters", 8)) if mode == "glyphs" else 1
        indices = range(0, min(len(dataset), limit * step), step)
        key = "A" if direction == "AtoB" else "B"
        return [tensor_to_pil(dataset[i][key]) for i in indices]
    except (OSError, ValueError, RuntimeError, KeyError, IndexError, TypeError):
        return []


# --- serving ---

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 7860


def resolve_server(host: str | None, port: int | None, env=None) -> tuple[str, int]:
    """Where to serve: an explicit flag, else `GRADIO_SERVER_NAME` / `GRADIO_SERVER_PORT` (what Hugging
    Face Spaces and proxies set), else 127.0.0.1:7860. `ValueError` for a port that is not 1-65535."""
    env = os.environ if env is None else env
    host = host or env.get("GRADIO_SERVER_NAME") or DEFAULT_HOST
    if port is None:
        raw = env.get("GRADIO_SERVER_PORT", "").strip()
        if not raw:
            return host, DEFAULT_PORT
        if not raw.isdigit():
            raise UsageError(f"GRADIO_SERVER_PORT must be a port number, got {raw!r}")
        port = int(raw)
    if not 1 <= port <= 65535:
        raise UsageError(f"port must be between 1 and 65535, got {port}")
    return host, port


def file_in(payload, roots: list[str | os.PathLike]) -> Path | None:
    """The file a gradio file payload (dict or `FileData`) names, if it lies inside one of `roots`.

    Why: events registered with `preprocess=False` receive the client's payload as sent, so a path
    is only trusted when it is in gradio's upload cache or the app's own example folder.
    """
    path = payload.get("path") if isinstance(payload, dict) else getattr(payload, "path", None)
    if not path:
        return None
    path = Path(path).resolve()
    return path if path.is_file() and any(is_within(path, root) for root in roots) else None
