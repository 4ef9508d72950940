"""The CycleGAN ResNet generator (Zhu et al., 2017), with optional PONO + Moment Shortcut and the
anti-aliased resampling of CUT (Park et al., 2020).

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

Anti-aliasing (CUT's default; ``antialias`` / ``antialias_up``, both off by default, same parameter
count either way: 11,378,179 for ResNet-9, ngf 64, instance norm)::

    down_i  conv3/1 -> [PONO: m_i] -> norm -> relu -> BlurDownsample      (m1 at H, m2 at H/2)
    up_i    BlurUpsample -> [MS/DMS with m_(n+1-i)] -> conv3/1 -> norm -> relu

so with PONO the moments come out of the stride-1 convs, at H and H/2, and each goes back right
after the ``BlurUpsample`` that brings the decoder to its resolution, before the up conv, deepest
first. PONO-MS with anti-aliasing needs both options on (the moments and the decoder then meet at
the same resolutions) and the ``"ponogan"`` layout.

Encoder taps (:meth:`ResnetGenerator.encode_taps`, for CUT's PatchNCE loss), in forward order:
``stem.pad`` (the reflect-padded input of the stem conv, ``(N, C_in, H + 6, W + 6)``), ``stem``,
``down{i}.conv`` (the stage's conv output, before PONO and norm), ``down{i}`` (the stage output, after
the blur with anti-aliasing), ``block{j}`` (output of residual block j), i and j from 1.
:func:`official_nce_taps` translates the official ``--nce_layers`` indices into these names.

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

from collections.abc import Sequence

import torch
from torch import nn

from ponogan.models.antialias import BlurDownsample, BlurUpsample
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

OFFICIAL_NCE_LAYERS = (0, 4, 8, 12, 16)
"""CUT's default ``--nce_layers``: indices into the official generator's ``nn.Sequential``."""


def official_nce_taps(
    layers: Sequence[int] = OFFICIAL_NCE_LAYERS, *, antialias: bool = True, n_blocks: int = 9
) -> tuple[str, ...]:
    """The tap names of :class:`ResnetGenerator` that hold the features the official CUT code takes
    at ``layers`` (``--nce_layers``) of its ResNet generator (2 downsamplings).

    Defaults: ``stem.pad, down1.conv, down2.conv, block1, block5`` with anti-aliasing,
    ``stem.pad, down1.conv, down2, block3, block7`` without (``--no_antialias``).

    NOTE: the official ``nn.Sequential`` has in-place ReLUs. A norm output tapped there is rewritten
    by the ReLU that follows before the loss reads it, so the feature the official loss sees is the
    ReLU's output: index 8 without anti-aliasing (the down2 instance norm) is our ``down2``.
    Indices whose tensor has no tap here (the stem conv, the pre-blur activations, the decoder)
    raise ``ValueError``.
    """
    table: list[str | None] = ["stem.pad", None, "stem", "stem"]  # pad, conv7, norm (+ReLU), ReLU
    for i in (1, 2):
        if antialias:  # conv3/1, norm, ReLU, Downsample
            table += [f"down{i}.conv", None, None, f"down{i}"]
        else:  # conv3/2, norm (rewritten by the in-place ReLU), ReLU
            table += [f"down{i}.conv", f"down{i}", f"down{i}"]
    table += [f"block{j}" for j in range(1, n_blocks + 1)]
    taps = []
    for index in layers:
        if not 0 <= index < len(table) or table[index] is None:
            raise ValueError(
                f"official nce layer {index} has no ponogan tap (antialias={antialias}, "
                f"n_blocks={n_blocks}); mappable layers: "
                f"{', '.join(str(k) for k, name in enumerate(table) if name is not None)}"
            )
        taps.append(table[index])
    return tuple(taps)


class ResnetGenerator(nn.Module):
    """CycleGAN generator: ``forward(x (N, C_in, H, W)) -> (N, C_out, H, W)`` in ``[-1, 1]``.

    Args:
        norm: any ``make_norm`` name; convs get a bias only when the norm has no
            learned shift (the original's rule, so the baseline counts match: 11,378,179 params
            for ngf=64, 9 blocks, instance norm).
        shortcut: ``None`` (plain CycleGAN), ``"ms"`` or ``"dms"``: PONO after each downsampling
            conv and MS/DMS on the decoder at the matching resolution (see the module docstring).
        layout: ``"ponogan"`` or ``"official"`` placement of the PONO blocks (module docstring).
        antialias: CUT's down stages, stride-1 conv then :class:`BlurDownsample`.
        antialias_up: CUT's up stages, :class:`BlurUpsample` then a stride-1 conv3.
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
        antialias: bool = False,
        antialias_up: bool = False,
        use_dropout: bool = False,
        n_downsampling: int = 2,
        pad_type: str = "reflect",
    ):
        super().__init__()
        check_norm_name(norm, "ResnetGenerator")
        check_shortcut(shortcut)
        check_layout(layout)
        _check_antialias(shortcut, layout, antialias, antialias_up)
        self.shortcut = shortcut
        self.stride = 2**n_downsampling
        official = layout == "official" and shortcut is not None
        # official: BatchNorm in the PONO stages, the convs' bias still follows `norm`
        stage = dict(norm="batch", bias=conv_bias(norm)) if official else dict(norm=norm)
        self.stem = ConvNormAct(in_channels, ngf, 7, 1, 3, norm=norm, pad_type=pad_type)
        widths = [ngf * 2 ** (i + 1) for i in range(n_downsampling)]  # down stage outputs
        self.downs = nn.ModuleList(
            ConvNormAct(
                c // 2,
                c,
                3,
                1 if antialias else 2,
                1,
                pad_type="zero",
                pono=shortcut is not None,
                pono_unbiased=official,
                **stage,
            )
            for c in widths
        )
        self.down_blurs = nn.ModuleList(BlurDownsample(c) for c in widths) if antialias else None
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
        if antialias_up:
            self.up_blurs = nn.ModuleList(BlurUpsample(c) for c in up_in)
            self.ups = nn.ModuleList(
                ConvNormAct(c, c // 2, 3, 1, 1, pad_type="zero", activation=up_act, **stage) for c in up_in
            )
        else:
            self.up_blurs = None
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
            self.shortcuts = nn.ModuleList(make_shortcut(shortcut, c) for c in widths)
        self.head = ConvNormAct(
            ngf, out_channels, 7, 1, 3, norm="none", activation="tanh", pad_type=pad_type, bias=True
        )
        # every tap encode_taps can return, in forward order (module docstring)
        self.tap_names: tuple[str, ...] = (
            "stem.pad",
            "stem",
            *(f"down{i}{part}" for i in range(1, n_downsampling + 1) for part in (".conv", "")),
            *(f"block{j}" for j in range(1, n_blocks + 1)),
        )

    def _encode(self, x: torch.Tensor, taps: Sequence[str] = ()) -> tuple[torch.Tensor, Moments, dict]:
        """Run stem, down stages and residual blocks on the padded ``x (N, C_in, H, W)``.

        Returns ``(h, moments, feats)``: the blocks' output, the PONO moments of every level
        (shallow first; empty with ``shortcut=None``) and ``feats[name]`` for each name in ``taps``.
        With ``taps`` it returns as soon as the last one is computed (``h`` is then that tap).
        Each stage's parts run here one by one (not ``ConvNormAct.forward``) so the conv output
        before PONO and norm can be tapped; the result is the same computation.
        """
        wanted = set(taps)
        feats: dict[str, torch.Tensor] = {}
        moments: Moments = []

        def keep(name: str, h: torch.Tensor) -> bool:
            """Record ``h`` if it is a wanted tap; True once every wanted tap is recorded."""
            if name in wanted:
                feats[name] = h
            return bool(wanted) and len(feats) == len(wanted)

        h = self.stem.pad(x)
        if keep("stem.pad", h):
            return h, moments, feats
        h = self.stem.act(self.stem.norm(self.stem.conv(h)))
        if keep("stem", h):
            return h, moments, feats
        for i, down in enumerate(self.downs, start=1):
            h = down.conv(down.pad(h))
            if keep(f"down{i}.conv", h):
                return h, moments, feats
            if down.pono is not None:
                h, mean, std = down.pono(h)
                moments.append((mean, std))
            h = down.act(down.norm(h))
            if self.down_blurs is not None:
                h = self.down_blurs[i - 1](h)
            if keep(f"down{i}", h):
                return h, moments, feats
        for j, block in enumerate(self.blocks, start=1):
            h = block(h)
            if keep(f"block{j}", h):
                return h, moments, feats
        return h, moments, feats

    def encode_taps(self, x: torch.Tensor, taps: Sequence[str]) -> dict[str, torch.Tensor]:
        """Encoder features of ``x (N, C_in, H, W)`` at the named ``taps`` (see ``tap_names``):
        ``{name: (N, C, h, w)}`` in the order of ``taps``, on the input padded to ``stride``.

        Runs only as far as the last tap in forward order. The taps are the tensors ``forward``
        computes, before PONO where a stage has it, so ``shortcut=None`` gives CUT's features.
        """
        unknown = [name for name in taps if name not in self.tap_names]
        if unknown or not taps or len(set(taps)) != len(taps):
            raise ValueError(
                f"encode_taps needs distinct tap names from: {', '.join(self.tap_names)}; got {list(taps)}"
            )
        x, _ = pad_to_multiple(x, self.stride)
        feats = self._encode(x, taps)[2]
        return {name: feats[name] for name in taps}

    def extract_moments(self, x: torch.Tensor) -> Moments:
        """PONO moments ``(mean, std)``, each ``(N, 1, h, w)``, of every encoder level, shallow first
        (on the padded input); an empty list with ``shortcut=None``."""
        x, _ = pad_to_multiple(x, self.stride)
        return self._encode(x, (f"down{len(self.downs)}",))[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, size = pad_to_multiple(x, self.stride)
        h, moments, _ = self._encode(x)
        for i, up in enumerate(self.ups):
            k = len(self.ups) - 1 - i  # deepest first
            if self.shortcut_after_up:
                h = torch.relu(self.shortcuts[k](up(h), *moments[k]))
                continue
            if self.up_blurs is not None:
                h = self.up_blurs[i](h)
            if self.shortcuts is not None:
                h = self.shortcuts[k](h, *moments[k])
            h = up(h)
        return crop_to(self.head(h), size)


def _check_antialias(shortcut: str | None, layout: str, antialias: bool, antialias_up: bool) -> None:
    """PONO with anti-aliasing is defined for both options on, in the ponogan layout only."""
    if shortcut is None or not (antialias or antialias_up):
        return
    if antialias != antialias_up:
        raise ValueError(
            f"shortcut={shortcut!r} with anti-aliasing needs antialias and antialias_up both on "
            f"(got antialias={antialias}, antialias_up={antialias_up}): only then do the PONO moments "
            "and the decoder meet at the same resolutions"
        )
    if layout == "official":
        raise ValueError(
            "layout='official' is the official PONO code, which has no anti-aliasing; "
            "use layout='ponogan' with antialias"
        )
