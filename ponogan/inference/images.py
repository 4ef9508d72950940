"""The images of inference: what the pipeline accepts, the sizes it computes on, and how it batches.

`as_pil_images` turns PIL images, paths, arrays and tensors into PIL images; `parse_size`,
`target_size`, `processed_size` and `check_processed_size` say what size an image is computed at
(resized, then padded to the networks' stride) and refuse one over the pixel or aspect limits from
its header alone, before it is decoded. `SizeBatcher` is the one batcher of `TranslationPipeline` and
`ponogan translate`: images of one size go together, up to a number of images and a budget of
processed pixels per batch; `run_batched` runs a function over such batches and returns its results
in input order.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Generic, TypeVar

import numpy as np
import torch
from PIL import Image

from ponogan.core.settings import MAX_ASPECT, MAX_PROCESSED_PIXELS
from ponogan.data.image_io import frame_count, image_info

Item = TypeVar("Item")


def parse_size(size: int | str | Sequence[int] | None) -> int | tuple[int, int] | None:
    """`None`, an int (shorter side), `(w, h)`, or a string `"64"` / `"64x48"` -> int or `(w, h)`."""
    if size is None:
        return None
    if isinstance(size, str):
        parts = size.lower().split("x")
        try:
            values = [int(p) for p in parts]
        except ValueError:
            raise ValueError(f"size must look like 256 or 320x240, got {size!r}") from None
        size = values[0] if len(values) == 1 else tuple(values)
    if isinstance(size, int):
        if size < 1:
            raise ValueError(f"size must be positive, got {size}")
        return size
    size = tuple(int(s) for s in size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"size must be an int or a positive (width, height) pair, got {size}")
    return size


class ImageTooLargeError(ValueError):
    """An image over a processing limit; `option` names it (`max_pixels` or `max_aspect`)."""

    def __init__(self, message: str, option: str) -> None:
        super().__init__(message)
        self.option = option


def target_size(image_size: tuple[int, int], size: int | tuple[int, int] | None) -> tuple[int, int]:
    """`(w, h)` after `resize_image(img, size)` for an image of `image_size`."""
    if size is None:
        return image_size
    if isinstance(size, int):
        w, h = image_size
        scale = size / min(w, h)
        return max(1, round(w * scale)), max(1, round(h * scale))
    return size


def processed_size(
    image_size: tuple[int, int], size: int | tuple[int, int] | None, stride: int
) -> tuple[int, int]:
    """`(w, h)` the networks compute on: resized to `size`, then padded up to a multiple of `stride`."""
    w, h = target_size(image_size, size)
    return -(-w // stride) * stride, -(-h // stride) * stride


def check_processed_size(
    image_size: tuple[int, int],
    size: int | tuple[int, int] | None,
    stride: int,
    max_pixels: int | None = MAX_PROCESSED_PIXELS,
    max_aspect: float | None = MAX_ASPECT,
) -> tuple[int, int]:
    """The processed size of an `image_size` image, or `ImageTooLargeError` when it is over a limit.

    Call it on the header's size (`ponogan.data.image_size`) to refuse an image before decoding it.
    """
    w, h = target_size(image_size, size)
    if max_aspect is not None and max(w, h) > max_aspect * min(w, h):
        raise ImageTooLargeError(
            f"{w}x{h} has an aspect ratio of {max(w, h) / min(w, h):.0f}:1, over max_aspect={max_aspect:g}",
            "max_aspect",
        )
    pw, ph = processed_size(image_size, size, stride)
    if max_pixels is not None and pw * ph > max_pixels:
        raise ImageTooLargeError(
            f"the network would process {pw}x{ph} = {pw * ph:,} pixels (padded to a "
            f"multiple of {stride}), over max_pixels={max_pixels:,}",
            "max_pixels",
        )
    return pw, ph


def resize_image(img: Image.Image, size: int | tuple[int, int] | None) -> Image.Image:
    """Resize to `(w, h)`, or so the shorter side is `size` (aspect kept); `None` keeps the image."""
    size = target_size(img.size, size)
    return img if img.size == size else img.resize(size, Image.Resampling.BICUBIC)


def moment_to_image(moment: np.ndarray) -> Image.Image:
    """A `(h, w)` moment map -> an 8-bit grayscale image, min-max scaled for display."""
    array = np.asarray(moment, dtype=np.float64)
    low, high = float(array.min()), float(array.max())
    scaled = (array - low) / (high - low) if high > low else np.zeros_like(array)
    return Image.fromarray(np.rint(scaled * 255).astype(np.uint8), "L")


def _array_to_pil(array: np.ndarray, where: str) -> Image.Image:
    """``(H, W)``, ``(H, W, 1|3|4)`` uint8 (0-255) or float (0-1) -> PIL."""
    _check_not_empty(array.shape, where)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise ValueError(f"{where}: an image array must be (H, W) or (H, W, 1|3|4), got shape {array.shape}")
    if array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.number):
            raise TypeError(f"{where}: image arrays must be numeric, got {array.dtype}")
        array = np.rint(np.clip(array.astype(np.float64), 0.0, 1.0) * 255).astype(np.uint8)
    return Image.fromarray(array)


def as_pil_images(images) -> tuple[list[Image.Image], bool]:
    """``(PIL images, whether a single image was given)`` from what `TranslationPipeline` accepts:

    - a PIL image, or a path (`str` / `os.PathLike`, loaded with `ponogan.data.load_image`);
    - a numpy array `(H, W)` / `(H, W, C)` (uint8 0-255, or float 0-1), or `(N, H, W, C)` for a batch;
    - a tensor `(C, H, W)` or `(N, C, H, W)`: uint8 0-255, or float in `[0, 1]`, or in `[-1, 1]` (the
      models' own range) when it has negative values;
    - a list or tuple of any of those single images.
    """
    from ponogan.data import load_image

    def one(item, where: str) -> Image.Image:
        if isinstance(item, Image.Image):
            return item
        if isinstance(item, (str, os.PathLike)):
            if image_info(item).frames > 1:  # load_image decodes the first frame only
                _warn_first_frame("image")
            return load_image(item)  # RGB; converted to the model's channels with the others
        if isinstance(item, np.ndarray):
            return _array_to_pil(item, where)
        if isinstance(item, torch.Tensor):
            if item.dim() != 3:
                raise ValueError(f"{where}: an image tensor must be (C, H, W), got shape {tuple(item.shape)}")
            _check_not_empty(tuple(item.shape), where)
            t = item.detach().cpu().permute(1, 2, 0)  # (H, W, C)
            if t.dtype != torch.uint8:
                t = t.float()
                t = (t + 1) / 2 if t.min() < 0 else t
            return _array_to_pil(t.numpy(), where)
        raise TypeError(
            f"{where} is a {type(item).__name__}; give a PIL image, a path, a numpy array or a "
            "tensor (or a list of them)"
        )

    if isinstance(images, np.ndarray) and images.ndim == 4:
        return [one(a, f"image {i}") for i, a in enumerate(images)], False
    if isinstance(images, torch.Tensor) and images.dim() == 4:
        return [one(t, f"image {i}") for i, t in enumerate(images)], False
    if isinstance(images, (list, tuple)):
        return [one(item, f"image {i}") for i, item in enumerate(images)], False
    return [one(images, "the image")], True


def _check_not_empty(shape: tuple[int, ...], where: str) -> None:
    """`ValueError` for an image array or tensor with a zero-length dimension (nothing to translate)."""
    if 0 in shape:
        raise ValueError(f"{where} is empty (shape {tuple(shape)}): an image needs at least 1x1 pixels")


def check_images(images: Sequence[Image.Image], what: str = "image") -> None:
    """`ValueError` for a PIL image of zero width or height; `UserWarning` (once per call) when an
    image holds several frames (an animated GIF/APNG, a multi-page TIFF): only its first is used."""
    for i, img in enumerate(images):
        if 0 in img.size:
            raise ValueError(f"{what} {i} is empty ({img.width}x{img.height}): it needs at least 1x1 pixels")
    if any(frame_count(img) > 1 for img in images):
        _warn_first_frame(what)


def _warn_first_frame(what: str) -> None:
    warnings.warn(
        f"an input {what} holds several frames (animated GIF/APNG/WebP, multi-page TIFF); only its "
        "first frame is translated",
        UserWarning,
        stacklevel=4,
    )


class SizeBatcher(Generic[Item]):
    """Groups items into batches of one image size, as they come: at most `max_items` items and
    `max_pixels` processed pixels (each image padded to a multiple of `stride`) per batch; an image
    over the pixel budget on its own is a batch of one. `max_pixels=None`: no pixel budget.

    `add(size, item)` returns the batch the item completed, or None; `drain()` returns the batches
    still open, in the order of their first item. Items keep their order within a batch.
    """

    def __init__(self, max_items: int, max_pixels: int | None = None, stride: int = 1) -> None:
        if max_items < 1:
            raise ValueError(f"batch_size must be >= 1, got {max_items}")
        if max_pixels is not None and max_pixels < 1:
            raise ValueError(f"max_pixels must be >= 1 (or None for no limit), got {max_pixels}")
        self.max_items = max_items
        self.max_pixels = max_pixels
        self.stride = stride
        self._open: dict[Hashable, list[Item]] = {}

    def capacity(self, size: tuple[int, int]) -> int:
        """How many images of `size = (w, h)` one batch holds."""
        if self.max_pixels is None:
            return self.max_items
        w, h = processed_size(size, None, self.stride)
        return max(1, min(self.max_items, self.max_pixels // (w * h)))

    def add(self, size: tuple[int, int], item: Item) -> list[Item] | None:
        """Put `item`, an image of `size`, in its size's open batch; that batch once it is full."""
        batch = self._open.setdefault(size, [])
        batch.append(item)
        if len(batch) >= self.capacity(size):
            return self._open.pop(size)
        return None

    def drain(self) -> list[list[Item]]:
        """The batches not yet full (each of one size), oldest first; the batcher is empty after."""
        batches = list(self._open.values())
        self._open.clear()
        return batches


def batch_indices(
    sizes: Sequence[tuple[int, int]], max_items: int, max_pixels: int | None = None, stride: int = 1
) -> list[list[int]]:
    """The indices of images of `sizes = [(w, h), ...]` in `SizeBatcher` batches: every index once."""
    batcher: SizeBatcher[int] = SizeBatcher(max_items, max_pixels, stride)
    full = [batch for i, size in enumerate(sizes) if (batch := batcher.add(size, i)) is not None]
    return full + batcher.drain()


def run_batched(
    images: Sequence[Image.Image],
    function: Callable[[list[Image.Image]], Sequence[Any]],
    max_items: int,
    max_pixels: int | None = None,
    stride: int = 1,
) -> list[Any]:
    """`function(batch)` over the `batch_indices` batches of `images`, which returns one result per
    image of its batch; the results in the order of `images`."""
    results: list[Any] = [None] * len(images)
    for indices in batch_indices([img.size for img in images], max_items, max_pixels, stride):
        outputs = function([images[i] for i in indices])
        for i, output in zip(indices, outputs, strict=True):
            results[i] = output
    return results
