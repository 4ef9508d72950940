"""DRIT (Lee et al., ECCV 2018) with optional PONO-MS, as the PONO paper's DRIT fork builds it.

Encoders and generators; the discriminators are in :mod:`ponogan.models.drit_discriminators`.

- :class:`DritContentEncoder`: per domain conv7 (LeakyReLU 0.01, no norm) -> two conv3/2
  (IN, ReLU) -> 3 residual blocks, then one residual block and Gaussian noise (training only)
  shared by both domains. With ``pono=True`` PONO (unbiased, eps 1e-5) follows each of the three
  convs and the moments ``m0 (H), m1 (H/2), m2 (H/4)`` come out beside the content ``(N, 256, H/4, W/4)``.
- :class:`DritAttributeEncoder` (``concat 0``): MUNIT's style-encoder topology without norm, an
  8-d code; :class:`DritVariationalAttributeEncoder` (``concat 1``): residual blocks with mean
  pooling and two linear heads (mu, logvar).
- :class:`DritGenerator` (``concat 0``): an MLP turns the code into four 256-d codes, one per
  :class:`MisINSResBlock`, then two ConvT + LayerNorm + ReLU up-samplings and a 1x1 ConvT with tanh.
  :class:`DritConcatGenerator` (``concat 1``) concatenates the code to the features before every
  stage instead. With moments, MS puts ``m2`` back on the residual output, ``m1`` after the first
  up-sampling and ``m0`` after the second, each right before the next (transposed) conv.

:func:`init_drit_` draws every conv weight from N(0, 0.02) as the original DRIT does.

Widths: ``dim`` (64 in the fork) is the first conv's width; the content code has ``4 * dim``
channels, the attribute encoders widen ``dim -> 4 * dim``, the generators narrow ``4 * dim -> dim``,
and the generator's MLP is ``4 * dim`` wide. ``n_res`` (3) is the number of per-domain residual blocks
of the content encoder (and of the ``concat 1`` generator). The defaults are the fork's networks and
parameter counts; smaller values give the same topology for quick runs and tests.
"""

from __future__ import annotations

import torch
from torch import nn

from ponogan.models.layers import ResBlock, crop_to, pad_to_multiple
from ponogan.norm import PONO, LayerNormCHW, MomentShortcut

Moments = list[tuple[torch.Tensor, torch.Tensor]]

ATTRIBUTE_DIM = 8


class GaussianNoise(nn.Module):
    """Adds N(0, 1) noise in training mode (a regulariser on the shared content code); identity in eval."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.randn_like(x) if self.training else x


class DritDownConv(nn.Module):
    """``reflect pad -> conv -> [PONO] -> [IN] -> activation`` on ``(N, C_in, H, W)``.

    ``forward`` returns ``(y, mean, std)`` with PONO (moments ``(N, 1, H', W')``), ``(y, None, None)``
    without, so the content encoder treats both alike.
    """

    def __init__(
        self, cin: int, cout: int, kernel: int, stride: int, *, instance_norm: bool, slope: float, pono: bool
    ):
        super().__init__()
        self.pad = nn.ReflectionPad2d(kernel // 2)
        self.conv = nn.Conv2d(cin, cout, kernel, stride)
        self.pono = PONO(unbiased=True) if pono else None
        self.norm = nn.InstanceNorm2d(cout) if instance_norm else nn.Identity()
        self.act = nn.LeakyReLU(slope) if slope else nn.ReLU()

    def forward(self, x: torch.Tensor):
        y = self.conv(self.pad(x))
        mean = std = None
        if self.pono is not None:
            y, mean, std = self.pono(y)
        return self.act(self.norm(y)), mean, std


class _DomainContentEncoder(nn.Module):
    """One domain's part of the content encoder: ``(N, C, H, W) -> (N, 4 dim, H/4, W/4)`` + moments."""

    def __init__(self, in_channels: int, pono: bool, dim: int = 64, n_res: int = 3):
        super().__init__()
        self.down = nn.ModuleList(
            [
                DritDownConv(in_channels, dim, 7, 1, instance_norm=False, slope=0.01, pono=pono),
                DritDownConv(dim, 2 * dim, 3, 2, instance_norm=True, slope=0.0, pono=pono),
                DritDownConv(2 * dim, 4 * dim, 3, 2, instance_norm=True, slope=0.0, pono=pono),
            ]
        )
        self.res = nn.Sequential(*[ResBlock(4 * dim, norm="instance") for _ in range(n_res)])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, Moments]:
        moments: Moments = []
        for layer in self.down:
            x, mean, std = layer(x)
            if mean is not None:
                moments.append((mean, std))
        return self.res(x), moments


