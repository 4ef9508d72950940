"""DRIT (Lee et al., ECCV 2018) with PONO-MS: the PONO paper's DRIT fork as a modern port.

Nets: ``gen`` (a ``DritTranslator``: content encoder, attribute encoders, generators), four image
discriminators (``dis_a``/``dis_b`` see translations with encoded attributes, ``dis_a2``/``dis_b2``
those with random codes) and the content discriminator ``dis_c``. Optimizers, as in the fork, one Adam
per net (``enc_c``, ``enc_a``, ``G``, ``D_A``, ``D_A2``, ``D_B``, ``D_B2``, ``D_content``).

The update rule (docs/models.md, "DRIT"): every ``step`` updates the content D once (on the batch's
encoded half, gradient norm clipped to ``loss.content_clip``); every ``loss.content_updates``-th step
also updates the four image Ds and then the encoders and generators, so the content D runs 3 times
per generator update. The generator update keeps the fork's two Adam steps: the full DRIT loss steps
``enc_c``, ``enc_a`` and ``G``; the random-code loss (GAN on the random-code translations + latent
regression) steps ``enc_c`` and ``G`` only, with its gradient taken at the same weights before the
first step (``inputs=`` of backward), so nothing of it reaches the attribute encoders.

Inference: the run folder holds ``gen``; ``inference_views`` adds ``drit_a`` / ``drit_b``
(``DritDomainView``: one domain's content and attribute encoders and generator behind MUNIT's
``encode`` / ``decode``), which the routes name, so the pipeline, translate, eval, the app and the
export treat DRIT as they treat MUNIT.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ponogan.core.messages import UsageError
from ponogan.families import Family, Route, register_family
from ponogan.families.base import Batch, FamilyTrainer, f32, set_requires_grad
from ponogan.models import create_discriminator, create_generator
from ponogan.models.drit import DritDomainView, init_drit_
from ponogan.models.drit_discriminators import DritContentDiscriminator

DRIT_DISCRIMINATORS = ("dis_a", "dis_a2", "dis_b", "dis_b2")


@dataclass
class DritLoss:
    """DRIT's loss weights and its update schedule (the fork's values).

    ``gan``: image GANs (summed over the three scales); ``content``: the content adversarial loss
    (the encoders push D_c to 0.5 on both domains); ``cross_cycle`` / ``self_recon``: L1 of the
    cross-cycle and within-domain reconstructions; ``latent``: L1 of the random code re-encoded
    (latent regression); ``kl``: ``mean(z^2)`` of the attribute and content codes (``concat 1``: the
    summed KL of the attribute posterior). ``content_updates``: content-D updates per generator update;
    ``content_lr`` and ``content_clip``: the content D's learning rate and gradient-norm clip.
    ``gan_mode`` is DRIT's ``vanilla`` (sigmoid + BCE), the only one this family takes; ``gp`` is the
    field every family's loss section has (unused here).
    """

    gan_mode: str = "vanilla"
    gan: float = 1.0
    content: float = 1.0
    cross_cycle: float = 10.0
    self_recon: float = 10.0
    latent: float = 10.0
    kl: float = 0.01
    content_updates: int = 3
    content_lr: float = 4e-5
    content_clip: float = 5.0
    gp: float = 10.0


def bce_to(logits: torch.Tensor, value: float) -> torch.Tensor:
    """Mean BCE of ``sigmoid(logits)`` against the constant ``value`` (1 real, 0 fake, 0.5 content)."""
    logits = f32(logits)
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, value))


def multiscale_bce(outs: list[torch.Tensor], value: float) -> torch.Tensor:
    """:func:`bce_to` summed over a multi-scale D's maps (the fork sums its scales)."""
    return sum(bce_to(o, value) for o in outs)


def detach_moments(moments: list) -> list:
    return [(m.detach(), s.detach()) for m, s in moments]


def l2_mean(x: torch.Tensor) -> torch.Tensor:
    """``mean(x^2)``: DRIT's L2 pull of a code toward 0."""
    return f32(x).pow(2).mean()


