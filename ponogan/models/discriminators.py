"""Discriminators: PatchGAN (pix2pix/CycleGAN), per-pixel, and MUNIT's multi-scale one.

All take ``(N, C, H, W)`` images and return raw scores (logits): a ``(N, 1, h, w)`` map, or a list
of maps, one per scale, for :class:`MultiScaleDiscriminator`. ``norm=`` is any ``make_norm`` name;
``spectral_norm=True`` wraps every conv's weight in spectral normalization (Miyato et al., 2018).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from ponogan.models.antialias import BlurDownsample
from ponogan.models.layers import ConvNormAct, check_norm_name, conv_bias


def apply_spectral_norm(module: nn.Module) -> nn.Module:
    """Spectral-normalize the weight of every ``Conv2d``/``Linear`` inside ``module`` (in place on the
    module structure, before any training)."""
    for child in list(module.modules()):
        if isinstance(child, nn.Conv2d | nn.Linear):
            _spectral_norm(child)
    return module


class PatchDiscriminator(nn.Module):
    """PatchGAN: ``(N, C, H, W) -> (N, 1, H/8 - 2, W/8 - 2)`` scores for ``n_layers=3`` (each score
    sees a 70x70 patch). ``n_layers`` stride-2 conv4 layers (width ``ndf * min(2**k, 8)``), one
    stride-1 conv4, then a conv4 to 1 channel; leaky ReLU 0.2; no norm on the first layer.
    With batch norm, ``in_channels=3``, ``ndf=64``: 2,765,633 parameters, as in pix2pix; with
    instance norm 2,764,737, as CycleGAN and CUT.

    ``antialias=True`` is CUT's discriminator: each stride-2 conv becomes a stride-1 conv (same
    weights shape, so the same parameter count) followed, after its norm and leaky ReLU, by a
    :class:`BlurDownsample`; the score map has the same size as without (``H/8 - 2`` at 256 px).
    """

    def __init__(
        self,
        in_channels: int = 3,
        ndf: int = 64,
        n_layers: int = 3,
        norm: str = "batch",
        *,
        antialias: bool = False,
        spectral_norm: bool = False,
    ):
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"PatchDiscriminator needs n_layers >= 1, got {n_layers}")
        check_norm_name(norm, "PatchDiscriminator")
        bias = conv_bias(norm)
        layers: list[nn.Module] = []
        width = in_channels
        for k in range(n_layers + 1):
            out = ndf * min(2**k, 8)
            downsample = k < n_layers
            stride = 2 if downsample and not antialias else 1
            first = k == 0  # no norm on the first layer
            layers.append(
                ConvNormAct(
                    width,
                    out,
                    4,
                    stride,
                    1,
                    norm="none" if first else norm,
                    activation="lrelu",
                    bias=True if first else bias,
                )
            )
            if downsample and antialias:
                layers.append(BlurDownsample(out))
            width = out
        layers.append(ConvNormAct(width, 1, 4, 1, 1, activation="none", bias=True))
        self.net = nn.Sequential(*layers)
        if spectral_norm:
            apply_spectral_norm(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class PixelDiscriminator(nn.Module):
    """1x1 PatchGAN (pix2pix's ``pixel``): ``(N, C, H, W) -> (N, 1, H, W)``, one score per pixel."""

    def __init__(
        self, in_channels: int = 3, ndf: int = 64, norm: str = "batch", *, spectral_norm: bool = False
    ):
        super().__init__()
        check_norm_name(norm, "PixelDiscriminator")
        bias = conv_bias(norm)
        self.net = nn.Sequential(
            ConvNormAct(in_channels, ndf, 1, activation="lrelu", bias=True),
            ConvNormAct(ndf, 2 * ndf, 1, norm=norm, activation="lrelu", bias=bias),
            ConvNormAct(2 * ndf, 1, 1, activation="none", bias=bias),
        )
        if spectral_norm:
            apply_spectral_norm(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class _ScaleDiscriminator(nn.Sequential):
    """One MUNIT scale: ``n_layers`` reflect-padded conv4/2 (first without norm) + leaky ReLU,
    doubling the width, then a 1x1 conv to 1 channel: ``(N, C, H, W) -> (N, 1, H/2^n, W/2^n)``."""

    def __init__(self, in_channels: int, ndf: int, n_layers: int, norm: str, pad_type: str):
        layers = [ConvNormAct(in_channels, ndf, 4, 2, 1, activation="lrelu", pad_type=pad_type, bias=True)]
        width = ndf
        for _ in range(n_layers - 1):
            layers.append(
                ConvNormAct(
                    width, 2 * width, 4, 2, 1, norm=norm, activation="lrelu", pad_type=pad_type, bias=True
                )
            )
            width *= 2
        layers.append(nn.Conv2d(width, 1, 1))
        super().__init__(*layers)


class MultiScaleDiscriminator(nn.Module):
    """MUNIT's multi-scale discriminator: ``n_scales`` independent discriminators, the input
    average-pooled by 2 (3x3, stride 2, padding excluded from the average) between scales.

    ``forward(x (N, C, H, W)) -> [scores (N, 1, H/16, W/16), scores at H/32, ...]`` (4 layers).
    """

    def __init__(
        self,
        in_channels: int = 3,
        ndf: int = 64,
        n_layers: int = 4,
        n_scales: int = 3,
        norm: str = "none",
        *,
        pad_type: str = "reflect",
        spectral_norm: bool = False,
    ):
        super().__init__()
        if n_scales < 1 or n_layers < 1:
            raise ValueError(
                f"MultiScaleDiscriminator needs n_scales, n_layers >= 1, got {n_scales}, {n_layers}"
            )
        check_norm_name(norm, "MultiScaleDiscriminator")
        self.scales = nn.ModuleList(
            _ScaleDiscriminator(in_channels, ndf, n_layers, norm, pad_type) for _ in range(n_scales)
        )
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
        self.min_size = 2**n_layers  # reflect padding needs >= 2 pixels before the last conv
        if spectral_norm:
            apply_spectral_norm(self)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for i, scale in enumerate(self.scales):
            if i:
                x = self.downsample(x)
            if min(x.shape[-2:]) < self.min_size:
                raise ValueError(
                    f"image of size {tuple(x.shape[-2:])} at scale {i} is too small for "
                    f"{len(scale) - 1} layers (needs >= {self.min_size} px): use fewer "
                    "n_scales or n_layers, or a larger image"
                )
            outputs.append(scale(x))
        return outputs
