"""Moment Shortcut (MS) and Dynamic Moment Shortcut (DMS), from the PONO paper (Li et al., 2019).

Both take the decoder feature ``x (N, C, H, W)`` and the PONO moments ``mean, std (N, 1, H, W)``
extracted by the encoder at the same resolution, and re-inject them: ``x * gamma + beta``.
"""

from __future__ import annotations

import torch
from torch import nn


class MomentShortcut(nn.Module):
    """MS: ``x * std + mean`` (beta = mean, gamma = std, broadcast over channels). No parameters."""

    def forward(self, x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(mean, x, std)


class DynamicMomentShortcut(nn.Module):
    """DMS: a small conv net maps ``cat(mean, std)`` (2 channels) to ``(beta, gamma)`` with
    ``channels`` channels each, then returns ``x * gamma + beta``.

    Net: conv3x3(2 -> hidden) -> ReLU -> conv3x3(hidden -> 2 * channels).

    NOTE: the official DMS ends with a ReLU (and puts a norm after its first conv), which forces
    beta, gamma >= 0. We drop that final ReLU so DMS can express MS itself (gamma = std and
    beta = mean take either sign for mean) and initialise the last conv so that at the start
    gamma = std and beta = mean exactly: DMS begins as MS and learns a correction.
    No norm inside: a batch norm on 2-channel moment maps would couple samples of a batch.
    """

    def __init__(self, channels: int, hidden_channels: int | None = None):
        super().__init__()
        hidden = hidden_channels or max(16, channels // 2)
        self.channels = channels
        self.net = nn.Sequential(
            nn.Conv2d(2, hidden, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden, 2 * channels, 3, padding=1),
        )
        nn.init.zeros_(self.net[2].weight)
        nn.init.zeros_(self.net[2].bias)

    def forward(self, x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        correction = self.net(torch.cat([mean, std], dim=1))  # (N, 2C, H, W)
        d_beta, d_gamma = correction.chunk(2, dim=1)
        beta = mean + d_beta
        gamma = std + d_gamma
        return x * gamma + beta