class DritContentEncoder(nn.Module):
    """Both domains' content encoders and their shared last block.

    ``forward(x (N, C, H, W), domain "a" | "b") -> (content (N, 4 dim, H/4, W/4), moments)``; the
    moments are ``[(m0, s0), (m1, s1), (m2, s2)]`` at H, H/2, H/4 with ``pono=True``, else ``[]``.
    """

    def __init__(self, in_a: int = 3, in_b: int = 3, *, pono: bool = False, dim: int = 64, n_res: int = 3):
        super().__init__()
        self.pono = pono
        self.channels = 4 * dim
        self.a = _DomainContentEncoder(in_a, pono, dim, n_res)
        self.b = _DomainContentEncoder(in_b, pono, dim, n_res)
        self.share = nn.Sequential(ResBlock(4 * dim, norm="instance"), GaussianNoise())

    def forward(self, x: torch.Tensor, domain: str) -> tuple[torch.Tensor, Moments]:
        if domain not in ("a", "b"):
            raise ValueError(f"unknown domain {domain!r}; valid values: a, b")
        content, moments = (self.a if domain == "a" else self.b)(x)
        return self.share(content), moments


class DritAttributeEncoder(nn.Module):
    """``concat 0``: ``(N, C, H, W) -> (N, 8)``; conv7 then four conv4/2 (reflect pad, ReLU, no
    norm), global average pooling and a 1x1 conv (MUNIT's style encoder without its norm)."""

    variational = False

    def __init__(self, in_channels: int = 3, code_dim: int = ATTRIBUTE_DIM, *, dim: int = 64):
        super().__init__()
        widths = [dim, 2 * dim, 4 * dim, 4 * dim, 4 * dim]
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, widths[0], 7), nn.ReLU()]
        for cin, cout in zip(widths[:-1], widths[1:], strict=True):
            layers += [nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 4, 2), nn.ReLU()]
        layers += [nn.AdaptiveAvgPool2d(1), nn.Conv2d(widths[-1], code_dim, 1)]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).flatten(1)


