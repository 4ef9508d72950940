"""Anti-aliased resampling (Zhang, "Making Convolutional Networks Shift-Invariant Again", 2019), as
CUT uses it (Park et al., 2020): a fixed binomial blur before every stride-2 subsampling, and a
fixed binomial interpolation instead of a learned transposed conv for every 2x upsampling.

- :func:`binomial_filter`: the ``(k, k)`` outer product of a row of Pascal's triangle, summing to 1
  (``k=3``: ``[1, 2, 1] x [1, 2, 1] / 16``; ``k=4``: ``[1, 3, 3, 1] x [1, 3, 3, 1] / 64``).
- :class:`BlurDownsample`: reflect pad -> depthwise blur with stride 2: ``(N, C, H, W) -> (N, C,
  ceil(H / 2), ceil(W / 2))``.
- :class:`BlurUpsample`: replicate pad 1 -> depthwise transposed conv with the 4x4 filter times 4,
  stride 2, padding 2 -> crop one pixel per side: ``(N, C, H, W) -> (N, C, 2H, 2W)``. With the
  default filter this is bilinear interpolation (``align_corners=False``, edges clamped).

The filters are fixed, not learned, but kept as *persistent* buffers named ``kernel``, one
``(C, 1, k, k)`` copy per channel: the official CUT checkpoints hold them the same way
(``model.7.filt``, ``model.11.filt``, ``model.21.filt``, ``model.25.filt`` in ``latest_net_G.pth``;
``model.2.filt``, ``model.6.filt``, ``model.10.filt`` in ``latest_net_D.pth``), so their state dicts
map onto ours key for key and a strict load checks every one. The buffers add no parameters.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def binomial_filter(size: int) -> torch.Tensor:
    """``(size, size)`` binomial blur: row ``size - 1`` of Pascal's triangle, outer product, sum 1."""
    if size < 1:
        raise ValueError(f"blur filter size must be >= 1, got {size}")
    row = torch.tensor([math.comb(size - 1, k) for k in range(size)], dtype=torch.float64)
    kernel = torch.outer(row, row)
    return (kernel / kernel.sum()).to(torch.get_default_dtype())


def _check_channels(module: nn.Module, x: torch.Tensor) -> None:
    if x.dim() != 4 or x.shape[1] != module.channels:
        raise ValueError(
            f"{type(module).__name__}({module.channels}) expects (N, {module.channels}, H, W), "
            f"got {tuple(x.shape)}"
        )


class BlurDownsample(nn.Module):
    """Blur then subsample by 2, per channel: ``(N, C, H, W) -> (N, C, ceil(H / 2), ceil(W / 2))``.

    Reflect padding of ``(k - 1) // 2`` before / ``k // 2`` after on each axis (1 and 1 for the
    default ``k=3``), so the blur never sees zeros at the border. Needs ``H, W >= 2``.
    """

    def __init__(self, channels: int, filter_size: int = 3):
        super().__init__()
        self.channels = channels
        self.filter_size = filter_size
        kernel = binomial_filter(filter_size)
        self.register_buffer("kernel", kernel.expand(channels, 1, -1, -1).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_channels(self, x)
        before, after = (self.filter_size - 1) // 2, self.filter_size // 2
        x = F.pad(x, (before, after, before, after), mode="reflect")
        return F.conv2d(x, self.kernel.to(x.dtype), stride=2, groups=self.channels)

    def extra_repr(self) -> str:
        return f"{self.channels}, filter_size={self.filter_size}"


class BlurUpsample(nn.Module):
    """Upsample by 2 with a fixed binomial filter, per channel: ``(N, C, H, W) -> (N, C, 2H, 2W)``.

    Replicate pad 1, transposed conv (stride 2, padding ``1 + (k - 1) // 2``) with the binomial
    filter scaled by 4 (stride squared, so a constant image stays constant), then drop the first
    row/column, and the last one too for an even ``k``: exactly ``2H x 2W`` comes out.
    """

    def __init__(self, channels: int, filter_size: int = 4):
        super().__init__()
        self.channels = channels
        self.filter_size = filter_size
        kernel = binomial_filter(filter_size) * 4
        self.register_buffer("kernel", kernel.expand(channels, 1, -1, -1).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_channels(self, x)
        x = F.pad(x, (1, 1, 1, 1), mode="replicate")
        padding = 1 + (self.filter_size - 1) // 2
        y = F.conv_transpose2d(x, self.kernel.to(x.dtype), stride=2, padding=padding, groups=self.channels)
        end = -1 if self.filter_size % 2 == 0 else None
        return y[:, :, 1:end, 1:end]

    def extra_repr(self) -> str:
        return f"{self.channels}, filter_size={self.filter_size}"
