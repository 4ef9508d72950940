"""Check a network on the meta device before building it for real.

``check_network("generator", "unet_256", kwargs, side=256)`` builds the preset with ``torch.device("meta")``
(no memory is allocated: parameters and activations have shapes only) and runs one forward of a meta
image ``(batch, in_channels, side, side)``. Whatever would fail while building or running the real
network (an unknown option, a conv kernel larger than its input, a channel mismatch, an overflow)
fails here first, as one ``NetworkCheckError`` line. With ``bounded=True`` (networks built from
files a user was given) it also refuses more than ``settings.MAX_PARAMETERS`` parameters or more than
``settings.MAX_ACTIVATIONS_PER_PIXEL`` layer outputs per input pixel.

The first meta forward of a process costs about a second and 150 MB (torch imports its meta kernels),
which would be most of the time of loading a small run. So a bounded check of an inference network
(``train=False``) first takes ``static_bound``, an upper bound of the count read from the modules alone;
only when that bound is over the limit does the forward run to count exactly. Either way a network is
refused exactly when its counted outputs are over the limit. The forward is what finds a network that
builds but cannot run (a kernel larger than its input); a spec a card rebuilds has options its class
checks when it builds, and the training preflight (``train=True``) always runs it.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ponogan.core.messages import first_line
from ponogan.core.settings import MAX_ACTIVATIONS_PER_PIXEL, MAX_PARAMETERS
from ponogan.models.registry import create_discriminator, create_generator

CHECK_SIDE = 256  # the side of the check's input when the caller knows no image size (the papers' size)
BUILDERS = {"generator": create_generator, "discriminator": create_discriminator}


class NetworkCheckError(ValueError):
    """A network cannot be built or run as configured; the message says which option to change."""


def check_network(
    kind: str,
    name: str,
    kwargs: dict,
    *,
    side: int = CHECK_SIDE,
    batch: int = 1,
    train: bool = False,
    bounded: bool = False,
) -> None:
    """Build ``kind`` (``generator`` / ``discriminator``) preset ``name`` with ``kwargs`` on the meta
    device and run it on a ``(batch, in_channels, side, side)`` meta image, in train mode if ``train``.

    Raises ``NetworkCheckError`` (one line) for anything the real build or forward would fail on,
    and, with ``bounded``, for networks over the parameter or activation limits.
    """
    label = f"{kind} {name!r}"
    try:
        with torch.device("meta"):
            net = BUILDERS[kind](name, **kwargs)
    except (TypeError, ValueError, OverflowError, RuntimeError, RecursionError) as err:
        raise NetworkCheckError(f"cannot build the {label}: {first_line(err)}") from None
    params = sum(p.numel() for p in net.parameters())
    if bounded and params > MAX_PARAMETERS:
        raise NetworkCheckError(
            f"the {label} would have {params / 1e6:,.0f} million parameters, more than ponogan's limit "
            f"of {MAX_PARAMETERS / 1e6:,.0f} million; its options: {_shown(net.spec['kwargs'])}"
        )
    if bounded and not train and static_bound(net, side) <= MAX_ACTIVATIONS_PER_PIXEL:
        return  # under the limit however the forward goes: nothing to run
    channels = net.spec["kwargs"].get("in_channels", 3)
    shape = (batch, channels, side, side)
    try:
        outputs = _forward_outputs(net.train(train), torch.empty(shape, device="meta"))
    except Exception as err:  # noqa: BLE001 - any failure of the forward is the configuration's
        raise NetworkCheckError(
            f"the {label} cannot run on a {shape} input: {first_line(err)}; its options: "
            f"{_shown(net.spec['kwargs'])}"
        ) from None
    per_pixel = outputs / (batch * side * side)
    if bounded and per_pixel > MAX_ACTIVATIONS_PER_PIXEL:
        raise NetworkCheckError(
            f"the {label} would produce {per_pixel:,.0f} values per input pixel in its layers, more than "
            f"ponogan's limit of {MAX_ACTIVATIONS_PER_PIXEL:,}; its options: {_shown(net.spec['kwargs'])}"
        )


def _width(module: nn.Module) -> int | None:
    """The channels (features) a conv, linear or norm layer outputs, None for other modules."""
    for attr in ("out_channels", "out_features", "num_features"):
        value = getattr(module, attr, None)
        if isinstance(value, int):
            return value
    return None


def static_bound(net: nn.Module, side: int = CHECK_SIDE) -> float:
    """An upper bound of the values per input pixel ``_forward_outputs`` counts for a ``side`` input,
    from ``net``'s modules alone (no forward, so no meta kernels).

    Each leaf module runs once per forward (true of every ponogan generator) at most at the resolution
    of the input padded to the network's ``stride`` (or MUNIT's ``style_stride``) plus the widest
    padding of a layer. A conv, linear
    or norm layer outputs its own width there; any other leaf (activation, padding, PONO's output and
    moments, a concatenation's consumer) at most twice the widest layer plus two moment maps.
    """
    leaves = [m for m in net.modules() if not any(m.children())]
    sizes = [getattr(m, a, None) for m in leaves for a in ("out_channels", "out_features", "num_features")]
    sizes += [getattr(m, a, None) for m in leaves for a in ("in_channels", "in_features")]
    widest = max([s for s in sizes if isinstance(s, int)] + [net.spec["kwargs"].get("in_channels", 3)])
    pads = [getattr(m, "padding", 0) for m in leaves]
    pads = [p for pad in pads for p in (pad if isinstance(pad, tuple | list) else (pad,))]
    border = max([p for p in pads if isinstance(p, int)] + [0])
    strides = [getattr(net, name, 1) for name in ("stride", "style_stride")]  # what inputs are padded to
    stride = max([s for s in strides if isinstance(s, int) and s > 0] + [1])
    padded = math.ceil(side / stride) * stride
    total = sum(w if (w := _width(m)) is not None else 2 * widest + 2 for m in leaves)
    return total * ((padded + 2 * border) / side) ** 2


def _forward_outputs(net: nn.Module, x: torch.Tensor) -> int:
    """Run ``net(x)`` (meta tensors) and count the values every leaf module outputs (a measure of the
    activation memory of the real forward)."""
    total = 0

    def count(module: nn.Module, inputs: tuple, output: object) -> None:
        nonlocal total
        for tensor in output if isinstance(output, list | tuple) else (output,):
            if isinstance(tensor, torch.Tensor):
                total += tensor.numel()

    hooks = [m.register_forward_hook(count) for m in net.modules() if not any(m.children())]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for hook in hooks:
            hook.remove()
    return total


def _shown(kwargs: dict) -> str:
    """The options that size a network, ``ngf=64, n_blocks=9, ...``, for an error line."""
    return ", ".join(f"{k}={v}" for k, v in kwargs.items() if isinstance(v, int) and not isinstance(v, bool))