class MeanPoolBlock(nn.Module):
    """``lrelu -> conv3 -> lrelu -> conv3 -> avgpool2`` plus ``avgpool2 -> conv1x1`` shortcut:
    ``(N, C_in, H, W) -> (N, C_out, H/2, W/2)`` (the VAE attribute encoder's block, no norm)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Sequential(
            nn.LeakyReLU(0.2),
            nn.ReflectionPad2d(1),
            nn.Conv2d(cin, cin, 3),
            nn.LeakyReLU(0.2),
            nn.ReflectionPad2d(1),
            nn.Conv2d(cin, cout, 3),
            nn.AvgPool2d(2),
        )
        self.shortcut = nn.Sequential(nn.AvgPool2d(2), nn.Conv2d(cin, cout, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + self.shortcut(x)


class DritVariationalAttributeEncoder(nn.Module):
    """``concat 1``: ``(N, C, H, W) -> (mu (N, 8), logvar (N, 8))``; conv4/2 then three
    :class:`MeanPoolBlock` (64 -> 128 -> 192 -> 256), LeakyReLU, global average pooling, two heads."""

    variational = True

    def __init__(self, in_channels: int = 3, code_dim: int = ATTRIBUTE_DIM, *, dim: int = 64):
        super().__init__()
        widths = [dim, 2 * dim, 3 * dim, 4 * dim]
        layers = [nn.ReflectionPad2d(1), nn.Conv2d(in_channels, widths[0], 4, 2)]
        layers += [MeanPoolBlock(cin, cout) for cin, cout in zip(widths[:-1], widths[1:], strict=True)]
        layers += [nn.LeakyReLU(0.2), nn.AdaptiveAvgPool2d(1)]
        self.conv = nn.Sequential(*layers)
        self.fc_mu = nn.Linear(widths[-1], code_dim)
        self.fc_logvar = nn.Linear(widths[-1], code_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.conv(x).flatten(1)
        return self.fc_mu(h), self.fc_logvar(h)


class MisINSResBlock(nn.Module):
    """Residual block conditioned on a code ``z (N, D)``: twice ``conv3 -> IN``, then two 1x1
    convs (ReLU after each) on ``cat(features, z broadcast)``; plus the input. ``(N, C, H, W)``."""

    def __init__(self, channels: int, code_dim: int):
        super().__init__()
        both = channels + code_dim
        self.conv1 = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels)
        )
        self.conv2 = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels)
        )
        self.blk1 = nn.Sequential(
            nn.Conv2d(both, both, 1), nn.ReLU(), nn.Conv2d(both, channels, 1), nn.ReLU()
        )
        self.blk2 = nn.Sequential(
            nn.Conv2d(both, both, 1), nn.ReLU(), nn.Conv2d(both, channels, 1), nn.ReLU()
        )

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        zmap = z[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])
        h = self.blk1(torch.cat([self.conv1(x), zmap], dim=1))
        h = self.blk2(torch.cat([self.conv2(h), zmap], dim=1))
        return x + h


def up_conv(cin: int, cout: int) -> nn.Sequential:
    """``ConvT3/2 -> LayerNorm over (C, H, W) with a per-channel affine -> ReLU``: doubles H and W."""
    return nn.Sequential(
        nn.ConvTranspose2d(cin, cout, 3, 2, 1, output_padding=1), LayerNormCHW(cout), nn.ReLU()
    )


def _apply_moments(x: torch.Tensor, moments: Moments | None, index: int, ms: MomentShortcut) -> torch.Tensor:
    """MS with ``moments[index]`` when moments are given, else ``x`` unchanged."""
    if not moments:
        return x
    mean, std = moments[index]
    return ms(x, mean, std)


def _check_moments(moments: Moments | None) -> None:
    if moments and len(moments) != 3:
        raise ValueError(f"DRIT's generator takes the content encoder's 3 moment pairs, got {len(moments)}")


class DritGenerator(nn.Module):
    """``concat 0``: ``forward(content (N, 256, h, w), z (N, 8), moments=None) -> (N, C, 4h, 4w)`` in
    [-1, 1]. ``moments`` (from a PONO content encoder) are put back by MS; ``None`` or ``[]`` skips MS."""

    def __init__(self, out_channels: int = 3, code_dim: int = ATTRIBUTE_DIM, *, dim: int = 64):
        super().__init__()
        ch = hidden = 4 * dim
        self.mlp = nn.Sequential(
            nn.Linear(code_dim, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 4 * ch),
        )
        self.res = nn.ModuleList([MisINSResBlock(ch, ch) for _ in range(4)])
        self.up = nn.ModuleList([up_conv(ch, ch // 2), up_conv(ch // 2, ch // 4)])
        self.out = nn.ConvTranspose2d(ch // 4, out_channels, 1)
        self.ms = MomentShortcut()

    def forward(self, content: torch.Tensor, z: torch.Tensor, moments: Moments | None = None) -> torch.Tensor:
        _check_moments(moments)
        codes = self.mlp(z).chunk(4, dim=1)
        x = content
        for block, code in zip(self.res, codes, strict=True):
            x = block(x, code)
        for i, up in enumerate(self.up):
            x = up(_apply_moments(x, moments, 2 - i, self.ms))
        return torch.tanh(self.out(_apply_moments(x, moments, 0, self.ms)))


class DritConcatGenerator(nn.Module):
    """``concat 1``: the code ``z (N, 8)`` broadcast and concatenated before every stage.

    ``shared`` is the residual block both domains' generators run first (pass the same module to
    both). Stages: shared block -> cat z -> 3 residual blocks (264 ch) -> cat z -> up (136) ->
    cat z -> up (72) -> cat z -> ConvT1x1 -> tanh; with moments MS follows each of the last three
    stages (m2, m1, m0), before z is concatenated.
    """

    def __init__(
        self,
        shared: nn.Module,
        out_channels: int = 3,
        code_dim: int = ATTRIBUTE_DIM,
        *,
        dim: int = 64,
        n_res: int = 3,
    ):
        super().__init__()
        self.code_dim = code_dim
        self.shared = shared
        ch = 4 * dim + code_dim
        self.res = nn.Sequential(*[ResBlock(ch, norm="instance") for _ in range(n_res)])
        ch1 = (ch + code_dim) // 2
        ch2 = (ch1 + code_dim) // 2
        self.up = nn.ModuleList([up_conv(ch + code_dim, ch1), up_conv(ch1 + code_dim, ch2)])
        self.out = nn.ConvTranspose2d(ch2 + code_dim, out_channels, 1)
        self.ms = MomentShortcut()

    @staticmethod
    def make_shared(dim: int = 64) -> nn.Module:
        """The residual block both domains' generators share, on the ``4 * dim`` content channels."""
        return ResBlock(4 * dim, norm="instance")

    def forward(self, content: torch.Tensor, z: torch.Tensor, moments: Moments | None = None) -> torch.Tensor:
        _check_moments(moments)

        def with_code(x: torch.Tensor) -> torch.Tensor:
            return torch.cat([x, z[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])], dim=1)

        x = _apply_moments(self.res(with_code(self.shared(content))), moments, 2, self.ms)
        for i, up in enumerate(self.up):
            x = _apply_moments(up(with_code(x)), moments, 1 - i, self.ms)
        return torch.tanh(self.out(with_code(x)))


