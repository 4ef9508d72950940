"""The pix2pix U-Net generator (Isola et al., 2017), with optional PONO + Moment Shortcut.

``num_downs`` levels, each halving the resolution with a conv4/2; level ``k`` (0 = outermost) has
``ngf * min(2**k, 8)`` channels. Written as two lists (encoder levels, decoder levels) rather than
the original's recursive blocks; the layers, and the parameter count (U-Net-256 with batch norm:
54,413,955), are the same::

    enc k:  [lrelu] -> conv4/2 -> [PONO: m_k] -> norm          d_k  (N, C_k, H/2^(k+1), W/2^(k+1))
    dec k:  relu -> convT4/2 -> norm [-> dropout]              (N, C_(k-1), H/2^k, W/2^k)
            input: d_k for the innermost level, else cat(d_k, [MS/DMS with m_k](dec_(k+1)))
    dec 0:  relu -> convT4/2 -> tanh                           (N, C_out, H, W)

The outermost level has no activation before and no norm after its conv, the innermost no norm,
as in pix2pix. NOTE: PONO-MS is not in the official code; here PONO takes moments on every encoder
level but the innermost (whose features go straight into the decoder, so re-injecting its moments
would just undo PONO), and MS/DMS puts ``m_k`` back on the decoder feature of the same resolution,
deepest first, before it joins the skip connection ``d_k``.
"""

from __future__ import annotations

import torch
from torch import nn

from ponogan.models.layers import (
    ConvNormAct,
    check_layout,
    check_norm_name,
    check_shortcut,
    conv_bias,
    crop_to,
    make_shortcut,
    pad_to_multiple,
)
from ponogan.norm import Moments


class _DecoderLevel(nn.Module):
    """``relu -> convT4/2 -> norm -> act -> [dropout]``: ``(N, C_in, h, w) -> (N, C_out, 2h, 2w)``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        norm: str,
        *,
        activation: str = "none",
        bias: bool | None = None,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.pre = nn.ReLU()
        self.conv = ConvNormAct(
            in_channels, out_channels, 4, 2, 1, norm=norm, activation=activation, bias=bias, transposed=True
        )
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.conv(self.pre(x)))


class _EncoderLevel(nn.Module):
    """``[lrelu] -> conv4/2 -> [PONO] -> norm``: returns ``(y, mean, std)`` with PONO, else ``y``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        norm: str,
        *,
        pre_act: bool,
        pono: bool,
        bias: bool | None = None,
    ):
        super().__init__()
        self.pre = nn.LeakyReLU(0.2) if pre_act else nn.Identity()
        self.conv = ConvNormAct(
            in_channels, out_channels, 4, 2, 1, norm=norm, activation="none", bias=bias, pono=pono
        )

    def forward(self, x: torch.Tensor):
        return self.conv(self.pre(x))


class UnetGenerator(nn.Module):
    """pix2pix U-Net: ``forward(x (N, C_in, H, W)) -> (N, C_out, H, W)`` in ``[-1, 1]``.

    Inputs are padded to a multiple of ``2**num_downs`` (256 for U-Net-256; replicate padding
    when the image is smaller than the pad) and the output is cropped back.

    Args:
        num_downs: 8 for 256x256 images (U-Net-256), 7 for U-Net-128.
        norm: any ``make_norm`` name; bias only on convs whose norm has no shift.
        shortcut: ``None``, ``"ms"`` or ``"dms"`` (see the module docstring).
        use_dropout: dropout 0.5 on the ``num_downs - 5`` decoder levels just above the innermost
            (pix2pix's default noise source).
        layout: only ``"ponogan"``: the official PONO code has no U-Net with PONO-MS, so there is no
            ``"official"`` layout to reproduce (accepted with ``shortcut=None``, the plain pix2pix).
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        num_downs: int = 8,
        ngf: int = 64,
        norm: str = "batch",
        shortcut: str | None = None,
        *,
        layout: str = "ponogan",
        use_dropout: bool = True,
    ):
        super().__init__()
        if num_downs < 2:
            raise ValueError(f"UnetGenerator needs num_downs >= 2, got {num_downs}")
        check_norm_name(norm, "UnetGenerator")
        check_shortcut(shortcut)
        check_layout(layout)
        if layout == "official" and shortcut is not None:
            raise ValueError(
                "the official PONO code has no U-Net with PONO-MS/DMS: use layout='ponogan' "
                "(ponogan's own design, docs/models.md)"
            )
        self.shortcut = shortcut
        self.stride = 2**num_downs
        widths = [ngf * min(2**k, 8) for k in range(num_downs)]
        inner = num_downs - 1
        # NOTE: one bias rule for the whole net, as in pix2pix, even where no norm follows the conv
        use_bias = conv_bias(norm)
        self.encoder = nn.ModuleList(
            _EncoderLevel(
                in_channels if k == 0 else widths[k - 1],
                widths[k],
                "none" if k in (0, inner) else norm,
                pre_act=k > 0,
                pono=shortcut is not None and k < inner,
                bias=use_bias,
            )
            for k in range(num_downs)
        )
        decoder = [_DecoderLevel(widths[0] * 2, out_channels, "none", activation="tanh", bias=True)]
        for k in range(1, num_downs):
            c_in = widths[k] if k == inner else 2 * widths[k]
            drop = 0.5 if use_dropout and 4 <= k < inner else 0.0
            decoder.append(_DecoderLevel(c_in, widths[k - 1], norm, bias=use_bias, dropout=drop))
        self.decoder = nn.ModuleList(decoder)
        self.shortcuts = (
            nn.ModuleList(make_shortcut(shortcut, widths[k]) for k in range(inner)) if shortcut else None
        )

    def _encode(self, x: torch.Tensor) -> tuple[list[torch.Tensor], Moments]:
        feats, moments = [], []
        h = x
        for level in self.encoder:
            out = level(h)
            if isinstance(out, tuple):
                h, mean, std = out
                moments.append((mean, std))
            else:
                h = out
            feats.append(h)
        return feats, moments

    def extract_moments(self, x: torch.Tensor) -> Moments:
        """PONO moments ``(mean, std)``, each ``(N, 1, h, w)``, of every encoder level but the
        innermost, shallow first (on the padded input); an empty list with ``shortcut=None``."""
        x, _ = pad_to_multiple(x, self.stride)
        return self._encode(x)[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, size = pad_to_multiple(x, self.stride)
        feats, moments = self._encode(x)
        h = self.decoder[-1](feats[-1])
        for k in range(len(self.decoder) - 2, -1, -1):
            if self.shortcuts is not None:
                h = self.shortcuts[k](h, *moments[k])
            h = self.decoder[k](torch.cat([feats[k], h], dim=1))
        return crop_to(h, size)
