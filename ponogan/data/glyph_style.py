"""Appearance of the `hard` glyph variant: textured colour fill on a cluttered gradient background.

Luminance bands keep structure recoverable without learned weights: glyph fills have luminance
<= 0.3, background and clutter >= 0.55 (Rec. 601 weights), so thresholding luminance at 0.5
(`ponogan.data.glyph_mask`) recovers the glyph of a hard-variant image as well as of a plain one.
"""

from __future__ import annotations

import colorsys

import numpy as np
from PIL import Image, ImageDraw

LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
FILL_LUMA = (0.02, 0.3)
BACKGROUND_LUMA = (0.7, 0.98)
CLUTTER_LUMA = (0.55, 0.8)
MASK_THRESHOLD = 0.5


def _colour(rng: np.random.Generator, luma_range: tuple[float, float]) -> np.ndarray:
    """A saturated random hue moved to a luminance inside `luma_range` (RGB in [0, 1], float32)."""
    rgb = np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.5, 1.0), 1.0), dtype=np.float32)
    target = rng.uniform(*luma_range)
    luma = float(rgb @ LUMA)
    darker = rgb * (target / luma)
    lighter = 1.0 - (1.0 - rgb) * ((1.0 - target) / (1.0 - luma))
    rgb = darker if target <= luma else lighter
    rgb = np.clip(rgb, 0.0, 1.0)
    low, high = luma_range
    return np.clip(rgb + (np.clip(float(rgb @ LUMA), low, high) - float(rgb @ LUMA)), 0.0, 1.0)


def _coords(size: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / size
    return xs, ys


def background(rng: np.random.Generator, size: int) -> np.ndarray:
    """`(size, size, 3)` float32: a linear two-colour gradient at a random angle plus outline clutter."""
    xs, ys = _coords(size)
    angle = rng.uniform(0, 2 * np.pi)
    t = (np.cos(angle) * (xs - 0.5) + np.sin(angle) * (ys - 0.5)) / np.sqrt(0.5) + 0.5
    c0, c1 = _colour(rng, BACKGROUND_LUMA), _colour(rng, BACKGROUND_LUMA)
    image = c0 + np.clip(t, 0, 1)[..., None] * (c1 - c0)
    canvas = Image.fromarray((image * 255).round().astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(4, 9))):
        colour = tuple(int(round(v * 255)) for v in _colour(rng, CLUTTER_LUMA))
        x0, y0, x1, y1 = (rng.uniform(-0.1, 1.1, 4) * size).tolist()
        width = int(rng.integers(1, max(2, size // 32) + 1))
        if rng.random() < 0.5:
            draw.line((x0, y0, x1, y1), fill=colour, width=width)
        else:
            box = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
            draw.ellipse(box, outline=colour, width=width)
    return np.asarray(canvas, dtype=np.float32) / 255.0


def fill(rng: np.random.Generator, size: int) -> np.ndarray:
    """`(size, size, 3)` float32: sinusoidal stripes between two dark colours at a random angle/period."""
    xs, ys = _coords(size)
    angle = rng.uniform(0, np.pi)
    period = rng.uniform(0.08, 0.25)
    phase = rng.uniform(0, 2 * np.pi)
    wave = 0.5 + 0.5 * np.sin(2 * np.pi * (np.cos(angle) * xs + np.sin(angle) * ys) / period + phase)
    c0, c1 = _colour(rng, FILL_LUMA), _colour(rng, FILL_LUMA)
    return c0 + wave[..., None] * (c1 - c0)


def hard_style(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Compose a glyph coverage `mask` `(H, W)` in [0, 1] into a hard-variant RGB image `(H, W, 3)`."""
    size = mask.shape[0]
    m = mask[..., None]
    return (background(rng, size) * (1.0 - m) + fill(rng, size) * m).astype(np.float32)
