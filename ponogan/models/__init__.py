"""Generators, discriminators, the preset registry and save/load.

``create_generator(name, **kw)`` / ``create_discriminator(name, **kw)`` build presets (see
``registry.py``); ``save_pretrained`` / ``load_pretrained`` (``hub.py``) store them for inference.
"""

from .discriminators import MultiScaleDiscriminator, PatchDiscriminator, PixelDiscriminator
from .hub import load_pretrained, save_pretrained
from .init import INIT_TYPES, init_weights
from .munit import MunitGenerator
from .registry import DISCRIMINATORS, GENERATORS, create_discriminator, create_generator
from .resnet import ResnetGenerator
from .unet import UnetGenerator

__all__ = [
    "DISCRIMINATORS",
    "GENERATORS",
    "INIT_TYPES",
    "MultiScaleDiscriminator",
    "MunitGenerator",
    "PatchDiscriminator",
    "PixelDiscriminator",
    "ResnetGenerator",
    "UnetGenerator",
    "create_discriminator",
    "create_generator",
    "init_weights",
    "load_pretrained",
    "save_pretrained",
]
