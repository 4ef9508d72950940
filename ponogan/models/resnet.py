"""The CycleGAN ResNet generator (Zhu et al., 2017), with optional PONO + Moment Shortcut.

Layout for ``(N, C_in, H, W)`` with ``ngf=64`` and 2 downsamplings (H, W padded to a multiple of 4)::

    stem   reflect-pad conv7 -> norm -> relu                  (N, 64, H, W)
    down1  conv3/2 -> [PONO: m1] -> norm -> relu               (N, 128, H/2, W/2)
    down2  conv3/2 -> [PONO: m2] -> norm -> relu               (N, 256, H/4, W/4)
    blocks n_blocks x ResBlock                                 (N, 256, H/4, W/4)
    up1    [MS/DMS with m2] -> convT3/2 -> norm -> relu        (N, 128, H/2, W/2)
    up2    [MS/DMS with m1] -> convT3/2 -> norm -> relu        (N, 64, H, W)
    head   reflect-pad conv7 -> tanh                           (N, C_out, H, W)

NOTE: a moment is re-injected where the decoder feature is back at the resolution PONO took it at,
deepest first: ``m2`` on the residual blocks' output, ``m1`` on the first upsampling stage's output
(after its convT + norm + relu, as in the official PONO code). MS is a broadcast over channels, so
the resolutions must match; there is no full-resolution moment because the stem has no PONO.

Two layouts of the PONO blocks (``layout=``; the baseline ``shortcut=None`` is the same in both):

* ``"official"``: the official PONO code (Boyiliee/PONO, ``networks_pono.py``): the four down/up
  stages use BatchNorm whatever ``norm`` is (the convs keep ``norm``'s bias rule), PONO divides by
  C - 1, and DMS is :class:`OfficialDynamicMomentShortcut`: the moments of the level below go
  through convT3/2-BN-ReLU-conv3-ReLU and ``x * gamma + beta`` sits after the up-conv and its BN,
  before the ReLU. ResNet-9, ngf 64: PONO-MS 11,379,331 and PONO-DMS 11,753,155 parameters, as
  the official code; official state dicts load through ``ponogan.models.official``.
* ``"ponogan"``: the generator's ``norm`` everywhere, PONO over C (the paper's formula), and our
  DMS (:class:`DynamicMomentShortcut`: a zero-initialised residual on MS, at the MS position).
  It trains with instance norm at batch 1 like the baseline; runs saved before ``layout``
  existed use it.
"""

from __future__ import annotations

import torch
from torch import nn

from ponogan.models.layers import (
    ConvNormAct,
    ResBlock,
    check_layout,
    check_norm_name,
    check_shortcut,
    conv_bias,
    crop_to,
    make_shortcut,
    pad_to_multiple,
)
from ponogan.norm import Moments, OfficialDynamicMomentShortcut


class ResnetGenerator(nn.Module):
    """CycleGAN generator: ``forward(x (N, C_in, H, W)) -> (N, C_out, H, W)`` in ``[-1, 1]``.

    Args:
        norm: any ``make_norm`` name; convs get a bias only when the norm has no
            learned shift (the original's rule, so the baseline counts match: 11,378,179 params
            for ngf=64, 9 blocks, instance norm).
        shortcut: ``None`` (plain CycleGAN), ``"ms"`` or ``"dms"``: PONO after each stride-2
            conv and MS/DMS on the decoder at the matching resolution (see the module docstring).
        layout: ``"ponogan"`` or ``"official"`` placement of the PONO blocks (module docstring).
        n_downsampling: stride-2 stages (2 in CycleGAN); inputs are padded to ``2**n_downsampling``.
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        ngf: int = 64,
        n_blocks: int = 9,
        norm: str = "instance",
        shortcut: str | None = None,
        *,
        layout: str = "ponogan",
        use_dropout: bool = False,
        n_downsampling: int = 2,
        pad_type: str = "reflect",
    ):
        super().__init__()
        check_norm_name(norm, "ResnetGenerator")
        check_shortcut(shortcut)
        check_layout(layout)
        self.shortcut = shortcut
        self.stride = 2**n_downsampling
        official = layout == "official" and shortcut is not None
        # official: BatchNorm in the PONO stages, the convs' bias still follows `norm`
        stage = dict(norm="batch", bias=conv_bias(norm)) if official else dict(norm=norm)
        self.stem = ConvNormAct(in_channels, ngf, 7, 1, 3, norm=norm, pad_type=pad_type)
        self.downs = nn.ModuleList(
            ConvNormAct(
                ngf * 2**i,
                ngf * 2 ** (i + 1),
                3,
                2,
                1,
                pad_type="zero",
                pono=shortcut is not None,
                pono_unbiased=official,
                **stage,
            )
            for i in range(n_downsampling)
        )
        width = ngf * self.stride
        self.blocks = nn.Sequential(
            *(
                ResBlock(width, norm=norm, pad_type=pad_type, dropout=0.5 if use_dropout else 0.0)
                for _ in range(n_blocks)
            )
        )
        # official DMS acts between an up stage's norm and its ReLU: the stage then has no activation
        self.shortcut_after_up = official and shortcut == "dms"
        up_act = "none" if self.shortcut_after_up else "relu"
        up_in = [width // 2**i for i in range(n_downsampling)]
        self.ups = nn.ModuleList(
            ConvNormAct(c, c // 2, 3, 2, 1, transposed=True, output_padding=1, activation=up_act, **stage)
            for c in up_in
        )
        # shortcuts[k] re-injects the moments of encoder level k (width ngf * 2**(k+1))
        if shortcut is None:
            self.shortcuts = None
        elif self.shortcut_after_up:  # level k's moments feed the up stage that outputs width ngf * 2**k
            self.shortcuts = nn.ModuleList(
                OfficialDynamicMomentShortcut(ngf * 2**k, conv_bias=conv_bias(norm))
                for k in range(n_downsampling)
            )
        else:
            self.shortcuts = nn.ModuleList(
                make_shortcut(shortcut, ngf * 2 ** (k + 1)) for k in range(n_downsampling)
            )
        self.head = ConvNormAct(
            ngf, out_channels, 7, 1, 3, norm="none", activation="tanh", pad_type=pad_type, bias=True
        )

    def _encode(self, x: torch.Tensor) -> tuple[torch.Tensor, Moments]:
        h = self.stem(x)
        moments: Moments = []
        for down in self.downs:
            if self.shortcut is None:
                h = down(h)
            else:
                h, mean, std = down(h)
                moments.append((mean, std))
        return h, moments

    def extract_moments(self, x: torch.Tensor) -> Moments:
        """PONO moments ``(mean, std)``, each ``(N, 1, h, w)``, of every encoder level, shallow first
        (on the padded input); an empty list with ``shortcut=None``."""
        x, _ = pad_to_multiple(x, self.stride)
        return self._encode(x)[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, size = pad_to_multiple(x, self.stride)
        h, moments = self._encode(x)
        h = self.blocks(h)
        for i, up in enumerate(self.ups):
            k = len(self.ups) - 1 - i  # deepest first
            if self.shortcut_after_up:
                h = torch.relu(self.shortcuts[k](up(h), *moments[k]))
                continue
            if self.shortcuts is not None:
                h = self.shortcuts[k](h, *moments[k])
            h = up(h)
        return crop_to(self.head(h), size)
