"""Image files for evaluation: listing folders, pairing fakes with targets, reading them as tensors.

Folders are listed with the data package's walker (``ponogan.data.find_images``). Evaluation reads
every image as RGB (grayscale glyphs become three equal channels, alpha is dropped, as pytorch-fid
does), so every metric sees the same pixels. Reading goes through ``ponogan.data.load_image``
(decompression-bomb limit, 16-bit and palette handling).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ponogan.data import find_images, load_image, pil_to_tensor

# Largest image evaluated, in pixels (4096 x 4096: 4K frames fit). SSIM and LPIPS hold tens of float
# copies of an image pair, ~1 GB per 8 MP; a larger file is reported as unreadable and skipped, so a
# 1 KB PNG of 9000 x 9000 pixels cannot take the machine's memory.
EVAL_MAX_PIXELS = 4096 * 4096


def list_images(folder: str | Path) -> list[Path]:
    """All image files under ``folder`` (``find_images``: each file once, one extension list), sorted by
    relative path; ``FileNotFoundError`` when the folder does not exist."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist")
    return sorted(Path(p) for p in find_images(folder))


def keyed_images(folder: str | Path) -> dict[str, Path]:
    """``{pair key: file}`` of every image under ``folder``; the key is the relative path without the
    extension (``sub/a.png`` -> ``sub/a``)."""
    folder = Path(folder)
    return {p.relative_to(folder).with_suffix("").as_posix(): p for p in list_images(folder)}


def read_image(path: str | Path) -> torch.Tensor:
    """An image file as a ``(1, 3, H, W)`` float32 tensor in ``[-1, 1]``."""
    return pil_to_tensor(load_image(path, mode="RGB", max_pixels=EVAL_MAX_PIXELS)).unsqueeze(0)


def read_mask(path: str | Path) -> torch.Tensor:
    """A mask image (nonzero gray = glyph) as a ``(1, 1, H, W)`` bool tensor."""
    return pil_to_tensor(load_image(path, mode="L", max_pixels=EVAL_MAX_PIXELS)).unsqueeze(0) > -1.0
