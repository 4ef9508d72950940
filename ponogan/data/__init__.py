"""Datasets (unaligned, aligned, single, list, built-in glyphs), preprocessing and robust image loading.

Public API:
    create_dataset(mode, root, phase="train", **options) / build_dataset(mode, root, phase, DataOptions)
    DataOptions: the typed options (one source of defaults), embeddable in training configs
    load_image(path, mode="RGB", max_pixels=...) -> PIL image; raises ImageLoadError(ValueError)
    image_size(path) -> (w, h) from the header; find_images(root, exclude=()): the one image-folder walker
    pil_to_tensor / tensor_to_pil: PIL <-> (C, H, W) float in [-1, 1]
    GlyphDataset, glyph_mask, TRAIN_CHARS / TEST_CHARS: the built-in glyph data
"""

from ponogan.data.base import BadImageWarning
from ponogan.data.glyphs import CHARSET, TEST_CHARS, TRAIN_CHARS, GlyphDataset, glyph_mask
from ponogan.data.image_io import (
    DEFAULT_MAX_PIXELS,
    IMG_EXTENSIONS,
    ImageLoadError,
    find_images,
    image_size,
    load_image,
    pil_to_tensor,
    tensor_to_pil,
)
from ponogan.data.options import DataOptions
from ponogan.data.registry import DATASETS, build_dataset, create_dataset, register_dataset

__all__ = [
    "BadImageWarning",
    "CHARSET",
    "DATASETS",
    "DEFAULT_MAX_PIXELS",
    "DataOptions",
    "GlyphDataset",
    "IMG_EXTENSIONS",
    "ImageLoadError",
    "TEST_CHARS",
    "TRAIN_CHARS",
    "build_dataset",
    "create_dataset",
    "find_images",
    "glyph_mask",
    "image_size",
    "load_image",
    "pil_to_tensor",
    "register_dataset",
    "tensor_to_pil",
]