def kl_sum(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``-0.5 * sum(1 + logvar - mu^2 - exp(logvar))``: KL(N(mu, exp(logvar)) || N(0, I)), summed."""
    mu, logvar = f32(mu), f32(logvar)
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())


def _cat(*pairs: tuple) -> tuple:
    """Concatenate along the batch ``(content, moments)`` pairs."""
    content = torch.cat([c for c, _ in pairs])
    moments = [
        (torch.cat([m[i][0] for _, m in pairs]), torch.cat([m[i][1] for _, m in pairs]))
        for i in range(len(pairs[0][1]))
    ]
    return content, moments


class DritTrainer(FamilyTrainer):
    """DRIT's trainer; see the module docstring for the schedule. The batch is split in an "encoded"
    first half and a "random" second half (``data.batch_size`` even, 2 in the fork)."""

    gan_scale_reduction = "sum"

    def build(self) -> None:
        model, gain = self.cfg.model, self.cfg.model.init_gain
        kwargs = {**model.generator_kwargs, "in_channels": self.input_nc, "out_channels": self.output_nc}
        gen = init_drit_(create_generator("drit", shortcut=model.shortcut, **kwargs), gain)
        self.nets["gen"] = gen
        for name in DRIT_DISCRIMINATORS:
            channels = self.input_nc if name.startswith("dis_a") else self.output_nc
            dis = create_discriminator("drit", **{**model.discriminator_kwargs, "in_channels": channels})
            self.nets[name] = init_drit_(dis, gain)
        dis_c = DritContentDiscriminator(with_moments=gen.with_moments, channels=gen.content_channels)
        self.nets["dis_c"] = init_drit_(dis_c, gain)
        lr, o = self.cfg.optim.lr_g, self.cfg.optim
        self.add_optimizer("enc_c", gen.enc_c.parameters(), lr)
        self.add_optimizer("enc_a", [*gen.enc_a_a.parameters(), *gen.enc_a_b.parameters()], lr)
        self.add_optimizer(
            "G", {id(p): p for g in (gen.gen_a, gen.gen_b) for p in g.parameters()}.values(), lr
        )
        for name, opt in zip(DRIT_DISCRIMINATORS, ("D_A", "D_A2", "D_B", "D_B2"), strict=True):
            self.add_optimizer(opt, self.nets[name].parameters(), o.lr_d)
        self.add_optimizer("D_content", self.nets["dis_c"].parameters(), self.loss_cfg.content_lr)
        self.updates = 0  # content-D updates so far: every content_updates-th also updates the rest

    def generators(self) -> dict[str, nn.Module]:
        return {"gen": self.unwrap("gen")}

    def extra_state(self) -> dict[str, Any]:
        return {"updates": self.updates}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.updates = int(state.get("updates", 0))

    # ---- the update rule
    def step(self, batch: Batch) -> dict[str, float]:
        x_a, x_b = batch["A"], batch["B"]
        if x_a.shape[0] < 2 or x_a.shape[0] % 2 or x_b.shape[0] != x_a.shape[0]:
            raise UsageError(
                f"DRIT splits each batch into an encoded and a random half: data.batch_size must be even, "
                f"got batches of {x_a.shape[0]} and {x_b.shape[0]}"
            )
        half = x_a.shape[0] // 2
        self.updates += 1
        if self.updates % self.loss_cfg.content_updates:
            gen = self.unwrap("gen")
            with torch.no_grad():
                codes_a, codes_b = gen.encode_content(x_a[:half], "a"), gen.encode_content(x_b[:half], "b")
            return {"D_content": self.update_content_d(codes_a, codes_b).item()}
        return self.full_update(x_a[:half], x_a[half:], x_b[:half], x_b[half:])

    def update_content_d(self, codes_a: tuple, codes_b: tuple) -> torch.Tensor:
        """D_c: A's content (and moments) fake, B's real; gradient norm clipped; one Adam step."""
        dis_c = self.nets["dis_c"]
        (c_a, m_a), (c_b, m_b) = codes_a, codes_b
        loss = bce_to(dis_c(c_a.detach(), detach_moments(m_a)), 0.0)
        loss = loss + bce_to(dis_c(c_b.detach(), detach_moments(m_b)), 1.0)
        self.accelerator.backward(loss)
        self.accelerator.clip_grad_norm_(dis_c.parameters(), self.loss_cfg.content_clip)
        self.optimizers["D_content"].step()
        self.optimizers["D_content"].zero_grad(set_to_none=True)
        return loss

    def forward_all(self, a_enc, b_enc) -> dict[str, Any]:
        """The fork's ``forward``: codes of the encoded halves, the three translations per domain
        (cross with encoded attributes, self-reconstruction, cross with a random code), the cross
        cycle, and the random-code translations re-encoded."""
        w = self.unwrap("gen")
        out: dict[str, Any] = {"real_a": a_enc, "real_b": b_enc}
        out["codes_a"], out["codes_b"] = w.encode_content(a_enc, "a"), w.encode_content(b_enc, "b")
        z_a, mu_a, logvar_a = w.encode_attribute(a_enc, "a")
        z_b, mu_b, logvar_b = w.encode_attribute(b_enc, "b")
        out.update(z_a=z_a, z_b=z_b, mu_a=mu_a, mu_b=mu_b, logvar_a=logvar_a, logvar_b=logvar_b)
        z_random = torch.randn_like(z_a)
        n = a_enc.shape[0]
        for_a = _cat(out["codes_b"], out["codes_a"], out["codes_b"])
        for_b = _cat(out["codes_a"], out["codes_b"], out["codes_a"])
        fake_a = w.decode(*for_a[:1], torch.cat([z_a, z_a, z_random]), for_a[1], "a")
        fake_b = w.decode(*for_b[:1], torch.cat([z_b, z_b, z_random]), for_b[1], "b")
        out["fake_a"], out["fake_aa"], out["fake_a_random"] = fake_a.split(n)
        out["fake_b"], out["fake_bb"], out["fake_b_random"] = fake_b.split(n)
        rec_b, rec_a = w.encode_content(out["fake_a"], "a"), w.encode_content(out["fake_b"], "b")
        z_rec_a, _, _ = w.encode_attribute(out["fake_a"], "a")
        z_rec_b, _, _ = w.encode_attribute(out["fake_b"], "b")
        out["recon_a"] = w.decode(rec_a[0], z_rec_a, rec_a[1], "a")
        out["recon_b"] = w.decode(rec_b[0], z_rec_b, rec_b[1], "b")
        # latent regression: the random code re-encoded (concat 1: its posterior mean)
        out["z_random"] = z_random
        out["z_random_a"] = w.encode_attribute(out["fake_a_random"], "a", sample=False)[0]
        out["z_random_b"] = w.encode_attribute(out["fake_b_random"], "b", sample=False)[0]
        return out

    def full_update(self, a_enc, a_rand, b_enc, b_rand) -> dict[str, float]:
        w = self.loss_cfg
        out = self.forward_all(a_enc, b_enc)
        discs = [self.nets[n] for n in DRIT_DISCRIMINATORS]
        losses: dict[str, torch.Tensor] = {}
        pairs = {
            "D_A": ("dis_a", a_enc, out["fake_a"]),
            "D_A2": ("dis_a2", a_rand, out["fake_a_random"]),
            "D_B": ("dis_b", b_enc, out["fake_b"]),
            "D_B2": ("dis_b2", b_rand, out["fake_b_random"]),
        }
        for opt, (name, real, fake) in pairs.items():
            dis = self.nets[name]
            loss = multiscale_bce(dis(fake.detach()), 0.0) + multiscale_bce(dis(real), 1.0)
            losses[opt] = w.gan * loss
            self.update(opt, losses[opt])
        losses["D_content"] = self.update_content_d(out["codes_a"], out["codes_b"])

        set_requires_grad([*discs, self.nets["dis_c"]], False)
        eg = self.encoder_generator_losses(out)
        alone = {
            "G_A2": w.gan * multiscale_bce(self.nets["dis_a2"](out["fake_a_random"]), 1.0),
            "G_B2": w.gan * multiscale_bce(self.nets["dis_b2"](out["fake_b_random"]), 1.0),
            "latent_a": w.latent * (f32(out["z_random_a"]) - f32(out["z_random"])).abs().mean(),
            "latent_b": w.latent * (f32(out["z_random_b"]) - f32(out["z_random"])).abs().mean(),
        }
        self.two_step_update(sum(eg.values()), sum(alone.values()))
        set_requires_grad([*discs, self.nets["dis_c"]], True)
        losses.update(eg)
        losses.update(alone)
        return {k: v.item() for k, v in losses.items()}

    def encoder_generator_losses(self, out: dict[str, Any]) -> dict[str, torch.Tensor]:
        """The fork's ``backward_EG`` terms, weighted."""
        w = self.loss_cfg
        dis_c = self.nets["dis_c"]
        (c_a, m_a), (c_b, m_b) = out["codes_a"], out["codes_b"]
        if out["mu_a"] is not None:
            kl_attr = kl_sum(out["mu_a"], out["logvar_a"]) + kl_sum(out["mu_b"], out["logvar_b"])
        else:
            kl_attr = l2_mean(out["z_a"]) + l2_mean(out["z_b"])
        return {
            "G_A": w.gan * multiscale_bce(self.nets["dis_a"](out["fake_a"]), 1.0),
            "G_B": w.gan * multiscale_bce(self.nets["dis_b"](out["fake_b"]), 1.0),
            "G_content": w.content * (bce_to(dis_c(c_a, m_a), 0.5) + bce_to(dis_c(c_b, m_b), 0.5)),
            "self_recon": w.self_recon * (_l1(out, "fake_aa", "real_a") + _l1(out, "fake_bb", "real_b")),
            "cross_cycle": w.cross_cycle * (_l1(out, "recon_a", "real_a") + _l1(out, "recon_b", "real_b")),
            "kl_attr": w.kl * kl_attr,
            "kl_content": w.kl * (l2_mean(c_a) + l2_mean(c_b)),
        }

    def two_step_update(self, loss_eg: torch.Tensor, loss_alone: torch.Tensor) -> None:
        """The fork's two generator-side Adam steps at one set of weights: ``loss_eg`` steps
        ``enc_c``, ``enc_a``, ``G``; then ``loss_alone``'s gradient (taken first, w.r.t. ``enc_c`` and
        ``G`` only) steps ``enc_c`` and ``G`` again."""
        params = [
            p for name in ("enc_c", "G") for g in self.optimizers[name].param_groups for p in g["params"]
        ]
        self.accelerator.backward(loss_alone, inputs=params, retain_graph=True)
        self.average_gradients(params)  # the generator is driven through its methods, not DDP's forward
        alone = [p.grad for p in params]
        for p in params:
            p.grad = None
        self.accelerator.backward(loss_eg)
        self.average_gradients(
            p
            for name in ("enc_c", "enc_a", "G")
            for g in self.optimizers[name].param_groups
            for p in g["params"]
        )
        for name in ("enc_c", "enc_a", "G"):
            self.optimizers[name].step()
            self.optimizers[name].zero_grad(set_to_none=True)
        for p, g in zip(params, alone, strict=True):
            p.grad = g
        for name in ("enc_c", "G"):
            self.optimizers[name].step()
            self.optimizers[name].zero_grad(set_to_none=True)

    # ---- inference
    def translate(self, real_a: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """A -> B with a fixed random code per dataset item (from ``train.style_seed`` and its index)."""
        gen = self.unwrap("gen")
        codes = []
        for i in index.tolist():
            generator = torch.Generator().manual_seed(self.cfg.train.style_seed * 1_000_003 + int(i))
            codes.append(torch.randn(gen.attribute_dim, generator=generator))
        z = torch.stack(codes).to(real_a.device)
        with self.accelerator.autocast():
            content, moments = gen.encode_content(real_a, "a")
            return gen.decode(content, z, moments, "b").float()


def _l1(out: dict[str, Any], fake: str, real: str) -> torch.Tensor:
    return F.l1_loss(f32(out[fake]), f32(out[real]))


# the content D's three stride-2 convs and its 4x4 conv need a content code of 25 px: images of 100
MIN_SIDE = 100
WEIGHTS = ("gan", "content", "cross_cycle", "self_recon", "latent", "kl", "content_lr", "content_clip")


def _check(cfg: Any) -> None:
    """DRIT's own config checks (``ConfigError``, one line each)."""
    from ponogan.training.config import ConfigError
    from ponogan.training.preflight import image_side

    loss = cfg.loss
    for name in WEIGHTS:
        value = getattr(loss, name)
        if not value >= 0:
            raise ConfigError(f"loss.{name} must be a number >= 0, got {value}")
    if (
        isinstance(loss.content_updates, bool)
        or not isinstance(loss.content_updates, int)
        or loss.content_updates < 1
    ):
        raise ConfigError(f"loss.content_updates must be an integer >= 1, got {loss.content_updates!r}")
    if loss.gan_mode != "vanilla":
        raise ConfigError(f"DRIT trains with loss.gan_mode vanilla (sigmoid + BCE), got {loss.gan_mode!r}")
    if cfg.optim.grad_accum_steps != 1:
        raise ConfigError(
            "DRIT steps its optimizers several times per update and cannot accumulate gradients: "
            f"set optim.grad_accum_steps to 1, got {cfg.optim.grad_accum_steps}"
        )
    if cfg.model.shortcut not in (None, "ms"):
        raise ConfigError(f"DRIT takes model.shortcut null or ms, got {cfg.model.shortcut!r}")
    if cfg.data.batch_size % 2:
        raise ConfigError(
            f"DRIT splits each batch into an encoded and a random half: data.batch_size must be even, "
            f"got {cfg.data.batch_size}"
        )
    side = image_side(cfg)
    if side < MIN_SIDE:
        raise ConfigError(
            f"DRIT's content discriminator needs images of at least {MIN_SIDE} px, got {side}; "
            "raise data.options (image_size, or load_size and crop_size)"
        )


def inference_views(generators: dict[str, nn.Module]) -> dict[str, nn.Module]:
    """``drit_a`` / ``drit_b``: the saved ``gen`` seen as one auto-encoder per domain
    (:class:`DritDomainView`), so the pipeline and the export run DRIT as they run MUNIT."""
    gen = generators["gen"]
    return {"drit_a": DritDomainView(gen, "a"), "drit_b": DritDomainView(gen, "b")}


def _networks(a: int, b: int) -> list[tuple[str, str, int, int | None]]:
    return [
        ("gen", "generator", a, b),
        *[
            (name, "discriminator", a if name.startswith("dis_a") else b, None)
            for name in DRIT_DISCRIMINATORS
        ],
    ]


FAMILY = register_family(
    Family(
        name="drit",
        paper="Lee et al. 2018, Diverse Image-to-Image Translation via Disentangled Representations",
        trainer=DritTrainer,
        roles=("gen",),
        # inference: A's content, moments and code from drit_a, decoded by drit_b (and the reverse)
        routes={"AtoB": Route("drit_a", "drit_b"), "BtoA": Route("drit_b", "drit_a")},
        inference_views=inference_views,
        loss=DritLoss,
        networks=_networks,
        # the original DRIT: conv weights N(0, 0.02) (init_drit_), the rest PyTorch's default
        init=("normal", "normal"),
        # the fork: Adam(1e-4, betas (0.5, 0.999), weight decay 1e-4) for every net but D_c (content_lr);
        # its linear decay starts after the runs it reports end, so the rate stays constant
        defaults={
            "model": {"generator": "drit", "discriminator": "drit"},
            "optim": {
                "lr_g": 1e-4,
                "lr_d": 1e-4,
                "weight_decay": 1e-4,
                "lr_policy": "linear",
                "decay_start": 1.0,
            },
            "data": {"batch_size": 2},
        },
        multimodal=True,
        min_side=MIN_SIDE,
        check=_check,
    )
)
