"""Robust image loading, the image-file walker, and PIL <-> tensor conversion at the data edge.

`load_image` opens any file Pillow reads and returns an 8-bit `RGB` or `L` image: EXIF orientation
applied, transparency composited on white, 16-bit and float data scaled to 8 bits, CMYK/palette converted.
Every failure a user can hit (missing, empty, permission denied, not an image, truncated, too many
pixels, out of memory) raises `ImageLoadError` naming the file and the reason. `image_size` reads only
the header, so limits can be checked before a single pixel is decoded.

`find_images` is the one walker of image folders (datasets, metrics, `ponogan translate`), with the one
extension list `IMG_EXTENSIONS`.
"""

from __future__ import annotations

import os
import stat
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ponogan.core.settings import DEFAULT_MAX_PIXELS

if TYPE_CHECKING:
    import torch

IMG_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".pbm", ".pgm", ".png", ".ppm", ".tif", ".tiff", ".webp")
MODES = ("RGB", "L")
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")


class ImageLoadError(ValueError):
    """An image file could not be used; `path` and `reason` say which and why."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot load image {self.path}: {reason}")


def is_image_file(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(IMG_EXTENSIONS)


def is_within(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    """Whether `path` is `folder` or lies under it, comparing real paths (links resolved)."""
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def find_images(root: str | os.PathLike, exclude: Iterable[str | os.PathLike] = ()) -> list[str]:
    """Every image file under `root` once, in a stable order: a folder's files by name, then its sub-folders.

    Links are followed, but each folder and file is visited once by its real path, so a link loop or
    two links to one folder cannot repeat files (or recurse without end). Folders in `exclude` (a
    command's own output folder) and everything under them are never entered.
    """
    excluded = [os.path.realpath(folder) for folder in exclude]
    seen_dirs: set[str] = set()
    seen_files: set[str] = set()
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real_dir = os.path.realpath(dirpath)
        if real_dir in seen_dirs or any(is_within(real_dir, folder) for folder in excluded):
            dirnames.clear()
            continue
        seen_dirs.add(real_dir)
        dirnames.sort()
        for name in sorted(filter(is_image_file, filenames)):
            path = os.path.join(dirpath, name)
            real = os.path.realpath(path) if os.path.islink(path) else os.path.join(real_dir, name)
            if real not in seen_files:
                seen_files.add(real)
                found.append(path)
    return found


@contextmanager
def _open_image(path: Path, max_pixels: int | None) -> Iterator[Image.Image]:
    """The lazily opened image (header read, no pixels decoded); failures become `ImageLoadError`.

    Errors raised in the `with` body (decoding) are translated too, so callers get one exception type.
    """
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ImageLoadError(path, "no such file") from None
    except PermissionError:
        raise ImageLoadError(path, "permission denied (check its folder's permissions)") from None
    if not stat.S_ISREG(info.st_mode):
        raise ImageLoadError(path, "not a file")
    if info.st_size == 0:
        raise ImageLoadError(path, "the file is empty (0 bytes)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with open(path, "rb") as handle, Image.open(handle) as img:
                width, height = img.size
                if max_pixels is not None and width * height > max_pixels:
                    raise ImageLoadError(
                        path,
                        f"{width}x{height} = {width * height} pixels exceeds max_pixels={max_pixels} "
                        "(possible decompression bomb; raise max_pixels if the image is genuine)",
                    )
                yield img
        except ImageLoadError:
            raise
        except PermissionError:
            raise ImageLoadError(path, "permission denied (check the file's permissions)") from None
        except UnidentifiedImageError:
            raise ImageLoadError(path, "not an image Pillow can read (wrong extension or corrupt)") from None
        except Image.DecompressionBombError as err:
            raise ImageLoadError(path, f"decompression bomb: {err}") from None
        except MemoryError:
            raise ImageLoadError(path, "not enough memory to decode it") from None
        except (OSError, SyntaxError, ValueError, EOFError) as err:
            raise ImageLoadError(path, f"corrupt or truncated image data ({err})") from None


class ImageInfo(NamedTuple):
    """What a file's header says: `size` `(width, height)` (before EXIF rotation) and `frames`, the
    number of frames or pages (an animated GIF/APNG/WebP, a multi-page TIFF; 1 for a still image).
    `load_image` decodes the first frame only."""

    size: tuple[int, int]
    frames: int


def image_info(path: str | os.PathLike, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> ImageInfo:
    """Size and frame count from the file header, without decoding pixels.

    Raises `ImageLoadError` like `load_image` for files that cannot be opened or exceed `max_pixels`.
    """
    with _open_image(Path(path), max_pixels) as img:
        return ImageInfo(img.size, frame_count(img))


def frame_count(img: Image.Image) -> int:
    """How many frames (or pages) a PIL image holds: 1 for a still image or one made in memory."""
    return max(1, int(getattr(img, "n_frames", 1) or 1))


def image_size(path: str | os.PathLike, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """`(width, height)` from the file header, without decoding pixels (before EXIF rotation).

    Raises `ImageLoadError` like `load_image` for files that cannot be opened or exceed `max_pixels`.
    """
    return image_info(path, max_pixels).size


def load_image(path: str | os.PathLike, mode: str = "RGB", max_pixels: int | None = DEFAULT_MAX_PIXELS):
    """Open `path` as an 8-bit PIL image in `mode` (`RGB` or `L`).

    Raises `ImageLoadError` for a missing, empty or unreadable file, data Pillow cannot identify, a
    truncated or corrupt file, more than `max_pixels` pixels (checked from the header, before
    decoding), or too little memory to decode it.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    with _open_image(Path(path), max_pixels) as img:
        img.load()
        img = ImageOps.exif_transpose(img)
    return to_mode(img, mode)


def to_mode(img: Image.Image, mode: str = "RGB") -> Image.Image:
    """Convert any Pillow image to 8-bit `RGB` or `L`.

    Transparency (RGBA, LA, palette with a transparent index) is composited on white; 16-bit data
    (`I;16*`, and `I` as Pillow opens 16-bit PNGs) is divided by 257 so 65535 -> 255; float `F` data in
    [0, 1] is scaled by 255, otherwise clipped to [0, 255]; CMYK/YCbCr/LAB use Pillow's conversion.
    """
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba).convert("RGB")
    elif img.mode in _SIXTEEN_BIT:
        data = np.asarray(img, dtype=np.float64) / 257.0
        img = Image.fromarray(np.clip(np.rint(data), 0, 255).astype(np.uint8), "L")
    elif img.mode == "F":
        data = np.asarray(img, dtype=np.float64)
        if data.size and np.nanmax(data) <= 1.0:
            data = data * 255.0
        img = Image.fromarray(np.clip(np.rint(np.nan_to_num(data)), 0, 255).astype(np.uint8), "L")
    elif img.mode == "1":
        img = img.convert("L")
    return img if img.mode == mode else img.convert(mode)


