"""pix2pix (Isola et al. 2017): conditional GAN on (A, B) pairs + lambda x L1(G(A), B)."""

from __future__ import annotations

import torch

from ponogan.families import Family, Route, register_family
from ponogan.families.base import Batch, FamilyTrainer, f32, set_requires_grad
from ponogan.training.config import Pix2PixLoss
from ponogan.training.losses import reconstruction_loss


class Pix2PixTrainer(FamilyTrainer):
    """Nets ``G`` (A -> B) and ``D`` (judges ``cat(A, B)``, channels ``input_nc + output_nc``).

    Per step: D on ``(A, G(A).detach())`` as fake and ``(A, B)`` as real, loss halved (with
    ``wgangp``, plus ``gp`` x the penalty at interpolates of B and G(A), conditioned on A: ``D_gp``);
    then G with D frozen: ``gan * GAN(D(A, G(A)), real) + l1 * L1(G(A), B)``.
    """

    def step(self, batch: Batch) -> dict[str, float]:
        G, D, w = self.nets["G"], self.nets["D"], self.loss_cfg
        real_a, real_b = batch["A"], batch["B"]
        fake_b = G(real_a)  # (N, output_nc, H, W)

        set_requires_grad(D, True)
        pred_fake = D(torch.cat([real_a, fake_b.detach()], dim=1))
        pred_real = D(torch.cat([real_a, real_b], dim=1))
        loss_d_fake = 0.5 * w.gan * self.gan_loss(f32(pred_fake), False)
        loss_d_real = 0.5 * w.gan * self.gan_loss(f32(pred_real), True)
        d_losses = {"D_real": loss_d_real, "D_fake": loss_d_fake}
        if self.uses_gradient_penalty:
            d_losses["D_gp"] = self.penalty(lambda x: D(torch.cat([real_a, x], dim=1)), real_b, fake_b)
        self.update("D", sum(d_losses.values()))

        set_requires_grad(D, False)
        with self.accelerator.no_sync(D):  # D gets no gradient in this pass: DDP must not wait for one
            pred = D(torch.cat([real_a, fake_b], dim=1))
        loss_g_gan = w.gan * self.gan_loss(f32(pred), True, for_discriminator=False)
        loss_g_l1 = w.l1 * reconstruction_loss(f32(fake_b), f32(real_b))
        self.update("G", loss_g_gan + loss_g_l1)
        set_requires_grad(D, True)
        losses = {"G_GAN": loss_g_gan, "G_L1": loss_g_l1, **d_losses}
        return {k: v.item() for k, v in losses.items()}

    def translate(self, real_a: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return self.unwrap("G")(real_a)


def _networks(a: int, b: int) -> list[tuple[str, str, int, int | None]]:
    return [("G", "generator", a, b), ("D", "discriminator", a + b, None)]


FAMILY = register_family(
    Family(
        name="pix2pix",
        paper="Isola et al. 2017, Image-to-Image Translation with Conditional Adversarial Networks",
        trainer=Pix2PixTrainer,
        roles=("G",),
        routes={"AtoB": Route("G", "G")},
        loss=Pix2PixLoss,
        networks=_networks,
        folder_mode="aligned",
        repo_model="pix2pix",
        official_roles=("G",),
    )
)
