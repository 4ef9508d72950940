"""Weight initialisation as the original papers' code does it: ``init_weights(net, init_type, gain)``.

| ``init_type`` | conv / linear weights                 | used by                                  |
|---------------|---------------------------------------|------------------------------------------|
| ``normal``    | N(0, gain) (gain 0.02)                | CycleGAN, pix2pix, every MUNIT discriminator |
| ``xavier``    | xavier-normal with ``gain``           | option of the CycleGAN/pix2pix code      |
| ``kaiming``   | kaiming-normal, fan_in, a=0           | MUNIT generators (``init: kaiming``)     |
| ``orthogonal``| orthogonal with ``gain``              | option of the CycleGAN/pix2pix code      |
| ``default``   | PyTorch's own (kaiming-uniform)       | runs made before this module existed     |

Every conv/linear bias is set to 0. Norm layers get what their original code gives them:
BatchNorm weight N(1, gain), bias 0 (CycleGAN/pix2pix ``init_weights``); an affine ``LayerNormCHW``
weight U(0, 1), bias 0 (MUNIT's ``LayerNorm`` constructor). Modules that need an init of their own
after this (DMS zero-initialises its last conv so it starts as MS) define ``post_init_()``.

Apply it once to freshly built training nets, never to loaded weights.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn.utils import parametrize

from ponogan.norm import LayerNormCHW


def _weight(module: nn.Module) -> torch.Tensor:
    """The trainable weight tensor, also under spectral norm (``parametrizations.weight.original``)."""
    if parametrize.is_parametrized(module, "weight"):
        return module.parametrizations.weight.original
    return module.weight


INIT_TYPES: dict[str, Callable[[torch.Tensor, float], object] | None] = {
    "normal": lambda w, gain: nn.init.normal_(w, 0.0, gain),
    "xavier": lambda w, gain: nn.init.xavier_normal_(w, gain=gain),
    "kaiming": lambda w, gain: nn.init.kaiming_normal_(w, a=0, mode="fan_in"),
    "orthogonal": lambda w, gain: nn.init.orthogonal_(w, gain=gain),
    "default": None,
}

_CONV_LINEAR = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
    nn.Linear,
)
_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def check_init_type(init_type: str) -> None:
    if init_type not in INIT_TYPES:
        raise ValueError(f"unknown init_type {init_type!r}; valid values: {', '.join(INIT_TYPES)}")


@torch.no_grad()
def init_weights(net: nn.Module, init_type: str = "normal", gain: float = 0.02) -> nn.Module:
    """Initialise every conv/linear/norm of ``net`` in place (see the module docstring); returns ``net``.

    ``gain`` is the std of ``normal`` and the gain of ``xavier``/``orthogonal`` (kaiming ignores it,
    as the originals do). ``init_type="default"`` leaves PyTorch's initialisation untouched.
    Draws from torch's global RNG, so a seeded run initialises identically.
    """
    check_init_type(init_type)
    if not gain > 0:
        raise ValueError(f"init gain must be > 0, got {gain}")
    fill = INIT_TYPES[init_type]
    if fill is None:
        return net
    for module in net.modules():
        if isinstance(module, _CONV_LINEAR):
            fill(_weight(module), gain)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, _BATCH_NORMS) and module.affine:
            nn.init.normal_(module.weight, 1.0, gain)
            nn.init.zeros_(module.bias)
        elif isinstance(module, LayerNormCHW) and module.weight is not None:
            nn.init.uniform_(module.weight, 0.0, 1.0)
            nn.init.zeros_(module.bias)
    for module in net.modules():
        post_init = getattr(module, "post_init_", None)
        if callable(post_init):
            post_init()
    return net
