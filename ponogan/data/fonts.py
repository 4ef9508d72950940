"""Glyph rendering from fonts that ship with installed packages (matplotlib's TTFs, Pillow's default).

`render_glyph(font, char, size)` returns a cached `(size, size)` float32 coverage mask in [0, 1] with the
character drawn at a fixed em size and anchored at the canvas centre (middle of ascender/descender and
of the advance), so different fonts of one character line up like in typeset text.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

PIL_DEFAULT = "pil-default"
# NOTE: fonts in mpl-data that render blank or boxes for Latin text (see MACHINE_NOTES); refused by name.
BROKEN_FONTS = ("DejaVuSansDisplay", "DejaVuSerifDisplay", "LastResortHE-Regular", "cmex10", "cmsy10")
BROKEN_PREFIXES = ("STIXNonUni", "STIXSiz")
FONT_SCALE = 0.6  # em size as a fraction of the canvas side


def font_dir() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def available_fonts() -> list[str]:
    """Names accepted by `resolve_font`: matplotlib TTFs that render Latin text, plus `pil-default`."""
    names = sorted(p.stem for p in font_dir().glob("*.ttf"))
    usable = [n for n in names if n not in BROKEN_FONTS and not n.startswith(BROKEN_PREFIXES)]
    return [*usable, PIL_DEFAULT]


def resolve_font(name: str) -> str:
    """A font name (`DejaVuSans`), a `.ttf/.otf` path or `pil-default` -> the value `render_glyph` takes."""
    if name == PIL_DEFAULT:
        return name
    if os.path.isfile(name):
        return str(Path(name).resolve())
    candidate = font_dir() / f"{name.removesuffix('.ttf')}.ttf"
    if candidate.is_file() and name.removesuffix(".ttf") in available_fonts():
        return str(candidate)
    names = ", ".join(available_fonts())
    raise ValueError(f"unknown or unusable font {name!r}; use a .ttf path or one of: {names}")


@functools.lru_cache(maxsize=64)
def _font(font: str, em: int) -> ImageFont.FreeTypeFont:
    if font == PIL_DEFAULT:
        return ImageFont.load_default(size=em)
    try:
        return ImageFont.truetype(font, size=em)
    except OSError as err:
        raise ValueError(f"cannot open font {font}: {err}") from None


@functools.lru_cache(maxsize=4096)
def render_glyph(font: str, char: str, size: int) -> np.ndarray:
    """Coverage mask `(size, size)` float32 in [0, 1] of `char` in `font` (cached; do not modify)."""
    canvas = Image.new("L", (size, size), 0)
    em = max(4, round(FONT_SCALE * size))
    ImageDraw.Draw(canvas).text((size / 2, size / 2), char, fill=255, font=_font(font, em), anchor="mm")
    mask = np.asarray(canvas, dtype=np.float32) / 255.0
    mask.setflags(write=False)
    return mask


def check_font_renders(font: str, chars: str, size: int = 32) -> None:
    """Fail with a clear message when `font` draws blanks or one shared box for the characters."""
    masks = [render_glyph(font, c, size) for c in chars]
    blank = [c for c, m in zip(chars, masks, strict=True) if m.max() < 0.5]
    distinct = len({m.tobytes() for m in masks})
    if blank or distinct < 0.9 * len(chars):
        detail = f"blank: {''.join(blank)!r}" if blank else f"{distinct} distinct shapes for {len(chars)}"
        raise ValueError(f"font {font} does not render the glyph character set ({detail}); pick another font")
