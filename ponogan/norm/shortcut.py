"""Moment Shortcut (MS) and Dynamic Moment Shortcut (DMS), from the PONO paper (Li et al., 2019).

Both take the decoder feature ``x (N, C, H, W)`` and the PONO moments ``mean, std (N, 1, H, W)``
extracted by the encoder at the same resolution, and re-inject them: ``x * gamma + beta``.
"""

from __future__ import annotations

import torch
from torch import nn

Moments = list[tuple[torch.Tensor, torch.Tensor]]
"""PONO moments of every encoder level, shallow first: ``[(mean, std), ...]``, each ``(N, 1, h, w)``."""


def check_moments(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, who: str) -> None:
    """Raise a clear error unless ``mean`` and ``std`` are ``(N, 1, H, W)`` matching ``x (N, C, H, W)``."""
    if x.dim() != 4:
        raise ValueError(f"{who} expects x of shape (N, C, H, W), got {tuple(x.shape)}")
    want = (x.shape[0], 1, x.shape[2], x.shape[3])
    if tuple(mean.shape) != want or tuple(std.shape) != want:
        raise ValueError(
            f"{who} on x of shape {tuple(x.shape)} needs mean and std of shape (N, 1, H, W) = {want} "
            f"(PONO moments from the encoder level of the same resolution), got {tuple(mean.shape)} "
            f"and {tuple(std.shape)}"
        )


class MomentShortcut(nn.Module):
    """MS: ``x * std + mean`` (beta = mean, gamma = std, broadcast over channels). No parameters.

    ``forward(x (N, C, H, W), mean (N, 1, H, W), std (N, 1, H, W)) -> (N, C, H, W)``.
    """

    def forward(self, x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        check_moments(x, mean, std, "MomentShortcut")
        return torch.addcmul(mean, x, std)


class DynamicMomentShortcut(nn.Module):
    """DMS: a small conv net maps ``cat(mean, std)`` (2 channels) to ``(beta, gamma)`` with
    ``channels`` channels each, then returns ``x * gamma + beta``.

    Net: conv3x3(2 -> hidden) -> ReLU -> conv3x3(hidden -> 2 * channels), hidden = C/2 clamped to
    [16, 64]: the input is two smooth maps, so a wider hidden layer only adds parameters.

    ``forward(x (N, C, H, W), mean (N, 1, H, W), std (N, 1, H, W)) -> (N, C, H, W)``.

    NOTE: the official DMS ends with a ReLU (and puts a norm after its first conv), which forces
    beta, gamma >= 0, although the PONO mean it stands in for takes either sign. We drop that
    final ReLU, predict a residual on top of MS (``beta = mean + d_beta``, ``gamma = std + d_gamma``)
    and zero-initialise the last conv, so DMS starts exactly as MS and learns a correction.
    No norm inside: a batch norm on 2-channel moment maps would couple the samples of a batch.
    """

    def __init__(self, channels: int, hidden_channels: int | None = None):
        super().__init__()
        hidden = hidden_channels or min(64, max(16, channels // 2))
        self.channels = channels
        self.net = nn.Sequential(
            nn.Conv2d(2, hidden, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden, 2 * channels, 3, padding=1),
        )
        self.post_init_()

    def post_init_(self) -> None:
        """Zero the last conv, so DMS starts exactly as MS (re-applied after ``init_weights``)."""
        nn.init.zeros_(self.net[2].weight)
        nn.init.zeros_(self.net[2].bias)

    def forward(self, x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        check_moments(x, mean, std, "DynamicMomentShortcut")
        if x.shape[1] != self.channels:
            raise ValueError(
                f"DynamicMomentShortcut built for {self.channels} channels got x of shape {tuple(x.shape)}"
            )
        correction = self.net(torch.cat([mean, std], dim=1))  # (N, 2C, H, W)
        d_beta, d_gamma = correction.chunk(2, dim=1)
        beta = mean + d_beta
        gamma = std + d_gamma
        return torch.addcmul(beta, x, gamma)


class OfficialDynamicMomentShortcut(nn.Module):
    """DMS exactly as the official PONO code's CycleGAN ResNet (``ResnetPONODMSGenerator``).

    The moments come from the encoder level *below* the decoder feature (half its resolution) and
    are mapped to ``(beta, gamma)`` at the feature's resolution by
    ``convT3/2 (2 -> C) -> BatchNorm -> ReLU -> conv3x3 (C -> 2C) -> ReLU``, split in two halves
    (``beta`` first). ``forward(x (N, C, 2h, 2w), mean (N, 1, h, w), std (N, 1, h, w))`` returns
    ``x * gamma + beta``; the official generator applies it after an up-conv and its BatchNorm,
    before the ReLU.

    NOTE: the final ReLU forces ``beta, gamma >= 0`` (the official design). The official block also
    builds a BatchNorm after the second conv that its forward never uses; it is kept here, frozen
    (``requires_grad=False``), so parameter counts and official state dicts match.
    """

    def __init__(self, channels: int, *, conv_bias: bool = True):
        super().__init__()
        self.channels = channels
        self.up = nn.ConvTranspose2d(2, channels, 3, stride=2, padding=1, output_padding=1, bias=conv_bias)
        self.up_norm = nn.BatchNorm2d(channels)
        self.conv = nn.Conv2d(channels, 2 * channels, 3, padding=1)
        self.unused_norm = nn.BatchNorm2d(2 * channels).requires_grad_(False)

    def forward(self, x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        if mean.shape != std.shape or mean.dim() != 4 or mean.shape[1] != 1:
            raise ValueError(
                f"OfficialDynamicMomentShortcut needs mean and std of shape (N, 1, h, w), got "
                f"{tuple(mean.shape)} and {tuple(std.shape)}"
            )
        want = (mean.shape[0], self.channels, 2 * mean.shape[2], 2 * mean.shape[3])
        if tuple(x.shape) != want:
            raise ValueError(
                f"OfficialDynamicMomentShortcut on moments of shape {tuple(mean.shape)} needs x "
                f"of shape {want} (twice their resolution), got {tuple(x.shape)}"
            )
        h = torch.relu(self.up_norm(self.up(torch.cat([mean, std], dim=1))))
        beta, gamma = torch.relu(self.conv(h)).chunk(2, dim=1)  # (N, C, 2h, 2w) each
        return torch.addcmul(beta, x, gamma)
