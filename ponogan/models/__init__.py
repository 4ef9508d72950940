"""Generators, discriminators, the preset registry and save/load.

``create_generator(name, **kw)`` / ``create_discriminator(name, **kw)`` build presets (see
``registry.py``); ``save_pretrained`` / ``load_pretrained`` (``hub.py``) store them for inference.
"""

from ponogan.core.lazy import lazy_exports

_EXPORTS = {
    "DISCRIMINATORS": "registry",
    "GENERATORS": "registry",
    "INIT_TYPES": "init",
    "MultiScaleDiscriminator": "discriminators",
    "MunitGenerator": "munit",
    "PatchDiscriminator": "discriminators",
    "PixelDiscriminator": "discriminators",
    "ResnetGenerator": "resnet",
    "UnetGenerator": "unet",
    "create_discriminator": "registry",
    "create_generator": "registry",
    "init_weights": "init",
    "load_pretrained": "hub",
    "save_pretrained": "hub",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