def init_drit_(net: nn.Module, std: float = 0.02) -> nn.Module:
    """Original DRIT init: every ``Conv2d``/``ConvTranspose2d`` weight from N(0, std); biases and
    linear layers keep PyTorch's default. Returns ``net``."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, std)
    return net


_SHARED_A, _SHARED_B = "gen_a.shared.", "gen_b.shared."


def _drop_shared_copy(module: nn.Module, state_dict: dict, prefix: str, local_metadata: dict) -> None:
    """State-dict hook: leave out ``gen_b.shared.*``, the same tensors as ``gen_a.shared.*``."""
    for key in [k for k in state_dict if k.startswith(prefix + _SHARED_B)]:
        del state_dict[key]


def _restore_shared_copy(module: nn.Module, state_dict: dict, prefix: str, *args) -> None:
    """Load pre-hook: ``gen_b.shared.*`` from ``gen_a.shared.*`` (the one saved copy)."""
    for key in [k for k in state_dict if k.startswith(prefix + _SHARED_A)]:
        state_dict.setdefault(prefix + _SHARED_B + key[len(prefix + _SHARED_A) :], state_dict[key])


class DritTranslator(nn.Module):
    """DRIT's generator side: the content encoder, one attribute encoder and one generator per domain.

    ``shortcut=None``: plain DRIT; ``"ms"``: PONO in the content encoder and MS in both generators.
    ``concat=0``: :class:`DritAttributeEncoder` + :class:`DritGenerator`; ``concat=1``: the VAE encoder +
    :class:`DritConcatGenerator` (with their shared first block). Domain ``a`` has ``in_channels``
    channels, ``b`` has ``out_channels``. ``dim`` and ``n_res`` set the widths and depth (module
    docstring; the defaults are the fork's). ``forward(x)`` translates A -> B with a random code
    ``N(0, I)``; training and inference call the parts (``encode_content``, ``encode_attribute``,
    ``decode``); :class:`DritDomainView` gives one domain MUNIT's ``encode`` / ``decode`` interface.
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        shortcut: str | None = None,
        concat: int = 0,
        attribute_dim: int = ATTRIBUTE_DIM,
        dim: int = 64,
        n_res: int = 3,
    ):
        super().__init__()
        if shortcut not in (None, "ms"):
            raise ValueError(f"DRIT takes shortcut null or 'ms', got {shortcut!r}")
        if concat not in (0, 1):
            raise ValueError(f"DRIT's concat must be 0 or 1, got {concat!r}")
        self.attribute_dim = attribute_dim
        self.concat = concat
        self.with_moments = shortcut == "ms"
        self.channels = {"a": in_channels, "b": out_channels}
        self.enc_c = DritContentEncoder(
            in_channels, out_channels, pono=self.with_moments, dim=dim, n_res=n_res
        )
        self.content_channels = self.enc_c.channels
        encoder = DritVariationalAttributeEncoder if concat else DritAttributeEncoder
        self.enc_a_a = encoder(in_channels, attribute_dim, dim=dim)
        self.enc_a_b = encoder(out_channels, attribute_dim, dim=dim)
        if concat:
            shared = DritConcatGenerator.make_shared(dim)
            self.gen_a = DritConcatGenerator(shared, in_channels, attribute_dim, dim=dim, n_res=n_res)
            self.gen_b = DritConcatGenerator(shared, out_channels, attribute_dim, dim=dim, n_res=n_res)
            # the shared block is saved once, under gen_a (safetensors refuses tensors stored twice)
            self.register_state_dict_post_hook(_drop_shared_copy)
            self.register_load_state_dict_pre_hook(_restore_shared_copy)
        else:
            self.gen_a = DritGenerator(in_channels, attribute_dim, dim=dim)
            self.gen_b = DritGenerator(out_channels, attribute_dim, dim=dim)

    def encode_content(self, x: torch.Tensor, domain: str) -> tuple[torch.Tensor, Moments]:
        return self.enc_c(x, domain)

    def encode_attribute(self, x: torch.Tensor, domain: str, *, sample: bool = True):
        """``(z, mu, logvar)`` of ``x (N, C, H, W)``, each ``(N, attribute_dim)``; ``mu``/``logvar`` are
        ``None`` for ``concat 0`` (``z`` is the code). ``concat 1`` draws ``z = mu + eps * exp(logvar / 2)``
        when ``sample``, else returns ``z = mu``."""
        encoder = self.enc_a_a if domain == "a" else self.enc_a_b
        if not encoder.variational:
            return encoder(x), None, None
        mu, logvar = encoder(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if sample else mu
        return z, mu, logvar

    def decode(self, content: torch.Tensor, z: torch.Tensor, moments: Moments, domain: str) -> torch.Tensor:
        """An image of ``domain`` from content ``(N, 4 dim, h, w)``, code ``(N, D)`` and the moments
        (ignored without the shortcut)."""
        return (self.gen_a if domain == "a" else self.gen_b)(
            content, z, moments if self.with_moments else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        content, moments = self.encode_content(x, "a")
        z = torch.randn(x.shape[0], self.attribute_dim, device=x.device, dtype=x.dtype)
        return self.decode(content, z, moments, "b")


class DritDomainView(nn.Module):
    """One domain of a :class:`DritTranslator` behind MUNIT's auto-encoder interface (the pipeline's
    and the export's multimodal path), sharing the translator's parameters.

    - ``encode(x (N, C, H, W)) -> (content (N, 4 dim, H/4, W/4), moments, code (N, D, 1, 1))``: the
      content and moments of this domain's content encoder (``x`` padded to ``stride``) and this
      domain's attribute code (``x`` padded to ``style_stride``; ``concat 1``: the posterior mean).
    - ``decode(content, moments, code (N, D, 1, 1), size=None) -> (N, C, 4h, 4w)``: this domain's
      generator with the moments (MS), cropped to ``size = (H, W)`` when given.
    - ``extract_moments(x)``: the moments of ``encode``.

    ``spec`` is the translator's with this domain's ``in_channels`` (what
    ``ponogan.inference.pipeline.image_channels`` reads); a view is never saved, its translator is.
    """

    stride = 4  # the content encoder's two stride-2 convs
    style_stride = 16  # the attribute encoders' four halvings (a 16 px side reaches 1 x 1)

    def __init__(self, translator: DritTranslator, domain: str):
        super().__init__()
        if domain not in ("a", "b"):
            raise ValueError(f"unknown domain {domain!r}; valid values: a, b")
        self.translator = translator
        self.domain = domain
        self.style_dim = translator.attribute_dim
        spec = getattr(translator, "spec", {"name": "drit", "kwargs": {}})
        self.spec = {**spec, "kwargs": {**spec["kwargs"], "in_channels": translator.channels[domain]}}

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, Moments, torch.Tensor]:
        content, moments = self.translator.encode_content(pad_to_multiple(x, self.stride)[0], self.domain)
        code = self.translator.encode_attribute(
            pad_to_multiple(x, self.style_stride)[0], self.domain, sample=False
        )[0]
        return content, moments, code[:, :, None, None]

    def decode(
        self,
        content: torch.Tensor,
        moments: Moments,
        code: torch.Tensor,
        size: tuple[int, int] | torch.Size | None = None,
    ) -> torch.Tensor:
        if code.dim() != 4 or code.shape[1:] != (self.style_dim, 1, 1) or code.shape[0] != content.shape[0]:
            raise ValueError(
                f"the attribute code must be ({content.shape[0]}, {self.style_dim}, 1, 1), "
                f"got {tuple(code.shape)}"
            )
        image = self.translator.decode(content, code.flatten(1), moments, self.domain)
        return crop_to(image, size) if size is not None else image

    def extract_moments(self, x: torch.Tensor) -> Moments:
        return self.translator.encode_content(pad_to_multiple(x, self.stride)[0], self.domain)[1]
