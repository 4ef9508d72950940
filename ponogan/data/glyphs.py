"""Built-in glyph data: characters rendered in two fonts, generated on the fly, no download needed.

Domain A is `font_a` (default DejaVu Sans), domain B `font_b` (default DejaVu Serif Bold), black glyphs
on white. Each item is a pure function of (seed, phase, index): a character, a placement jitter
(scale, shift, and for `hard` a rotation) and, for `hard`, B's colours. Rendering is cached per
(font, char, size); the jitter is one affine warp of the cached mask, so an item costs well under a
millisecond at 64 px.

Split rule: `TEST_CHARS` (fixed, the same for every seed) never appear in the train split; the test
split is every test character x `test_jitters` placements, always paired, drawn from a fixed stream
so all runs are scored on the same images. Test items also carry `B_mask` `(1, H, W)` in {0, 1}, the
binary glyph of the target, for structure metrics (mask IoU, centroid error) that need no weights.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ponogan.data.fonts import check_font_renders, render_glyph, resolve_font
from ponogan.data.glyph_style import LUMA, MASK_THRESHOLD, hard_style
from ponogan.data.options import DataOptions

CHARSET = string.ascii_letters + string.digits + "#$%&?@"
TEST_CHARS = "aeksHKRW27&"
TRAIN_CHARS = "".join(c for c in CHARSET if c not in TEST_CHARS)
_TEST_STREAM = 20_240_611  # fixed: the test split does not depend on `seed`
_PHASE_IDS = {"train": 0, "test": 1}


@dataclass(frozen=True)
class Jitter:
    """Placement of one glyph: `scale`, `shift` (fraction of the side, x/y), `rotation` in degrees."""

    scale: float
    shift: tuple[float, float]
    rotation: float

    @classmethod
    def draw(cls, rng: np.random.Generator, variant: str) -> Jitter:
        if variant == "hard":
            scale, shift, rotation = rng.uniform(0.7, 1.15), rng.uniform(-0.15, 0.15, 2), rng.uniform(-12, 12)
        else:
            scale, shift, rotation = rng.uniform(0.85, 1.1), rng.uniform(-0.08, 0.08, 2), 0.0
        return cls(float(scale), (float(shift[0]), float(shift[1])), float(rotation))

    def apply(self, mask: np.ndarray) -> np.ndarray:
        """Warp a `(S, S)` mask: p = c + scale * R(rotation) (q - c) + shift * S (bilinear, zero fill)."""
        size = mask.shape[0]
        centre = size / 2
        theta = np.deg2rad(self.rotation)
        cos, sin = np.cos(theta) / self.scale, np.sin(theta) / self.scale
        ox, oy = centre + self.shift[0] * size, centre + self.shift[1] * size
        coeffs = (cos, sin, centre - cos * ox - sin * oy, -sin, cos, centre + sin * ox - cos * oy)
        warped = Image.fromarray(mask, "F").transform(
            (size, size), Image.Transform.AFFINE, coeffs, resample=Image.Resampling.BILINEAR, fillcolor=0.0
        )
        return np.clip(np.asarray(warped, dtype=np.float32), 0.0, 1.0)


class GlyphDataset(Dataset):
    """Glyph pairs `{"A", "B", "A_path", "B_path"}` (+ `"B_mask"` in the test split), `(C, S, S)` in [-1, 1].

    `paired=True`: B is the same character and jitter as A. `paired=False` (train only): B's character
    and jitter come from an independent stream. `variant="hard"` restyles domain B (textured colour
    fill on a cluttered gradient, larger jitter with rotation); A stays plain. `direction="BtoA"` swaps
    the domains. Channels follow `input_nc` / `output_nc` (1 = luminance).
    """

    def __init__(self, root: Any = None, phase: str = "train", options: DataOptions | None = None) -> None:
        self.options = options or DataOptions()
        if phase not in _PHASE_IDS:
            raise ValueError(f"glyph dataset phase must be one of {', '.join(_PHASE_IDS)}, got {phase!r}")
        self.phase = phase
        self.fonts = (resolve_font(self.options.font_a), resolve_font(self.options.font_b))
        for font in dict.fromkeys(self.fonts):
            check_font_renders(font, CHARSET)
        self.chars = TRAIN_CHARS if phase == "train" else TEST_CHARS

    def __len__(self) -> int:
        if self.phase == "train":
            return self.options.length
        return len(TEST_CHARS) * self.options.test_jitters

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for a glyph dataset of {len(self)} items")
        opts, size = self.options, self.options.image_size
        if self.phase == "train":
            rng_a = np.random.default_rng([opts.seed, _PHASE_IDS["train"], index])
            char_a = self.chars[int(rng_a.integers(len(self.chars)))]
        else:
            rng_a = np.random.default_rng([_TEST_STREAM, _PHASE_IDS["test"], index])
            char_a = self.chars[index // opts.test_jitters]
        jitter_a = Jitter.draw(rng_a, opts.variant)
        if opts.paired or self.phase != "train":
            char_b, jitter_b, rng_b = char_a, jitter_a, rng_a
        else:
            rng_b = np.random.default_rng([opts.seed, 2, index])
            char_b = self.chars[int(rng_b.integers(len(self.chars)))]
            jitter_b = Jitter.draw(rng_b, opts.variant)
        mask_a = jitter_a.apply(render_glyph(self.fonts[0], char_a, size))
        mask_b = jitter_b.apply(render_glyph(self.fonts[1], char_b, size))
        image_a = _plain(mask_a)
        image_b = hard_style(mask_b, rng_b) if opts.variant == "hard" else _plain(mask_b)
        path_a = self._path(index, opts.font_a, char_a)
        path_b = self._path(index, opts.font_b, char_b)
        if opts.direction == "BtoA":
            image_a, image_b, path_a, path_b, mask_b = image_b, image_a, path_b, path_a, mask_a
        item = {
            "A": _to_tensor(image_a, opts.input_nc),
            "B": _to_tensor(image_b, opts.output_nc),
            "A_path": path_a,
            "B_path": path_b,
        }
        if self.phase != "train":
            item["B_mask"] = torch.from_numpy((mask_b > 0.5).astype(np.float32))[None]
        return item

    def _path(self, index: int, font: str, char: str) -> str:
        return f"glyphs:{self.phase}/{index:05d}/{font}/U+{ord(char):04X}"


def glyph_mask(
    images: torch.Tensor, threshold: float = MASK_THRESHOLD, *, dark_on_light: bool = True
) -> torch.Tensor:
    """Boolean glyph mask of images in [-1, 1]: Rec. 601 luminance on the [0, 1] scale (a single
    channel taken as is) below `threshold`, or above it with `dark_on_light=False`.

    `(C, H, W)` -> `(1, H, W)`, `(N, C, H, W)` -> `(N, 1, H, W)`, C = 1 or 3; `.float()` gives {0, 1}.
    The one rule for the built-in data (glyph fills are darker than any background or clutter in both
    variants) and the structure metrics (`ponogan.metrics.mask_iou`, `centroid_error`).
    """
    if images.dim() not in (3, 4) or images.shape[-3] not in (1, 3):
        raise ValueError(
            f"glyph_mask needs 1- or 3-channel images (C, H, W) or (N, C, H, W), got {tuple(images.shape)}"
        )
    gray = (images.float() + 1) / 2
    if gray.shape[-3] == 3:
        luma = torch.as_tensor(LUMA, dtype=gray.dtype, device=gray.device).view(3, 1, 1)
        gray = (gray * luma).sum(-3, keepdim=True)
    return gray < threshold if dark_on_light else gray > threshold


def _plain(mask: np.ndarray) -> np.ndarray:
    """Black glyph on white, `(H, W, 3)` float32 in [0, 1]."""
    return np.repeat((1.0 - mask)[..., None], 3, axis=2)


def _to_tensor(image: np.ndarray, channels: int) -> torch.Tensor:
    """`(H, W, 3)` in [0, 1] -> `(channels, H, W)` in [-1, 1]; one channel = Rec. 601 luminance."""
    if channels == 1:
        image = (image @ LUMA)[..., None]
    # NOTE: arithmetic in NumPy: small torch ops in loader workers pay intra-op threading overhead.
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1) * 2.0 - 1.0, dtype=np.float32))
