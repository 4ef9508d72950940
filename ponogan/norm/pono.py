"""Positional Normalization (Li et al., "Positional Normalization", NeurIPS 2019).

PONO normalises **across channels at each spatial position**: for ``x`` of shape ``(N, C, H, W)``

    mean[n, 0, h, w] = mean_c x[n, c, h, w]
    std[n, 0, h, w]  = sqrt(var_c x[n, c, h, w] + eps)
    y = (x - mean) / std

and returns ``(y, mean, std)`` so a decoder can put the moments back (see ``shortcut.py``).
The paper uses the biased variance (divide by C); the official PyTorch code divides by C - 1:
``unbiased=True`` reproduces it exactly.
"""

from __future__ import annotations

import torch
from torch import nn


def pono_reference(x: torch.Tensor, eps: float = 1e-5, unbiased: bool = False):
    """The PONO formula written out with plain ops: ``(y, mean, std)``, moments ``(N, 1, H, W)``."""
    var, mean = torch.var_mean(x, dim=1, keepdim=True, correction=1 if unbiased else 0)
    std = torch.sqrt(var + eps)
    return (x - mean) / std, mean, std


def pono(x: torch.Tensor, eps: float = 1e-5, unbiased: bool = False):
    """Functional PONO: ``x (N, C, H, W) -> (y, mean (N,1,H,W), std (N,1,H,W))``."""
    if x.dim() != 4:
        raise ValueError(f"PONO expects a 4-D tensor (N, C, H, W), got shape {tuple(x.shape)}")
    return pono_reference(x, eps, unbiased)


class PONO(nn.Module):
    """Positional Normalization: statistics over **C at each (n, h, w)**.

    Args:
        eps: added to the variance inside the square root.
        unbiased: divide the variance by ``C - 1`` as the official code does (paper: ``C``).
        affine: learn a per-channel scale and shift applied after normalising (off in the paper's
            generators, where MS re-injects the moments instead).
        num_channels: needed only with ``affine=True``.
        return_moments: ``forward`` returns ``(y, mean, std)`` (default) or just ``y``.
    """

    def __init__(
        self,
        eps: float = 1e-5,
        unbiased: bool = False,
        *,
        affine: bool = False,
        num_channels: int | None = None,
        return_moments: bool = True,
    ):
        super().__init__()
        if affine and not num_channels:
            raise ValueError("PONO(affine=True) needs num_channels")
        self.eps = eps
        self.unbiased = unbiased
        self.return_moments = return_moments
        if affine:
            self.weight = nn.Parameter(torch.ones(1, num_channels, 1, 1))
            self.bias = nn.Parameter(torch.zeros(1, num_channels, 1, 1))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x: torch.Tensor):
        y, mean, std = pono(x, self.eps, self.unbiased)
        if self.weight is not None:
            y = y * self.weight + self.bias
        return (y, mean, std) if self.return_moments else y

    def extra_repr(self) -> str:
        return f"eps={self.eps}, unbiased={self.unbiased}, affine={self.weight is not None}"
