"""Adaptive Instance Normalization (Huang & Belongie, 2017), as used by MUNIT's decoder."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ponogan.norm.checks import check_nchw


class AdaIN(nn.Module):
    """Instance-normalise over ``H, W`` per sample and channel, then apply a per-sample affine
    supplied at call time (from a style code): ``forward(x, weight, bias)`` with ``x (N, C, H, W)``
    and ``weight, bias (N, C)``. Nothing is stored on the module between calls.
    """

    def __init__(self, num_channels: int, eps: float = 1e-5):
        super().__init__()
        self.num_channels = num_channels
        self.eps = eps

    def forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.num_channels, "AdaIN")
        n, c = x.shape[:2]
        if weight.shape != (n, c) or bias.shape != (n, c):
            raise ValueError(
                f"AdaIN on {tuple(x.shape)} needs weight and bias of shape {(n, c)}, "
                f"got {tuple(weight.shape)} and {tuple(bias.shape)}"
            )
        y = F.instance_norm(x, eps=self.eps)
        return y * weight[:, :, None, None] + bias[:, :, None, None]

    def extra_repr(self) -> str:
        return f"{self.num_channels}, eps={self.eps}"
