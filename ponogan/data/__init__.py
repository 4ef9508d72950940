"""Datasets (unaligned, aligned, single, list, built-in glyphs), preprocessing and robust image loading.

Public API:
    create_dataset(mode, root, phase="train", **options) / build_dataset(mode, root, phase, DataOptions)
    register_dataset(name, factory, needs_root=True): add a mode of your own
    DataOptions: the typed options (one source of defaults), embeddable in training configs
    load_image(path, mode="RGB", max_pixels=...) -> PIL image; raises ImageLoadError(ValueError)
    image_size(path) -> (w, h) from the header; find_images(root, exclude=()): the one image-folder walker
    pil_to_tensor / tensor_to_pil: PIL <-> (C, H, W) float in [-1, 1]
    GlyphDataset, TRAIN_CHARS / TEST_CHARS: the built-in glyph data; glyph_mask: its ink rule, also the
    structure metrics' (bool (N, 1, H, W))
"""

from ponogan.core.lazy import lazy_exports

_EXPORTS = {
    "BadImageWarning": "folders",
    "CHARSET": "glyphs",
    "DATASETS": "modes",
    "DEFAULT_MAX_PIXELS": "image_io",
    "DataOptions": "options",
    "GlyphDataset": "glyphs",
    "IMG_EXTENSIONS": "image_io",
    "ImageLoadError": "image_io",
    "TEST_CHARS": "glyphs",
    "TRAIN_CHARS": "glyphs",
    "build_dataset": "modes",
    "create_dataset": "modes",
    "find_images": "image_io",
    "glyph_mask": "glyphs",
    "image_size": "image_io",
    "load_image": "image_io",
    "pil_to_tensor": "image_io",
    "register_dataset": "modes",
    "tensor_to_pil": "image_io",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
