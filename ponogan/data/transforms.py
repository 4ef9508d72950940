"""Paired-safe preprocessing: draw the random parameters once, apply them to every image of a pair.

`get_params` draws crop position and flip for an image size; `apply_transform` resizes, crops and flips
a PIL image with those parameters and returns a `(C, H, W)` tensor in [-1, 1]. Applying one `params`
to A and B (aligned halves) keeps the pair pixel-aligned.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image

from ponogan.data.image_io import pil_to_tensor
from ponogan.data.options import DataOptions

# Smallest item side kept when no crop fixes the size: a thinner image is a line or a dot (under one
# cell of the generators' two stride-2 downsamplings) and fails inside the networks.
MIN_SIDE = 4


@dataclass(frozen=True)
class TransformParams:
    """Random choices for one sample: crop corner `(x, y)` in the resized image and a horizontal flip."""

    crop_pos: tuple[int, int]
    flip: bool


def resized_size(options: DataOptions, width: int, height: int) -> tuple[int, int]:
    """Size `(w, h)` after the resize step of `options.preprocess` (before cropping)."""
    if options.preprocess == "resize_and_crop":
        return options.load_size, options.load_size
    if options.preprocess in ("scale_width", "scale_width_and_crop"):
        return options.load_size, max(1, round(options.load_size * height / width))
    return width, height


def decay_options(options: DataOptions) -> DataOptions:
    """The options train items follow in the learning-rate decay epochs: `options` themselves with
    `crop_in_decay`, else the resize step sized to `crop_size` (CUT's rule: its dataset sets the load
    size to the crop size once the decay starts), so a resized square leaves no crop to draw; `crop`
    and the modes without a crop step are unchanged."""
    if options.crop_in_decay or options.preprocess not in ("resize_and_crop", "scale_width_and_crop"):
        return options
    return options.replace(load_size=options.crop_size)


def keeps_image_size(options: DataOptions) -> bool:
    """Whether items keep each image's own (scaled) size: `preprocess` has no crop step to fix it."""
    return not _crops(options)


def get_params(options: DataOptions, size: tuple[int, int], train: bool) -> TransformParams:
    """Draw crop corner and flip for an image of `size = (w, h)`; centred crop, no flip when not `train`."""
    new_w, new_h = resized_size(options, *size)
    crop = options.crop_size if _crops(options) else None
    max_x = max(0, new_w - crop) if crop else 0
    max_y = max(0, new_h - crop) if crop else 0
    if train:
        x = int(torch.randint(max_x + 1, ()).item())
        y = int(torch.randint(max_y + 1, ()).item())
        flip = not options.no_flip and bool(torch.rand(()).item() < 0.5)
    else:
        x, y, flip = max_x // 2, max_y // 2, False
    return TransformParams((x, y), flip)


def apply_transform(img: Image.Image, options: DataOptions, params: TransformParams, channels: int):
    """Resize / crop / flip `img` per `options` and `params`; returns float `(channels, H, W)` in [-1, 1]."""
    img = img.convert("L" if channels == 1 else "RGB")
    new_size = resized_size(options, *img.size)
    if new_size != img.size:
        img = img.resize(new_size, Image.Resampling.BICUBIC)
    if _crops(options):
        x, y = params.crop_pos
        size = options.crop_size
        if img.width < size or img.height < size:
            img = img.resize((max(img.width, size), max(img.height, size)), Image.Resampling.BICUBIC)
        img = img.crop((x, y, x + size, y + size))
    if params.flip:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return pil_to_tensor(img)


def _crops(options: DataOptions) -> bool:
    return options.preprocess in ("resize_and_crop", "crop", "scale_width_and_crop")
