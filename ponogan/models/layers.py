"""Building blocks shared by the generators and discriminators.

- ``pad_to_multiple`` / ``crop_to``: let any image size through a strided network.
- ``make_activation`` / ``make_padding``: small registries instead of if/elif chains.
- ``ConvNormAct``: pad -> conv -> [PONO] -> norm -> activation; with PONO it also returns the moments.
- ``ResBlock`` (two conv-norm layers and a skip) and ``AdaINResBlock`` (the same with AdaIN, whose
  affine parameters are passed to ``forward``; nothing is stored on the module).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ponogan.core.settings import SHORTCUTS
from ponogan.norm import PONO, AdaIN, DynamicMomentShortcut, MomentShortcut, make_norm

ACTIVATIONS = {
    "relu": nn.ReLU,
    "lrelu": lambda: nn.LeakyReLU(0.2),
    "tanh": nn.Tanh,
    "none": nn.Identity,
}

PADDINGS = {
    "reflect": nn.ReflectionPad2d,
    "replicate": nn.ReplicationPad2d,
    "zero": nn.ZeroPad2d,
}

LAYOUTS = ("ponogan", "official")


def make_activation(name: str) -> nn.Module:
    """``relu``, ``lrelu`` (slope 0.2), ``tanh`` or ``none``. Never in-place."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; valid names: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def make_padding(name: str, amount: int) -> nn.Module:
    """Padding layer ``reflect``, ``replicate`` or ``zero`` of ``amount`` pixels on each side."""
    if name not in PADDINGS:
        raise ValueError(f"unknown padding {name!r}; valid names: {', '.join(PADDINGS)}")
    return PADDINGS[name](amount)


def check_norm_name(norm: str, where: str) -> None:
    """Fail early, with a message, on a norm the plain conv layers cannot use."""
    if isinstance(norm, str) and norm.lower().startswith("adain"):
        raise ValueError(
            f"{where}: norm='adain' needs a style code for its affine parameters; "
            "use MunitGenerator, or pick another norm"
        )
    make_norm(norm, 1)  # raises ValueError listing the valid names for an unknown one


def check_shortcut(shortcut: str | None) -> None:
    if shortcut is not None and shortcut not in SHORTCUTS:
        raise ValueError(f"unknown shortcut {shortcut!r}; valid values: None, {', '.join(SHORTCUTS)}")


def check_layout(layout: str) -> None:
    """``"official"``: the PONO blocks as the official PONO code has them; ``"ponogan"``: ours."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; valid values: {', '.join(LAYOUTS)}")


def make_shortcut(shortcut: str, channels: int) -> nn.Module:
    """``"ms"`` -> MomentShortcut (no parameters), ``"dms"`` -> DynamicMomentShortcut(channels)."""
    check_shortcut(shortcut)
    return MomentShortcut() if shortcut == "ms" else DynamicMomentShortcut(channels)


def conv_bias(norm: str, **norm_kwargs) -> bool:
    """Whether a conv feeding ``norm`` gets a bias: only when the norm has no learned shift of its own.

    This reproduces CycleGAN/pix2pix (``bias=True`` before instance norm without affine, ``False``
    before batch norm), hence their parameter counts, and extends the rule to every other norm.
    """
    return getattr(make_norm(norm, 1, **norm_kwargs), "bias", None) is None


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad ``x (N, C, H, W)`` at the bottom/right so H and W are multiples of ``multiple``.

    Reflect padding where the image is large enough (pad < size), replicate padding otherwise
    (e.g. a 70x70 image through a 256-stride U-Net). Returns the padded tensor and the original
    ``(H, W)`` for :func:`crop_to`.
    """
    if x.dim() != 4:
        raise ValueError(f"expected an image batch (N, C, H, W), got shape {tuple(x.shape)}")
    h, w = x.shape[-2:]
    pad_h, pad_w = -h % multiple, -w % multiple
    if pad_h == 0 and pad_w == 0:
        return x, (h, w)
    mode = "reflect" if pad_h < h and pad_w < w else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode), (h, w)


