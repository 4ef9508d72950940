"""The normalizer family: every member built by name with ``make_norm(name, num_channels)``.

Where things live: ``pono.py`` (PONO), ``shortcut.py`` (MS, DMS), ``switch.py`` (Switchable Norm),
``adain.py`` (AdaIN, for MUNIT's style code), ``standard.py`` (batch, instance, layer, group),
``factory.py`` (registry), ``checks.py`` (input checks with messages naming the layer). See docs/norm.md.
"""

from ponogan.norm.adain import AdaIN
from ponogan.norm.factory import NORM_REGISTRY, make_norm
from ponogan.norm.pono import PONO, pono, pono_reference
from ponogan.norm.shortcut import (
    DynamicMomentShortcut,
    Moments,
    MomentShortcut,
    OfficialDynamicMomentShortcut,
)
from ponogan.norm.standard import BatchNorm2d, GroupNorm, InstanceNorm2d, LayerNormCHW
from ponogan.norm.switch import SwitchNorm2d, accumulate_batch_average

__all__ = [
    "NORM_REGISTRY",
    "PONO",
    "AdaIN",
    "BatchNorm2d",
    "DynamicMomentShortcut",
    "GroupNorm",
    "InstanceNorm2d",
    "LayerNormCHW",
    "MomentShortcut",
    "Moments",
    "OfficialDynamicMomentShortcut",
    "SwitchNorm2d",
    "accumulate_batch_average",
    "make_norm",
    "pono",
    "pono_reference",
]
