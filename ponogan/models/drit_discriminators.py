"""DRIT's discriminators as the PONO paper's DRIT fork builds them.

- :class:`DritImageDiscriminator`: three scales, each four ``reflect pad 1 -> conv4/2 -> LeakyReLU
  0.01`` (64 -> 512 channels, no norm) and a 1x1 conv; ``AvgPool(3, 2, 1, count_include_pad=False)``
  between scales. Returns one logit map per scale.
- :class:`DritContentDiscriminator`: on the content code ``(N, 256, h, w)`` (``channels``),
  optionally with the three PONO moment pairs average-pooled to ``(h, w)`` and concatenated
  (262 channels): three ``reflect pad 3 -> conv7/2 -> LeakyReLU 0.01``, a conv4 (no pad), a 1x1 conv.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ponogan.models.drit import Moments


def lrelu_conv(cin: int, cout: int, kernel: int, stride: int, pad: int) -> nn.Sequential:
    """``reflect pad -> conv (bias) -> LeakyReLU(0.01)``, no norm."""
    return nn.Sequential(nn.ReflectionPad2d(pad), nn.Conv2d(cin, cout, kernel, stride), nn.LeakyReLU(0.01))


class DritImageDiscriminator(nn.Module):
    """``forward(x (N, C, H, W)) -> [logits (N, 1, H/16, W/16), then each coarser scale]``."""

    def __init__(self, in_channels: int = 3, n_scales: int = 3, n_layers: int = 4, ndf: int = 64):
        super().__init__()
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
        self.scales = nn.ModuleList()
        for _ in range(n_scales):
            widths = [in_channels] + [ndf * 2**i for i in range(n_layers)]
            net = [lrelu_conv(cin, cout, 4, 2, 1) for cin, cout in zip(widths[:-1], widths[1:], strict=True)]
            self.scales.append(nn.Sequential(*net, nn.Conv2d(widths[-1], 1, 1)))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for i, net in enumerate(self.scales):
            if i:
                x = self.downsample(x)
            outs.append(net(x))
        return outs


class DritContentDiscriminator(nn.Module):
    """``forward(content (N, channels, h, w), moments=None) -> logits (N, 1, h', w')``.

    ``channels`` is the content code's width (256 in the fork; every conv is that wide).
    ``with_moments=True`` expects the content encoder's three ``(mean, std)`` pairs and adds them
    (pooled to ``(h, w)``) as six more input channels.
    """

    def __init__(self, *, with_moments: bool = False, moment_pairs: int = 3, channels: int = 256):
        super().__init__()
        self.with_moments = with_moments
        self.moment_pairs = moment_pairs
        cin = channels + (2 * moment_pairs if with_moments else 0)
        ch = channels
        self.model = nn.Sequential(
            lrelu_conv(cin, ch, 7, 2, 3),
            lrelu_conv(ch, ch, 7, 2, 3),
            lrelu_conv(ch, ch, 7, 2, 3),
            lrelu_conv(ch, ch, 4, 1, 0),
            nn.Conv2d(ch, 1, 1),
        )

    def forward(self, content: torch.Tensor, moments: Moments | None = None) -> torch.Tensor:
        if self.with_moments:
            if not moments or len(moments) != self.moment_pairs:
                raise ValueError(
                    f"this content discriminator takes {self.moment_pairs} moment pairs with the content, "
                    f"got {len(moments or [])}; use with_moments=False with a content encoder without PONO"
                )
            size = content.shape[2:]
            maps = [F.adaptive_avg_pool2d(torch.cat([mean, std], dim=1), size) for mean, std in moments]
            content = torch.cat([content, *maps], dim=1)
        return self.model(content)