def crop_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Undo :func:`pad_to_multiple`: keep the top-left ``size = (H, W)``."""
    return x[..., : size[0], : size[1]]


class ConvNormAct(nn.Module):
    """``pad -> conv -> [PONO] -> norm -> act`` on ``(N, C_in, H, W)``.

    ``transposed=True`` swaps the conv for a ``ConvTranspose2d`` (``padding`` is then its own
    argument, plus ``output_padding``) for the CycleGAN/pix2pix upsampling layers.

    With ``pono=True`` PONO sits between the conv and its norm (as in the PONO paper's encoders)
    and ``forward`` returns ``(y, mean, std)`` with moments ``(N, 1, H', W')``; otherwise just ``y``.
    ``pono_unbiased`` divides PONO's variance by C - 1 (the official PONO code); ``norm_kwargs`` go
    to ``make_norm`` (e.g. ``{"affine": True}`` for an instance norm with affine parameters).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        *,
        norm: str = "none",
        activation: str = "relu",
        pad_type: str = "zero",
        bias: bool | None = None,
        pono: bool = False,
        transposed: bool = False,
        output_padding: int = 0,
        norm_kwargs: dict | None = None,
        pono_unbiased: bool = False,
    ):
        super().__init__()
        norm_kwargs = norm_kwargs or {}
        bias = conv_bias(norm, **norm_kwargs) if bias is None else bias
        if transposed:
            self.pad = nn.Identity()
            self.conv = nn.ConvTranspose2d(
                in_channels,
                out_channels,
                kernel_size,
                stride,
                padding,
                output_padding=output_padding,
                bias=bias,
            )
        else:
            self.pad = make_padding(pad_type, padding) if padding else nn.Identity()
            self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, bias=bias)
        self.pono = PONO(unbiased=pono_unbiased) if pono else None
        self.norm = make_norm(norm, out_channels, **norm_kwargs)
        self.act = make_activation(activation)

    def forward(self, x: torch.Tensor):
        y = self.conv(self.pad(x))
        if self.pono is None:
            return self.act(self.norm(y))
        y, mean, std = self.pono(y)
        return self.act(self.norm(y)), mean, std


class ResBlock(nn.Module):
    """``x + (pad-conv3-norm-act-[dropout]-pad-conv3-norm)(x)`` at constant width ``(N, C, H, W)``
    (the CycleGAN and MUNIT residual block)."""

    def __init__(
        self,
        channels: int,
        *,
        norm: str = "instance",
        activation: str = "relu",
        pad_type: str = "reflect",
        dropout: float = 0.0,
        bias: bool | None = None,
        norm_kwargs: dict | None = None,
    ):
        super().__init__()
        opts = dict(norm=norm, pad_type=pad_type, bias=bias, norm_kwargs=norm_kwargs)
        self.conv1 = ConvNormAct(channels, channels, 3, 1, 1, activation=activation, **opts)
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.conv2 = ConvNormAct(channels, channels, 3, 1, 1, activation="none", **opts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.dropout(self.conv1(x)))


class AdaINResBlock(nn.Module):
    """MUNIT's decoder residual block: ``x + (conv3-AdaIN-act-conv3-AdaIN)(x)`` with the AdaIN
    affine parameters passed in: ``forward(x, params)`` with ``params (N, 4 * C)`` laid out as
    ``[bias1, weight1, bias2, weight2]`` (each ``(N, C)``), cut from the style MLP's output.
    """

    def __init__(self, channels: int, *, activation: str = "relu", pad_type: str = "reflect"):
        super().__init__()
        self.channels = channels
        self.pad1 = make_padding(pad_type, 1)
        self.conv1 = nn.Conv2d(channels, channels, 3)
        self.norm1 = AdaIN(channels)
        self.act = make_activation(activation)
        self.pad2 = make_padding(pad_type, 1)
        self.conv2 = nn.Conv2d(channels, channels, 3)
        self.norm2 = AdaIN(channels)

    @property
    def num_adain_params(self) -> int:
        return 4 * self.channels

    def forward(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        b1, w1, b2, w2 = params.split(self.channels, dim=1)
        h = self.act(self.norm1(self.conv1(self.pad1(x)), w1, b1))
        return x + self.norm2(self.conv2(self.pad2(h)), w2, b2)
