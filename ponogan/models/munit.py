"""MUNIT (Huang et al., 2018) auto-encoder with PONO + Moment Shortcut (Li et al., 2019).

One ``MunitGenerator`` per domain. For ``x (N, C, H, W)`` with MUNIT's defaults (dim 64, 2
downsamplings, H and W padded at the bottom/right to a multiple of 4)::

    content encoder  conv7 -> [PONO: m0] -> IN -> relu           (N, 64, H, W)
                     conv4/2 -> [PONO: m1] -> IN -> relu         (N, 128, H/2, W/2)
                     conv4/2 -> [PONO: m2] -> IN -> relu         (N, 256, H/4, W/4)
                     4 x ResBlock(IN)                            content (N, 256, H/4, W/4)
    style encoder    conv7, 2 x conv4/2 doubling, 2 x conv4/2, global avg pool, conv1x1
                                                                 style (N, 8, 1, 1)
    MLP              style (N, 8) -> 256 -> 256 -> AdaIN params   (N, 4 * 2 * 2 * 256)
    decoder          4 x AdaINResBlock -> [MS/DMS m2]            (N, 256, H/4, W/4)
                     nearest x2 -> conv5 -> LayerNorm -> relu -> [MS/DMS m1]   (N, 128, H/2, W/2)
                     nearest x2 -> conv5 -> LayerNorm -> relu -> [MS/DMS m0]   (N, 64, H, W)
                     conv7 -> tanh                               (N, C, H, W)

Moments and AdaIN parameters are plain arguments and return values: the same content can be decoded
with any number of styles, and with another image's moments. NOTE: MUNIT's own LayerNorm divides by
(unbiased std + eps); ``LayerNormCHW`` uses the standard ``sqrt(var + eps)``.

``layout="official"`` (with ``shortcut="ms"``) is the official PONO-MUNIT fork (Boyiliee/PONO,
``pytorch-MUNIT-PONO-MS``): PONO divides by C - 1, the content encoder's instance norms have affine
parameters, and the decoder is :class:`OfficialDecoder`::

    4 x AdaINResBlock                                              (N, 256, H/4, W/4)
    conv5 -> LN (no affine) -> MS m2 -> relu -> nearest x2         (N, 128, H/2, W/2)
    conv5 -> LN (no affine) -> MS m1 -> relu -> nearest x2         (N, 64, H, W)
    conv3 -> LN (no affine) -> MS m0 -> relu                       (N, 64, H, W)
    conv7 -> tanh                                                  (N, C, H, W)

with MUNIT's own LayerNorm formula. The fork also builds a ``stat_convs`` net (75,200 parameters)
that its forward never uses; it is left out here. The official trainer sums the moment L1s into the
content reconstruction loss (see ``ponogan.training``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ponogan.models.layers import (
    AdaINResBlock,
    ConvNormAct,
    ResBlock,
    check_layout,
    check_shortcut,
    crop_to,
    make_activation,
    make_shortcut,
    pad_to_multiple,
)
from ponogan.norm import Moments


class ContentEncoder(nn.Module):
    """``x (N, C, H, W) -> (content (N, dim * 2**n_down, H / 2**n_down, W / 2**n_down), moments)``;
    with ``pono=True`` PONO follows the conv7 and each downsampling conv (before IN) and
    ``moments`` lists their ``(mean, std)``, shallow first; otherwise it is empty."""

    def __init__(
        self,
        in_channels: int,
        dim: int,
        n_downsample: int,
        n_res: int,
        *,
        pono: bool,
        activation: str,
        pad_type: str,
        official: bool = False,
    ):
        super().__init__()
        # official PONO-MUNIT: affine instance norms, PONO over C - 1
        norm = dict(norm="instance", norm_kwargs={"affine": True} if official else None)
        opts = dict(
            activation=activation, pad_type=pad_type, bias=True, pono=pono, pono_unbiased=official, **norm
        )
        layers = [ConvNormAct(in_channels, dim, 7, 1, 3, **opts)]
        layers += [ConvNormAct(dim * 2**i, dim * 2 ** (i + 1), 4, 2, 1, **opts) for i in range(n_downsample)]
        self.convs = nn.ModuleList(layers)
        self.pono = pono
        self.out_channels = dim * 2**n_downsample
        self.blocks = nn.Sequential(
            *(
                ResBlock(self.out_channels, activation=activation, pad_type=pad_type, bias=True, **norm)
                for _ in range(n_res)
            )
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, Moments]:
        moments: Moments = []
        h = x
        for conv in self.convs:
            if self.pono:
                h, mean, std = conv(h)
                moments.append((mean, std))
            else:
                h = conv(h)
        return self.blocks(h), moments


class StyleEncoder(nn.Module):
    """``x (N, C, H, W) -> style (N, style_dim, 1, 1)``: conv7, ``n_downsample`` stride-2 convs
    (doubling the width for the first two), global average pooling, 1x1 conv. No normalization
    (it would remove the style)."""

    def __init__(
        self,
        in_channels: int,
        dim: int,
        style_dim: int,
        n_downsample: int = 4,
        *,
        activation: str,
        pad_type: str,
    ):
        super().__init__()
        opts = dict(norm="none", activation=activation, pad_type=pad_type, bias=True)
        layers = [ConvNormAct(in_channels, dim, 7, 1, 3, **opts)]
        for i in range(n_downsample):
            width = dim * 2 ** min(i + 1, 2)
            layers.append(ConvNormAct(dim * 2 ** min(i, 2), width, 4, 2, 1, **opts))
        self.convs = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.proj = nn.Conv2d(dim * 2 ** min(n_downsample, 2), style_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.pool(self.convs(x)))


class StyleMLP(nn.Module):
    """``style (N, style_dim, 1, 1) -> AdaIN parameters (N, out_features)``: ``n_layers`` linear
    layers with activations between them (none after the last)."""

    def __init__(self, style_dim: int, out_features: int, hidden: int, n_layers: int = 3, *, activation: str):
        super().__init__()
        widths = [style_dim] + [hidden] * (n_layers - 1) + [out_features]
        layers: list[nn.Module] = []
        for i in range(n_layers):
            layers.append(nn.Linear(widths[i], widths[i + 1]))
            if i < n_layers - 1:
                layers.append(make_activation(activation))
        self.net = nn.Sequential(*layers)

    def forward(self, style: torch.Tensor) -> torch.Tensor:
        return self.net(style.flatten(1))


class _Upsample(nn.Module):
    """``nearest x2 -> conv5 -> LayerNorm -> act``: ``(N, C, h, w) -> (N, C/2, 2h, 2w)``."""

    def __init__(self, channels: int, *, activation: str, pad_type: str):
        super().__init__()
        self.conv = ConvNormAct(
            channels,
            channels // 2,
            5,
            1,
            2,
            norm="layer",
            activation=activation,
            pad_type=pad_type,
            bias=True,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class Decoder(nn.Module):
    """``(content (N, C, h, w), moments, adain_params (N, P)) -> image (N, out, h * 2**n_up, ...)``.

    With a shortcut, MS/DMS re-injects the moments, deepest first, each where the decoder is back at
    their resolution: after the AdaIN residual blocks and after every upsampling stage.
    """

    def __init__(
        self,
        channels: int,
        out_channels: int,
        n_upsample: int,
        n_res: int,
        *,
        shortcut: str | None,
        activation: str,
        pad_type: str,
    ):
        super().__init__()
        self.blocks = nn.ModuleList(
            AdaINResBlock(channels, activation=activation, pad_type=pad_type) for _ in range(n_res)
        )
        widths = [channels // 2**i for i in range(n_upsample + 1)]
        self.ups = nn.ModuleList(_Upsample(c, activation=activation, pad_type=pad_type) for c in widths[:-1])
        # shortcuts[k] re-injects content level k's moments (width channels / 2**(n_upsample - k))
        self.shortcuts = (
            nn.ModuleList(make_shortcut(shortcut, c) for c in reversed(widths)) if shortcut else None
        )
        self.head = ConvNormAct(
            widths[-1], out_channels, 7, 1, 3, norm="none", activation="tanh", pad_type=pad_type, bias=True
        )

    @property
    def num_adain_params(self) -> int:
        return sum(block.num_adain_params for block in self.blocks)

    def _shortcut(self, i: int, h: torch.Tensor, moments: Moments) -> torch.Tensor:
        """MS/DMS at decoder stage ``i`` (0 = deepest) with the moments of the matching level."""
        if self.shortcuts is None:
            return h
        k = len(self.shortcuts) - 1 - i
        mean, std = moments[k]
        if mean.shape[-2:] != h.shape[-2:]:
            raise ValueError(
                f"moments of size {tuple(mean.shape[-2:])} do not match the decoder feature "
                f"{tuple(h.shape[-2:])}: decode content and moments from the same image size"
            )
        return self.shortcuts[k](h, mean, std)

    def forward(self, content: torch.Tensor, moments: Moments, adain_params: torch.Tensor) -> torch.Tensor:
        h = content
        for block, params in zip(
            self.blocks, adain_params.split(self.blocks[0].num_adain_params, 1), strict=True
        ):
            h = block(h, params)
        h = self._shortcut(0, h, moments)
        for i, up in enumerate(self.ups):
            h = self._shortcut(i + 1, up(h), moments)
        return self.head(h)


class _ConvNormShortcutAct(nn.Module):
    """``pad -> conv -> LN (no affine, MUNIT's formula) -> MS -> act``: the official PONO-MUNIT
    decoder stage; ``forward(x, mean, std)`` with moments at the conv output's resolution."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, *, activation: str, pad_type: str
    ):
        super().__init__()
        self.conv = ConvNormAct(
            in_channels,
            out_channels,
            kernel_size,
            1,
            kernel_size // 2,
            norm="layer",
            norm_kwargs={"affine": False, "munit_std": True},
            activation="none",
            pad_type=pad_type,
            bias=True,
        )
        self.shortcut = make_shortcut("ms", out_channels)
        self.act = make_activation(activation)

    def forward(self, x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        if mean.shape[-2:] != h.shape[-2:]:
            raise ValueError(
                f"moments of size {tuple(mean.shape[-2:])} do not match the decoder feature "
                f"{tuple(h.shape[-2:])}: decode content and moments from the same image size"
            )
        return self.act(self.shortcut(h, mean, std))


def _drop_shortcut_aliases(
    module: nn.Module, state_dict: dict, prefix: str, local_metadata, strict, missing, unexpected, errors
) -> None:
    """Load hook of :class:`OfficialDecoder`: read state dicts that list every stage twice.

    The decoder once registered its stages also as ``shortcuts``, so its state dicts (``torch.save`` of
    ``state_dict()``) carry ``shortcuts.K...`` copies of ``stages.K...``. A copy equal to its stage
    entry is dropped, a lone copy is renamed to the stage key; a copy that differs is an error,
    since the file then does not come from one network.
    """
    alias, own = prefix + "shortcuts.", prefix + "stages."
    for key in [k for k in state_dict if k.startswith(alias)]:
        value = state_dict.pop(key)
        target = own + key[len(alias) :]
        if target not in state_dict:
            state_dict[target] = value
        elif not torch.equal(state_dict[target], value):
            errors.append(f"{key} differs from {target}, the same weight in this decoder")


class OfficialDecoder(nn.Module):
    """The official PONO-MUNIT decoder (module docstring): ``(content, moments, adain_params) -> image``.

    ``moments`` are the content encoder's, shallow first; stage ``i`` (0 = deepest) re-injects
    level ``n_upsample - i`` at its conv's output resolution, then upsamples (all but the last stage).
    """

    def __init__(
        self, channels: int, out_channels: int, n_upsample: int, n_res: int, *, activation: str, pad_type: str
    ):
        super().__init__()
        self.blocks = nn.ModuleList(
            AdaINResBlock(channels, activation=activation, pad_type=pad_type) for _ in range(n_res)
        )
        widths = [channels // 2**i for i in range(n_upsample + 1)]
        opts = dict(activation=activation, pad_type=pad_type)
        stages = [_ConvNormShortcutAct(c, c // 2, 5, **opts) for c in widths[:-1]]
        stages.append(_ConvNormShortcutAct(widths[-1], widths[-1], 3, **opts))
        self.stages = nn.ModuleList(stages)
        self.head = ConvNormAct(
            widths[-1], out_channels, 7, 1, 3, norm="none", activation="tanh", pad_type=pad_type, bias=True
        )
        self.register_load_state_dict_pre_hook(_drop_shortcut_aliases)

    @property
    def shortcuts(self) -> nn.ModuleList:
        """One MS per moment level, as ``Decoder.shortcuts``: the stages themselves.

        A property rather than a second attribute, so every weight is registered (and saved) once:
        safetensors refuses tensors that share memory under two names.
        """
        return self.stages

    @property
    def num_adain_params(self) -> int:
        return sum(block.num_adain_params for block in self.blocks)

    def forward(self, content: torch.Tensor, moments: Moments, adain_params: torch.Tensor) -> torch.Tensor:
        h = content
        for block, params in zip(
            self.blocks, adain_params.split(self.blocks[0].num_adain_params, 1), strict=True
        ):
            h = block(h, params)
        last = len(self.stages) - 1
        for i, stage in enumerate(self.stages):
            h = stage(h, *moments[last - i])
            if i < last:
                h = F.interpolate(h, scale_factor=2, mode="nearest")
        return self.head(h)


class MunitGenerator(nn.Module):
    """MUNIT auto-encoder for one domain, with PONO-MS by default.

    ``encode(x) -> (content, moments, style)``, ``decode(content, moments, style) -> image``,
    ``forward(x)`` reconstructs ``x``. Translation A -> B: ``gen_b.decode(*gen_a.encode(x)[:2], s_b)``
    with ``s_b`` random (``gen_b.random_style(n)``, multimodal) or ``gen_b.encode(ref)[2]``
    (example-guided). ``shortcut=None`` is plain MUNIT (``moments`` is then an empty list).

    Sizes: ``encode`` pads H and W at the bottom/right to a multiple of ``2**n_downsample``;
    ``decode(..., size=(H, W))`` crops the image back (``forward`` does it for you).

    ``layout``: ``"ponogan"`` (the decoder above) or ``"official"`` (the PONO-MUNIT fork's decoder,
    module docstring; ``shortcut="ms"`` only, as the fork has no DMS).
    """

    def __init__(
        self,
        in_channels: int = 3,
        dim: int = 64,
        style_dim: int = 8,
        n_downsample: int = 2,
        n_res: int = 4,
        mlp_dim: int = 256,
        shortcut: str | None = "ms",
        *,
        layout: str = "ponogan",
        activation: str = "relu",
        pad_type: str = "reflect",
        style_downsample: int = 4,
    ):
        super().__init__()
        check_shortcut(shortcut)
        check_layout(layout)
        official = layout == "official" and shortcut is not None
        if official and shortcut != "ms":
            raise ValueError(
                f"the official PONO-MUNIT has no {shortcut!r} shortcut: use shortcut='ms' with "
                "layout='official', or layout='ponogan'"
            )
        make_activation(activation)
        self.shortcut = shortcut
        self.style_dim = style_dim
        self.stride = 2**n_downsample
        self.style_stride = 2**style_downsample
        self.style_encoder = StyleEncoder(
            in_channels, dim, style_dim, style_downsample, activation=activation, pad_type=pad_type
        )
        self.content_encoder = ContentEncoder(
            in_channels,
            dim,
            n_downsample,
            n_res,
            pono=shortcut is not None,
            activation=activation,
            pad_type=pad_type,
            official=official,
        )
        if official:
            self.decoder = OfficialDecoder(
                self.content_encoder.out_channels,
                in_channels,
                n_downsample,
                n_res,
                activation=activation,
                pad_type=pad_type,
            )
        else:
            self.decoder = Decoder(
                self.content_encoder.out_channels,
                in_channels,
                n_downsample,
                n_res,
                shortcut=shortcut,
                activation=activation,
                pad_type=pad_type,
            )
        self.mlp = StyleMLP(style_dim, self.decoder.num_adain_params, mlp_dim, activation=activation)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, Moments, torch.Tensor]:
        """``x (N, C, H, W) -> (content (N, 4 * dim, H/4, W/4), moments, style (N, style_dim, 1, 1))``
        (for 2 downsamplings; H, W rounded up to a multiple of 4)."""
        content, moments = self.content_encoder(pad_to_multiple(x, self.stride)[0])
        # the style path pads to its own (larger) stride so tiny images survive its reflect pads
        style = self.style_encoder(pad_to_multiple(x, self.style_stride)[0])
        return content, moments, style

    def decode(
        self,
        content: torch.Tensor,
        moments: Moments,
        style: torch.Tensor,
        *,
        size: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """``(content, moments, style (N, style_dim, 1, 1)) -> image (N, C, H, W)`` in ``[-1, 1]``,
        cropped to ``size`` when given."""
        expected = len(self.decoder.shortcuts) if self.decoder.shortcuts is not None else 0
        if self.decoder.shortcuts is not None and len(moments) != expected:
            raise ValueError(
                f"this decoder re-injects {expected} PONO moments, got {len(moments)}: "
                "pass the moments from encode() of a generator with the same shortcut"
            )
        if style.dim() == 2:
            style = style[:, :, None, None]
        if style.shape[1:] != (self.style_dim, 1, 1) or style.shape[0] != content.shape[0]:
            raise ValueError(
                f"style must be ({content.shape[0]}, {self.style_dim}, 1, 1), got {tuple(style.shape)}"
            )
        image = self.decoder(content, moments, self.mlp(style))
        return crop_to(image, size) if size is not None else image

    def random_style(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` style codes from the prior N(0, I): ``(n, style_dim, 1, 1)`` on the model's device."""
        p = next(self.parameters())
        z = torch.randn(
            n,
            self.style_dim,
            1,
            1,
            generator=generator,
            device=p.device if generator is None else generator.device,
        )
        return z.to(device=p.device, dtype=p.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        content, moments, style = self.encode(x)
        return self.decode(content, moments, style, size=x.shape[-2:])
