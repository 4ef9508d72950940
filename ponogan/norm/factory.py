"""``make_norm(name, num_channels, **kwargs)``: every normalizer by name, from one registry."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from ponogan.norm.adain import AdaIN
from ponogan.norm.pono import PONO
from ponogan.norm.standard import BatchNorm2d, GroupNorm, InstanceNorm2d, LayerNormCHW
from ponogan.norm.switch import SwitchNorm2d


def _pono(num_channels: int, **kwargs) -> PONO:
    # NOTE: in the registry PONO is a drop-in normalizer returning only y, so any name can fill any
    # norm slot; build PONO() directly (or pass return_moments=True) to get (y, mean, std).
    kwargs.setdefault("return_moments", False)
    return PONO(num_channels=num_channels, **kwargs)


NORM_REGISTRY: dict[str, Callable[..., nn.Module]] = {
    "batch": BatchNorm2d,
    "instance": InstanceNorm2d,
    "layer": LayerNormCHW,
    "group": GroupNorm,
    "pono": _pono,
    "switch": SwitchNorm2d,
    "adain": AdaIN,  # forward(x, weight, bias): only for slots that pass a style's affine
    "none": nn.Identity,  # accepts and ignores num_channels
}


def make_norm(name: str, num_channels: int, **kwargs) -> nn.Module:
    """Build the normalizer called ``name`` for ``(N, num_channels, H, W)`` inputs.

    Names (case-, underscore- and dash-insensitive, optionally ending in ``norm``): batch, instance,
    layer, group, pono, switch, adain, none. Keyword arguments go to the class, e.g.
    ``make_norm("group", 64, num_groups=8)``. Every one but ``adain`` is ``forward(x) -> y`` of the
    same shape and fills any norm slot; AdaIN's affine comes from a style code at call time
    (``forward(x, weight, bias)`` with ``(N, C)`` parameters, MUNIT's decoder), so the generators'
    ``norm=`` refuses it.
    """
    if not isinstance(name, str):
        raise TypeError(f"norm name must be a string, got {type(name).__name__}")
    key = name.lower().replace("_", "").replace("-", "")
    if key not in NORM_REGISTRY and key.endswith("norm"):  # "Instance_Norm" -> "instance"
        key = key[:-4]
    if key not in NORM_REGISTRY:
        raise ValueError(f"unknown norm {name!r}; valid names: {', '.join(NORM_REGISTRY)}")
    return NORM_REGISTRY[key](num_channels, **kwargs)
