"""CUT and FastCUT (Park et al., ECCV 2020): one generator, PatchNCE instead of a cycle.

Nets: ``G`` (A -> B, the anti-aliased CycleGAN ResNet), ``D`` (judges domain B, the anti-aliased
70x70 PatchGAN) and, for training only, ``F`` (``PatchSampleF``: the per-tap projection MLPs of the
PatchNCE loss). ``F``'s channel counts are those of G's taps, so it is built on the first batch, as
in the official code, with its own Adam; its weights, its optimizer state and the patch-position /
flip generator live in the trainer's extra state (``rank_<i>.pt``), so a resume continues exactly.
``model.safetensors`` holds ``G`` only: inference needs nothing else.

Modes (``loss.mode``, the official ``--CUT_mode``): ``cut``: ``nce`` 1 and ``nce_idt`` on (the NCE
of ``B`` and ``G(B)`` too, both terms averaged); ``fastcut``: ``nce`` 10, no ``nce_idt``, flip
equivariance (with probability 0.5 the input batch is flipped before G and the query features are
flipped back before F). A loss field left at ``null`` takes its mode's value.

PONO-MS (``model.shortcut: ms``) needs nothing here: the generator's taps sit before PONO, so the
NCE features are CUT's own and ``shortcut: null`` is plain CUT (docs/models.md, "CUT").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ponogan.families import Family, Route, register_family
from ponogan.families.base import Batch, FamilyTrainer, f32, set_requires_grad
from ponogan.models import create_generator
from ponogan.models.patch_sample import PatchSampleF
from ponogan.models.resnet import official_nce_taps
from ponogan.training.config import ConfigError
from ponogan.training.losses_nce import NCE_TEMPERATURE, cut_nce_loss

CUT_MODES = ("cut", "fastcut")
# each mode's values of the loss fields a config leaves at null (official cut_model.py defaults)
MODE_DEFAULTS: dict[str, dict[str, Any]] = {
    "cut": {"nce": 1.0, "nce_idt": True, "flip_equivariance": False},
    "fastcut": {"nce": 10.0, "nce_idt": False, "flip_equivariance": True},
}
F_WIDTH = 256
"""``--netF_nc``: the hidden and output width of F's MLPs."""
PATCH_SEED_OFFSET = 0x5EED_C07
"""Added to the run's seed for the generator of patch positions and flips (apart from torch's global RNG)."""


@dataclass
class CutLoss:
    """CUT's loss section (official flag in brackets).

    ``gan`` [lambda_GAN]: weight of G's GAN loss. ``nce`` [lambda_NCE]: weight of the PatchNCE
    loss, averaged over the taps. ``nce_idt``: add NCE(B, G(B)) and average it with NCE(A, G(A)).
    ``nce_layers``: G's encoder taps (``ResnetGenerator.tap_names``) the loss compares; the default
    is the official ``0,4,8,12,16`` of the anti-aliased ResNet-9 (``official_nce_taps``).
    ``nce_t`` [nce_T]: the temperature. ``num_patches``: positions drawn per tap.
    ``flip_equivariance``: FastCUT's random flip (module docstring). ``nce``, ``nce_idt`` and
    ``flip_equivariance`` of ``null`` take the ``mode``'s value (``MODE_DEFAULTS``).
    ``gan_mode``: LSGAN, as the official code; ``gp``: WGAN-GP weight (``gan_mode: wgangp`` only).
    """

    gan_mode: str = "lsgan"
    mode: str = "cut"
    gan: float = 1.0
    nce: float | None = None
    nce_idt: bool | None = None
    nce_layers: list = field(default_factory=lambda: list(official_nce_taps()))
    nce_t: float = NCE_TEMPERATURE
    num_patches: int = 256
    flip_equivariance: bool | None = None
    gp: float = 10.0

    def resolved(self, name: str) -> Any:
        """The value of ``name`` (``nce``, ``nce_idt``, ``flip_equivariance``): set, else the mode's."""
        value = getattr(self, name)
        return MODE_DEFAULTS[self.mode][name] if value is None else value

    @property
    def lambda_nce(self) -> float:
        return float(self.resolved("nce"))

    @property
    def use_nce_idt(self) -> bool:
        return bool(self.resolved("nce_idt")) and self.lambda_nce > 0

    @property
    def use_flip(self) -> bool:
        return bool(self.resolved("flip_equivariance"))


