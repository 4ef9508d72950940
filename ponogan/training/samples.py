"""Sample grids: one row per test item, a labelled column per image of it.

``labelled_grid(columns)`` draws the ``(label, images)`` columns a trainer's ``sample_columns`` returns
(pix2pix ``input | output | target``; CycleGAN and MUNIT both directions and their reconstructions)
under a header row naming each column, so a grid can be read without knowing the family. Narrow
columns (three or fewer) put two items side by side.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont
from torchvision.utils import make_grid

from ponogan.core.atomic import atomic_write

PADDING = 2  # pixels between tiles and around the grid
PAD_VALUE = 0.5  # grey
HEADER_BACKGROUND = (255, 255, 255)
HEADER_TEXT = (20, 20, 20)
MIN_FONT, MAX_FONT = 7, 14

Columns = Sequence[tuple[str, torch.Tensor]]


def _rgb(x: torch.Tensor) -> torch.Tensor:
    """``(N, C, H, W)`` in [-1, 1] -> ``(N, 3, H, W)`` in [0, 1] (grayscale repeated)."""
    x = x.detach().float().cpu().clamp(-1, 1) * 0.5 + 0.5
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def _tile_grid(columns: Columns, per_row: int) -> torch.Tensor:
    """``(3, H', W')``: item by item, each item's columns left to right, ``per_row`` items per row."""
    images = [_rgb(c) for _, c in columns]
    if len({c.shape[-2:] for c in images}) != 1 or len({c.shape[0] for c in images}) != 1:
        described = ", ".join(
            f"{label} {tuple(c.shape)}" for (label, _), c in zip(columns, images, strict=True)
        )
        raise ValueError(f"sample grid needs equally sized batches, got {described}")
    tiles = torch.stack(images, dim=1).flatten(0, 1)  # (N * k, 3, H, W): item 0's columns, item 1's, ...
    return make_grid(tiles, nrow=len(images) * per_row, padding=PADDING, pad_value=PAD_VALUE)


# ---------------------------------------------------------------- labels
@functools.lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans from matplotlib's fonts (a dependency, the same on every machine); Pillow's
    built-in font if that cannot be loaded."""
    try:
        import matplotlib

        return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts/ttf/DejaVuSans.ttf"), size)
    except (ImportError, OSError):
        return ImageFont.load_default(size=size)


def _wrap(label: str, font, width: int) -> list[str]:
    """``label`` in lines no wider than ``width``, broken at the last space, else after a ``(`` or ``>``
    (``A->B | (fixed style)``, ``G_B( | G_A(A))``), else anywhere (a line holds at least one character)."""
    lines, current = [], ""
    for char in label:
        while current and font.getlength(current + char) > width:
            cut = current.rfind(" ")  # the last space, else after the last "(" or ">"
            if cut <= 0:
                cut = max(current.rfind("("), current.rfind(">"))
            if cut > 0:
                lines.append(current[: cut + 1].rstrip())
                current = current[cut + 1 :].lstrip()
            else:
                lines.append(current)
                current = ""
        if current or char != " ":  # no line starts with a space
            current += char
    lines.append(current)
    return [line for line in lines if line] or [""]


def _layout(labels: Sequence[str], tile: int) -> tuple[ImageFont.ImageFont, list[list[str]]]:
    """The largest font (``MIN_FONT``..``MAX_FONT``, scaled to the tile) at which every label fits a
    tile's width, and each label's lines (wrapped only when even the smallest font is too wide)."""
    room = max(tile - 2, 1)
    size = max(MIN_FONT, min(MAX_FONT, round(tile * 0.16)))
    while size > MIN_FONT and any(_font(size).getlength(label) > room for label in labels):
        size -= 1
    font = _font(size)
    return font, [_wrap(label, font, room) for label in labels]


def labelled_grid(columns: Columns, *, per_row: int | None = None) -> Image.Image:
    """An RGB image: a header row of labels over a grid of ``(label, (N, C, H, W) in [-1, 1])`` columns.

    Each row shows ``per_row`` items (default: 2 for up to three columns, else 1), each item's columns
    in the given order, tiles separated by ``PADDING`` grey pixels; the header repeats the labels over
    every item of a row. All columns need the same ``N``, ``H`` and ``W`` (``ValueError`` otherwise).
    """
    if not columns:
        raise ValueError("a sample grid needs at least one column")
    labels = [label for label, _ in columns]
    n = columns[0][1].shape[0]
    per_row = max(1, min(per_row or (2 if len(columns) <= 3 else 1), n))
    grid = _tile_grid(columns, per_row)
    body = Image.fromarray(grid.mul(255).round().clamp(0, 255).byte().permute(1, 2, 0).numpy())
    tile_h, tile_w = columns[0][1].shape[-2:]
    font, lines = _layout(labels, tile_w)
    line_h = font.getbbox("Ay(|")[3] + 1  # ascender to descender, as draw.text places a line
    header_h = line_h * max(map(len, lines)) + 2 * PADDING + 2
    image = Image.new("RGB", (body.width, header_h + body.height), HEADER_BACKGROUND)
    image.paste(body, (0, header_h))
    draw = ImageDraw.Draw(image)
    for slot in range(len(columns) * per_row):
        column_lines = lines[slot % len(columns)]
        left = PADDING + slot * (tile_w + PADDING)
        top = header_h - PADDING - line_h * len(column_lines)  # labels sit just above their tiles
        for i, line in enumerate(column_lines):
            x = left + (tile_w - font.getlength(line)) / 2
            draw.text((x, top + i * line_h), line, fill=HEADER_TEXT, font=font)
    return image


def save_png(path: str | Path, image: Image.Image) -> Path:
    """Write ``image`` as PNG, atomically (a viewer never sees half an image; the run-folder sweeper
    removes a temp file a kill left behind)."""
    return atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))
