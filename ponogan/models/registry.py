"""Model presets by name: ``create_generator(name, **kwargs)`` and ``create_discriminator(name, **kwargs)``.

A preset is a class plus default keyword arguments; caller keywords override them. Every model
built here carries ``model.spec = {"name": preset, "kwargs": every_init_argument}`` (JSON-serialisable,
the class defaults included, as diffusers' ``register_to_config``), which is what checkpoints store to
rebuild it: ``create_generator(spec["name"], **spec["kwargs"])`` gives the same network even after a
default changes. Specs saved before all arguments were recorded hold only the non-default ones;
they rebuild with the defaults of the time, which the code keeps (e.g. ``layout="ponogan"``).
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass, field

from torch import nn

from ponogan.core.settings import NETWORK_LIMITS
from ponogan.models.discriminators import MultiScaleDiscriminator, PatchDiscriminator, PixelDiscriminator
from ponogan.models.drit import DritTranslator
from ponogan.models.drit_discriminators import DritImageDiscriminator
from ponogan.models.munit import MunitGenerator
from ponogan.models.resnet import ResnetGenerator
from ponogan.models.unet import UnetGenerator


@dataclass(frozen=True)
class Preset:
    """A named model: the class and the keyword arguments that make it that preset."""

    cls: type[nn.Module]
    defaults: dict = field(default_factory=dict)


GENERATORS: dict[str, Preset] = {
    "resnet_9blocks": Preset(ResnetGenerator, {"n_blocks": 9}),
    "resnet_6blocks": Preset(ResnetGenerator, {"n_blocks": 6}),
    "unet_256": Preset(UnetGenerator, {"num_downs": 8}),
    "unet_128": Preset(UnetGenerator, {"num_downs": 7}),
    "munit": Preset(MunitGenerator),
    "drit": Preset(DritTranslator),
}

DISCRIMINATORS: dict[str, Preset] = {
    "patchgan": Preset(PatchDiscriminator, {"n_layers": 3}),
    "pixel": Preset(PixelDiscriminator),
    "multiscale": Preset(MultiScaleDiscriminator, {"n_layers": 4, "n_scales": 3}),
    "drit": Preset(DritImageDiscriminator),
}


def _build(kind: str, presets: dict[str, Preset], name: str, kwargs: dict) -> nn.Module:
    if not isinstance(name, str):
        raise TypeError(f"{kind} name must be a string, got {type(name).__name__}")
    key = name.lower().replace("-", "_")
    if key not in presets:
        raise ValueError(f"unknown {kind} {name!r}; valid names: {', '.join(presets)}")
    preset = presets[key]
    signature = inspect.signature(preset.cls)
    valid = [p for p in signature.parameters if p not in ("self", "args", "kwargs")]
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise ValueError(
            f"{kind} {key!r} ({preset.cls.__name__}) got unknown option(s) {unknown}; "
            f"valid options: {', '.join(valid)}"
        )
    bound = signature.bind(**{**preset.defaults, **kwargs})
    bound.apply_defaults()
    every = dict(bound.arguments)
    for option, value in every.items():
        check_option(kind, option, value, signature.parameters[option].default)
    try:
        json.dumps(every)
    except TypeError as err:
        raise ValueError(
            f"{kind} options must be JSON-serialisable (str, int, float, bool, None, lists, dicts): {err}"
        ) from err
    model = preset.cls(**every)
    model.spec = {"name": key, "kwargs": every}
    return model


def check_option(kind: str, option: str, value: object, default: object) -> None:
    """Refuse, in one line, a count that is not an integer (``ngf: "12"``) or is outside
    ``settings.NETWORK_LIMITS``, and a flag or number of the wrong type for its default
    (``use_dropout: "yes"``), before the class is built (``num_downs: 100000`` would first build
    100000 levels). Names (``norm``, ``layout``...) are checked by the classes themselves."""
    limits = NETWORK_LIMITS.get(option)
    if limits is not None:
        low, high = limits
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"{kind} option {option} must be an integer from {low} to {high}, got {value!r}")
        return
    if isinstance(default, bool) and not isinstance(value, bool):
        raise ValueError(f"{kind} option {option} must be true or false, got {value!r}")
    number = isinstance(default, int | float) and not isinstance(default, bool)
    if number and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise ValueError(f"{kind} option {option} must be a number, got {value!r}")


def create_generator(name: str, **kwargs) -> nn.Module:
    """Build a generator preset: ``resnet_9blocks``, ``resnet_6blocks``, ``unet_256``, ``unet_128``,
    ``munit``. Keywords override the preset (``ngf``, ``norm``, ``shortcut``, ``in_channels``, ...)."""
    return _build("generator", GENERATORS, name, kwargs)


def create_discriminator(name: str, **kwargs) -> nn.Module:
    """Build a discriminator preset: ``patchgan`` (70x70), ``pixel``, ``multiscale`` (MUNIT).
    Keywords override the preset (``in_channels``, ``ndf``, ``n_layers``, ``norm``,
    ``spectral_norm``, ...)."""
    return _build("discriminator", DISCRIMINATORS, name, kwargs)
