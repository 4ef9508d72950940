"""Check a network on the meta device before building it for real.

``check_network("generator", "unet_256", kwargs, side=256)`` builds the preset with ``torch.device("meta")``
(no memory is allocated: parameters and activations have shapes only) and runs one forward of a meta
image ``(batch, in_channels, side, side)``. Whatever would fail while building or running the real
network (an unknown option, a conv kernel larger than its input, a channel mismatch, an overflow)
fails here first, as one ``NetworkCheckError`` line. With ``bounded=True`` (networks built from
files a user was given) it also refuses more than ``settings.MAX_PARAMETERS`` parameters or more than
``settings.MAX_ACTIVATIONS_PER_PIXEL`` layer outputs per input pixel.
"""

from __future__ import annotations

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
