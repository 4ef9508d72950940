"""``make_norm(name, num_channels, **kwargs)``: every normalizer by name, from one registry."""

from __future__ import annotations

from functools import partial

from torch import nn

from .adain import AdaIN
from .pono import PONO
from .standard import BatchNorm2d, GroupNorm, Identity, InstanceNorm2d, LayerNorm2d
from .switch import SwitchNorm2d


def _pono(num_channels: int, **kwargs) -> PONO:
    # NOTE: in the registry PONO is a drop-in normalizer returning only y, so any name can fill any
    # norm slot; build PONO() directly (or pass return_moments=True) to get (y, mean, std).
    kwargs.setdefault("return_moments", False)
    return PONO(num_channels=num_channels, **kwargs)


NORM_REGISTRY: dict[str, type[nn.Module] | partial] = {
    "batch": BatchNorm2d,
    "instance": InstanceNorm2d,
    "layer": LayerNorm2d,
    "group": GroupNorm,
    "pono": _pono,
    "switch": SwitchNorm2d,
    "adain": AdaIN,
    "none": Identity,
}


def normalize_name(name: str) -> str:
    """``"Instance_Norm"`` -> ``"instancenorm"``; the registry matches with or without a ``norm`` suffix."""
    key = name.lower().replace("_", "").replace("-", "")
    if key not in NORM_REGISTRY and key.endswith("norm") and key[:-4] in NORM_REGISTRY:
        key = key[:-4]
    return key


def make_norm(name: str, num_channels: int, **kwargs) -> nn.Module:
    """Build the normalizer called ``name`` for ``num_channels`` channels.

    Names (case- and underscore-insensitive): batch, instance, layer, group, pono, switch, adain,
    none. Keyword arguments go to the class, e.g. ``make_norm("group", 64, num_groups=8)``.
    """
    if not isinstance(name, str):
        raise TypeError(f"norm name must be a string, got {type(name).__name__}")
    key = normalize_name(name)
    if key not in NORM_REGISTRY:
        raise ValueError(f"unknown norm {name!r}; valid names: {', '.join(NORM_REGISTRY)}")
    return NORM_REGISTRY[key](num_channels, **kwargs)