def pil_to_tensor(img: Image.Image, mode: str | None = None) -> torch.Tensor:
    """PIL image -> float32 `(C, H, W)` in [-1, 1] (C = 3 for RGB, 1 for L); `mode` converts first."""
    import torch  # here, not at the top: the image helpers serve commands that never need torch

    img = to_mode(img, mode or ("L" if img.mode in ("L", "1", "F", *_SIXTEEN_BIT) else "RGB"))
    array = np.asarray(img, dtype=np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    # NOTE: arithmetic in NumPy: small torch ops in loader workers pay intra-op threading overhead.
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1), dtype=np.float32) / 127.5 - 1.0)


def tensor_to_pil(tensor: torch.Tensor) -> Image.Image:
    """`(C, H, W)` or `(1, C, H, W)` tensor in [-1, 1] (C = 1 or 3, any device/dtype) -> PIL `L`/`RGB`."""
    import torch

    if tensor.dim() == 4:
        if tensor.shape[0] != 1:
            raise ValueError(f"tensor_to_pil takes one image; got a batch of {tensor.shape[0]}")
        tensor = tensor[0]
    if tensor.dim() != 3 or tensor.shape[0] not in (1, 3):
        raise ValueError(f"expected a (C, H, W) tensor with C = 1 or 3, got shape {tuple(tensor.shape)}")
    data = ((tensor.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    array = data.permute(1, 2, 0).numpy()
    return Image.fromarray(array[:, :, 0], "L") if array.shape[2] == 1 else Image.fromarray(array, "RGB")
