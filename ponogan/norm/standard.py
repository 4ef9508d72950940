"""The classic normalizers, each taking ``num_channels`` first so any can replace any other.

| class          | statistics over, for x (N, C, H, W)          | paper                          |
|----------------|----------------------------------------------|--------------------------------|
| BatchNorm2d    | N, H, W per channel (running stats for eval) | Ioffe & Szegedy, 2015          |
| InstanceNorm2d | H, W per sample and channel                  | Ulyanov et al., 2016           |
| LayerNormCHW   | C, H, W per sample; per-channel affine       | Ba et al., 2016 (MUNIT's form) |
| GroupNorm      | H, W and the channels of a group, per sample | Wu & He, 2018                  |
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ponogan.norm.checks import check_nchw


class BatchNorm2d(nn.BatchNorm2d):
    """Batch normalization: statistics over ``N, H, W`` per channel; running averages at eval.
    ``nn.BatchNorm2d`` with an input check naming the layer."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.num_features, "BatchNorm2d")
        return super().forward(x)


class InstanceNorm2d(nn.InstanceNorm2d):
    """Instance normalization: statistics over ``H, W`` per sample and channel. ``nn.InstanceNorm2d``
    (whose defaults, ``affine=False`` and no running stats, are CycleGAN/pix2pix's, which the
    baseline parameter counts assume) with an input check naming the layer."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.num_features, "InstanceNorm2d")
        return super().forward(x)


class LayerNormCHW(nn.Module):
    """Layer normalization in its CNN form: statistics over ``C, H, W`` per sample of
    ``x (N, C, H, W)``, then a per-channel affine ``weight, bias (C,)`` (as in MUNIT's decoder).
    The axes are in the name because timm's ``LayerNorm2d`` normalises over C alone at each
    position (which is what PONO does). The default is ``F.group_norm(x, 1, weight, bias, eps)``:
    one group of all channels is exactly this layer norm, ``(x - mean) / sqrt(var + eps)``.

    ``munit_std=True`` uses MUNIT's own formula, ``(x - mean) / (std + eps)`` with the unbiased std
    (the official PONO-MUNIT decoder's LayerNorm).
    """

    def __init__(self, num_channels: int, eps: float = 1e-5, affine: bool = True, *, munit_std: bool = False):
        super().__init__()
        self.num_channels = num_channels
        self.eps = eps
        self.munit_std = munit_std
        self.weight = nn.Parameter(torch.ones(num_channels)) if affine else None
        self.bias = nn.Parameter(torch.zeros(num_channels)) if affine else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.num_channels, "LayerNormCHW")
        if not self.munit_std:
            return F.group_norm(x, 1, self.weight, self.bias, self.eps)
        std, mean = torch.std_mean(x.flatten(1), dim=1, correction=1)
        y = (x - mean[:, None, None, None]) / (std[:, None, None, None] + self.eps)
        if self.weight is not None:
            y = y * self.weight[:, None, None] + self.bias[:, None, None]
        return y

    def extra_repr(self) -> str:
        return f"{self.num_channels}, eps={self.eps}, affine={self.weight is not None}" + (
            ", munit_std=True" if self.munit_std else ""
        )


class GroupNorm(nn.GroupNorm):
    """Group normalization: statistics over ``H, W`` and the channels of each group, per sample.

    ``num_groups`` (default 32, as in the GN paper) is clamped to ``num_channels`` and then lowered
    to the largest divisor of ``num_channels``, so every layer width works.
    """

    def __init__(self, num_channels: int, num_groups: int = 32, eps: float = 1e-5, affine: bool = True):
        groups = max(1, min(num_groups, num_channels))
        while num_channels % groups:
            groups -= 1
        super().__init__(groups, num_channels, eps=eps, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.num_channels, "GroupNorm")
        return super().forward(x)
