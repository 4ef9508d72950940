"""CycleGAN (Zhu et al. 2017): two generators, two discriminators, cycle and identity losses."""

from __future__ import annotations

from typing import Any

import torch

from ponogan.families import Family, Route, register_family
from ponogan.families.base import Batch, FamilyTrainer, f32, set_requires_grad
from ponogan.training.config import ConfigError, CycleGANLoss, TrainConfig
from ponogan.training.image_pool import ImagePool
from ponogan.training.losses import cycle_loss, identity_loss


class CycleGANTrainer(FamilyTrainer):
    """Nets ``G_A`` (A -> B), ``G_B`` (B -> A), ``D_A`` (judges domain B), ``D_B`` (judges domain A).

    Per step, as in the original: the generators first (D frozen):
    ``GAN(D_A(G_A(A))) + GAN(D_B(G_B(B))) + cycle * (|G_B(G_A(A)) - A| + |G_A(G_B(B)) - B|)
    + identity * cycle * (|G_A(B) - B| + |G_B(A) - A|)``; then each D on real images and on fakes
    drawn from an ``ImagePool`` of ``pool_size`` earlier fakes, loss halved. With ``wgangp`` each D
    also gets ``gp`` x the penalty at interpolates of its real images and the pooled fakes
    (``D_A_gp``, ``D_B_gp``).
    """

    def build(self) -> None:
        super().build()
        self.pools = {key: ImagePool(self.loss_cfg.pool_size) for key in ("fake_A", "fake_B")}

    def step(self, batch: Batch) -> dict[str, float]:
        G_A, G_B, D_A, D_B = (self.nets[k] for k in ("G_A", "G_B", "D_A", "D_B"))
        w = self.loss_cfg
        real_a, real_b = batch["A"], batch["B"]
        losses: dict[str, torch.Tensor] = {}

        set_requires_grad([D_A, D_B], False)
        fake_b = G_A(real_a)
        rec_a = G_B(fake_b)
        fake_a = G_B(real_b)
        rec_b = G_A(fake_a)
        with self.accelerator.no_sync(D_A), self.accelerator.no_sync(D_B):
            pred_b, pred_a = D_A(fake_b), D_B(fake_a)
        losses["G_A"] = w.gan * self.gan_loss(f32(pred_b), True, for_discriminator=False)
        losses["G_B"] = w.gan * self.gan_loss(f32(pred_a), True, for_discriminator=False)
        losses["cycle_A"] = w.cycle * cycle_loss(f32(rec_a), f32(real_a))
        losses["cycle_B"] = w.cycle * cycle_loss(f32(rec_b), f32(real_b))
        if w.identity > 0:
            losses["idt_A"] = w.identity * w.cycle * identity_loss(f32(G_A(real_b)), f32(real_b))
            losses["idt_B"] = w.identity * w.cycle * identity_loss(f32(G_B(real_a)), f32(real_a))
        self.update("G", sum(losses.values()))

        set_requires_grad([D_A, D_B], True)
        pooled_b = self.pools["fake_B"].query(fake_b)
        pooled_a = self.pools["fake_A"].query(fake_a)
        d_losses = {
            "D_A": self.discriminator_loss(D_A, real_b, pooled_b),
            "D_B": self.discriminator_loss(D_B, real_a, pooled_a),
        }
        if self.uses_gradient_penalty:
            d_losses["D_A_gp"] = self.penalty(D_A, real_b, pooled_b)
            d_losses["D_B_gp"] = self.penalty(D_B, real_a, pooled_a)
        self.update("D", sum(d_losses.values()))
        losses.update(d_losses)
        return {k: v.item() for k, v in losses.items()}

    def discriminator_loss(self, D, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """``gan / 2 * (GAN(D(real), real) + GAN(D(fake), fake))`` in float32."""
        loss = self.gan_loss(f32(D(real)), True) + self.gan_loss(f32(D(fake)), False)
        return 0.5 * self.loss_cfg.gan * loss

    def translate(self, real_a: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return self.unwrap("G_A")(real_a)

    def extra_state(self) -> dict[str, Any]:
        return {"pools": {k: pool.state_dict() for k, pool in self.pools.items()}}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        for key, pool in self.pools.items():
            pool.load_state_dict(state["pools"][key], device=self.accelerator.device)


def _networks(a: int, b: int) -> list[tuple[str, str, int, int | None]]:
    return [
        ("G_A", "generator", a, b),
        ("G_B", "generator", b, a),
        ("D_A", "discriminator", b, None),
        ("D_B", "discriminator", a, None),
    ]


def _check(cfg: TrainConfig) -> None:
    """The identity loss feeds B images to ``G_A``: it needs equal channel counts."""
    loss, opts = cfg.loss, cfg.data.options
    if loss.identity > 0 and opts.input_nc != opts.output_nc:
        raise ConfigError(
            f"loss.identity {loss.identity} feeds B images to G_A, so it needs data.options.input_nc == "
            f"output_nc (got {opts.input_nc} and {opts.output_nc}); set loss.identity=0 or equal channels"
        )


FAMILY = register_family(
    Family(
        name="cyclegan",
        paper="Zhu et al. 2017, Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial"
        " Networks",
        trainer=CycleGANTrainer,
        roles=("G_A", "G_B"),
        routes={"AtoB": Route("G_A", "G_A"), "BtoA": Route("G_B", "G_B")},
        loss=CycleGANLoss,
        networks=_networks,
        # ResNet-9 generators and an instance-norm PatchGAN
        defaults={"model": {"generator": "resnet_9blocks", "discriminator_kwargs": {"norm": "instance"}}},
        repo_model="cycle_gan",
        official_roles=("G_A", "G_B"),
        pono_layout="official",
        check=_check,
    )
)