class CutTrainer(FamilyTrainer):
    """Nets ``G`` (A -> B) and ``D`` (judges B); ``F`` (``netF``) built on the first batch.

    Per step, as ``cut_model.py``: one forward ``G(real)`` of ``real = A`` (``[A; B]`` with
    ``nce_idt``; flipped along W with probability 0.5 under flip equivariance); a D step on
    ``gan / 2 * (GAN(D(B), real) + GAN(D(G(A)), fake))`` (the official D loss has no ``gan`` weight:
    ``gan`` is 1 in every official run); then, with D frozen, one backward of
    ``gan * GAN(D(G(A))) + NCE`` steps G and F. ``NCE`` is ``nce`` x PatchNCE(A, G(A)), averaged with
    ``nce`` x PatchNCE(B, G(B)) under ``nce_idt`` (logged as ``NCE`` and ``NCE_Y``, each halved then,
    so the logged terms add up to the loss). F's learning rate follows G's schedule (the official
    code schedules both from ``--lr``).
    """

    def build(self) -> None:
        super().build()  # G and D from the spec, their Adams
        init_type, gain = self.init_types[0], self.cfg.model.init_gain
        self.netF: nn.Module = PatchSampleF(nc=F_WIDTH, init_type=init_type, init_gain=gain)
        self.optimizer_F: Any = None
        seed = self.cfg.seed + PATCH_SEED_OFFSET + self.accelerator.process_index
        self.patch_rng = torch.Generator().manual_seed(seed)

    # ---- F, built on the first batch
    @property
    def f_is_built(self) -> bool:
        return self.accelerator.unwrap_model(self.netF).is_built

    def build_f(self, real_a: torch.Tensor) -> None:
        """Build F for the channel counts of G's taps on ``real_a (N, C, H, W)`` (initialised from
        torch's global RNG, as the official first batch), then its Adam; both accelerate-prepared."""
        with torch.no_grad():
            taps = self.unwrap("G").encode_taps(real_a[:1], self.loss_cfg.nce_layers)
        self.netF.build([t.shape[1] for t in taps.values()], device=self.accelerator.device)
        self._prepare_f()

    def _prepare_f(self) -> None:
        o = self.cfg.optim
        net = self.netF.to(self.accelerator.device)
        opt = torch.optim.Adam(
            net.parameters(), lr=o.lr_g, betas=(o.beta1, o.beta2), weight_decay=o.weight_decay
        )
        self.netF, self.optimizer_F = self.accelerator.prepare(net, opt)

    # ---- training
    def draw_flip(self) -> bool:
        """FastCUT's coin: True with probability 0.5 under flip equivariance (from ``patch_rng``)."""
        return self.loss_cfg.use_flip and bool(torch.rand((), generator=self.patch_rng) < 0.5)

    def step(self, batch: Batch) -> dict[str, float]:
        G, D = self.nets["G"], self.nets["D"]
        w = self.loss_cfg
        real_a, real_b = batch["A"], batch["B"]
        n = real_a.shape[0]
        real = torch.cat([real_a, real_b]) if w.use_nce_idt else real_a
        flipped = self.draw_flip()
        if flipped:
            real = torch.flip(real, dims=[3])
        fake = G(real)
        fake_b = fake[:n]

        set_requires_grad(D, True)
        d_losses = {"D": self.discriminator_loss(D, real_b, fake_b.detach())}
        if self.uses_gradient_penalty:
            d_losses["D_gp"] = self.penalty(D, real_b, fake_b)
        self.update("D", sum(d_losses.values()))

        set_requires_grad(D, False)
        losses: dict[str, torch.Tensor] = {}
        if w.gan > 0:
            with self.accelerator.no_sync(D):
                pred = D(fake_b)
            losses["G_GAN"] = w.gan * self.gan_loss(f32(pred), True, for_discriminator=False)
        if w.lambda_nce > 0:
            if not self.f_is_built:
                self.build_f(real_a)
            if w.use_nce_idt:
                losses["NCE"] = 0.5 * self.nce(real_a, fake_b, flipped)
                losses["NCE_Y"] = 0.5 * self.nce(real_b, fake[n:], flipped)
            else:
                losses["NCE"] = self.nce(real_a, fake_b, flipped)
        self.update_g_and_f(sum(losses.values()))
        losses.update(d_losses)
        return {k: v.item() for k, v in losses.items()}

    def nce(self, source: torch.Tensor, generated: torch.Tensor, flipped: bool) -> torch.Tensor:
        """``nce`` x PatchNCE between ``source`` and ``generated`` (``(N, C, H, W)``; ``generated`` came
        from the flipped source when ``flipped``), under the run's autocast, as a float32 scalar."""
        w = self.loss_cfg
        with self.accelerator.autocast():
            loss = cut_nce_loss(
                self.unwrap("G"),
                self.netF,
                source,
                generated,
                w.nce_layers,
                num_patches=w.num_patches,
                lambda_nce=w.lambda_nce,
                temperature=w.nce_t,
                flipped=flipped,
                generator=self.patch_rng,
            )
        return f32(loss)

    def update_g_and_f(self, loss: torch.Tensor) -> None:
        """One backward of G's loss, then G's Adam step and F's (at G's current learning rate)."""
        self.accelerator.backward(loss)
        self.optimizers["G"].step()
        self.optimizers["G"].zero_grad(set_to_none=True)
        if self.optimizer_F is not None:
            for group in self.optimizer_F.param_groups:
                group["lr"] = self.optimizers["G"].param_groups[0]["lr"]
            self.optimizer_F.step()
            self.optimizer_F.zero_grad(set_to_none=True)

    def discriminator_loss(self, D, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """``gan / 2 * (GAN(D(real), real) + GAN(D(fake), fake))`` in float32."""
        loss = self.gan_loss(f32(D(real)), True) + self.gan_loss(f32(D(fake)), False)
        return 0.5 * self.loss_cfg.gan * loss

    def translate(self, real_a: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return self.unwrap("G")(real_a)

    # ---- resume
    def extra_state(self) -> dict[str, Any]:
        """F's weights and Adam state (``None`` before the first batch) and the patch/flip generator."""
        built = self.f_is_built
        return {
            "F": self.accelerator.unwrap_model(self.netF).state_dict() if built else None,
            "F_optimizer": self.optimizer_F.state_dict() if built else None,
            "patch_rng": self.patch_rng.get_state(),
        }

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what ``extra_state`` saved: builds F from the saved weights' shapes (no init draw)."""
        self.patch_rng.set_state(state["patch_rng"])
        if state["F"] is None:
            return
        if self.f_is_built:
            self.accelerator.unwrap_model(self.netF).load_state_dict(state["F"])
        else:
            self.netF.load_state_dict(state["F"])
            self._prepare_f()
        self.optimizer_F.load_state_dict(state["F_optimizer"])


def _networks(a: int, b: int) -> list[tuple[str, str, int, int | None]]:
    return [("G", "generator", a, b), ("D", "discriminator", b, None)]


def _check(cfg: Any) -> None:
    """Mode, NCE settings, taps the generator has, and equal channels for ``nce_idt`` (B goes through G)."""
    loss, opts = cfg.loss, cfg.data.options
    if loss.mode not in CUT_MODES:
        raise ConfigError(f"loss.mode must be one of {', '.join(CUT_MODES)}; got {loss.mode!r}")
    if loss.nce is not None and not (math.isfinite(loss.nce) and loss.nce >= 0):
        raise ConfigError(f"loss.nce must be a finite number >= 0, got {loss.nce}")
    if not (math.isfinite(loss.nce_t) and loss.nce_t > 0):
        raise ConfigError(f"loss.nce_t must be a positive finite number, got {loss.nce_t}")
    if loss.num_patches < 1:
        raise ConfigError(f"loss.num_patches must be at least 1, got {loss.num_patches}")
    if loss.use_nce_idt and opts.input_nc != opts.output_nc:
        raise ConfigError(
            f"loss.nce_idt feeds B images to G, so it needs data.options.input_nc == output_nc (got "
            f"{opts.input_nc} and {opts.output_nc}); set loss.nce_idt=false or equal channels"
        )
    layers = loss.nce_layers
    if not isinstance(layers, list) or not layers or not all(isinstance(t, str) for t in layers):
        raise ConfigError(f"loss.nce_layers must be a list of tap names, got {layers!r}")
    model = cfg.model
    with torch.device("meta"):
        try:
            net = create_generator(model.generator, shortcut=model.shortcut, **model.generator_kwargs)
        except (TypeError, ValueError):
            return  # the generic network checks (preflight) report a generator that cannot be built
    names = getattr(net, "tap_names", None)
    if names is None:
        raise ConfigError(
            f"family cut needs a ResNet generator with encoder taps (resnet_9blocks, resnet_6blocks); "
            f"model.generator {model.generator!r} has none"
        )
    bad = [t for t in layers if t not in names] or ([] if len(set(layers)) == len(layers) else layers)
    if bad:
        raise ConfigError(
            f"loss.nce_layers must be distinct taps of the generator; {bad[0]!r} is not "
            f"(taps: {', '.join(names)})"
        )


# the data rule of the official code: no random crop during the decay epochs (load size = crop size)
_DATA = {"options": {"crop_in_decay": False}}

FAMILY = register_family(
    Family(
        name="cut",
        paper="Park et al. 2020, Contrastive Learning for Unpaired Image-to-Image Translation",
        trainer=CutTrainer,
        roles=("G",),
        routes={"AtoB": Route("G", "G")},
        loss=CutLoss,
        networks=_networks,
        # the official --init_type xavier (gain 0.02) for G, D and F
        init=("xavier", "xavier"),
        # anti-aliased ResNet-9 and 70x70 PatchGAN with instance norm; LSGAN, Adam(2e-4, 0.5, 0.999), batch 1
        defaults={
            "model": {
                "generator": "resnet_9blocks",
                "generator_kwargs": {"antialias": True, "antialias_up": True},
                "discriminator_kwargs": {"norm": "instance", "antialias": True},
            },
            "data": {"batch_size": 1, **_DATA},
        },
        pono_layout="ponogan",
        check=_check,
    )
)
