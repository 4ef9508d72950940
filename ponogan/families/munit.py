"""MUNIT (Huang et al. 2018) with PONO-MS: two auto-encoders, two multi-scale discriminators."""

from __future__ import annotations

import torch
from torch import nn

from ponogan.families import Family, Route, register_family
from ponogan.families.base import Batch, FamilyTrainer, f32, set_requires_grad
from ponogan.training.config import MunitLoss
from ponogan.training.losses import latent_reconstruction_loss, reconstruction_loss


class MunitPair(nn.Module):
    """``gen_a`` and ``gen_b`` behind one ``forward``, so DDP and autocast see every encode/decode.

    ``forward(x_a, x_b, s_a, s_b, translate_only=False)`` with images ``(N, C, H, W)`` and random
    styles ``(N, style_dim, 1, 1)`` returns a dict: the cross-domain translations ``x_ab``
    (content+moments of A, style ``s_b``) and ``x_ba``; unless ``translate_only``, also the
    within-domain reconstructions, the codes of both images and of both translations (re-encoded),
    and the cycle reconstructions ``x_aba``/``x_bab`` (decoded from the re-encoded content/moments).
    """

    def __init__(self, gen_a: nn.Module, gen_b: nn.Module):
        super().__init__()
        self.gen_a = gen_a
        self.gen_b = gen_b

    def forward(
        self,
        x_a: torch.Tensor,
        x_b: torch.Tensor,
        s_a: torch.Tensor,
        s_b: torch.Tensor,
        translate_only: bool = False,
    ) -> dict:
        c_a, m_a, s_a_prime = self.gen_a.encode(x_a)
        c_b, m_b, s_b_prime = self.gen_b.encode(x_b)
        x_ba = self.gen_a.decode(c_b, m_b, s_a, size=x_b.shape[-2:])
        x_ab = self.gen_b.decode(c_a, m_a, s_b, size=x_a.shape[-2:])
        out = {"x_ab": x_ab, "x_ba": x_ba}
        if translate_only:
            return out
        out["x_a_recon"] = self.gen_a.decode(c_a, m_a, s_a_prime, size=x_a.shape[-2:])
        out["x_b_recon"] = self.gen_b.decode(c_b, m_b, s_b_prime, size=x_b.shape[-2:])
        out["codes_a"], out["codes_b"] = (c_a, m_a, s_a_prime), (c_b, m_b, s_b_prime)
        out["codes_ba"] = self.gen_a.encode(x_ba)  # (content of B, moments of B, s_a) recovered
        out["codes_ab"] = self.gen_b.encode(x_ab)
        c_b_rec, m_b_rec, _ = out["codes_ba"]
        c_a_rec, m_a_rec, _ = out["codes_ab"]
        out["x_aba"] = self.gen_a.decode(c_a_rec, m_a_rec, s_a_prime, size=x_a.shape[-2:])
        out["x_bab"] = self.gen_b.decode(c_b_rec, m_b_rec, s_b_prime, size=x_b.shape[-2:])
        return out


class MunitTrainer(FamilyTrainer):
    """Nets ``gen`` (a ``MunitPair``), ``dis_a``, ``dis_b``; optimizers ``G`` and ``D``.

    Per step, as in MUNIT: the discriminators on real images vs translations with random styles
    (with ``wgangp`` plus ``gp`` x the penalty of each multi-scale D: ``D_A_gp``, ``D_B_gp``), then the
    generators on ``gan * GAN + image * recon_x + content * recon_c + style * recon_s + cycle *
    recon_x_cycle``. The GAN losses are summed over the discriminator's scales (NVlabs/MUNIT
    ``MsImageDis``), not averaged. PONO moments of the translation vs those of its source: with
    ``loss.moments = None`` (official PONO-MUNIT rule) the L1 of every moment map is summed and added
    to ``recon_c`` (logged in ``recon_content``); with a number they are averaged and weighted by it
    (``recon_moments``). The cycle images are computed every step (cheap at these sizes) and
    weighted by ``cycle`` (0 = off, so its loss is reported but adds nothing).
    """

    gan_scale_reduction = "sum"

    def group_networks(self, built: dict[str, nn.Module]) -> dict[str, nn.Module]:
        """``gen`` (both auto-encoders in one ``MunitPair``), ``dis_a``, ``dis_b``."""
        return {
            "gen": MunitPair(built["gen_a"], built["gen_b"]),
            "dis_a": built["dis_a"],
            "dis_b": built["dis_b"],
        }

    def build(self) -> None:
        super().build()
        self.style_dim = self.nets["gen"].gen_a.style_dim

    def generators(self) -> dict[str, nn.Module]:
        pair = self.unwrap("gen")
        return {"gen_a": pair.gen_a, "gen_b": pair.gen_b}

    def _random_styles(self, x_a: torch.Tensor, x_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s_a = torch.randn(x_b.shape[0], self.style_dim, 1, 1).to(x_a.device)
        s_b = torch.randn(x_a.shape[0], self.style_dim, 1, 1).to(x_a.device)
        return s_a, s_b

    def step(self, batch: Batch) -> dict[str, float]:
        gen, dis_a, dis_b, w = self.nets["gen"], self.nets["dis_a"], self.nets["dis_b"], self.loss_cfg
        x_a, x_b = batch["A"], batch["B"]

        with torch.no_grad():
            fakes = gen(x_a, x_b, *self._random_styles(x_a, x_b), translate_only=True)
        set_requires_grad([dis_a, dis_b], True)
        loss_d_a = self.gan_loss(f32(dis_a(fakes["x_ba"])), False) + self.gan_loss(f32(dis_a(x_a)), True)
        loss_d_b = self.gan_loss(f32(dis_b(fakes["x_ab"])), False) + self.gan_loss(f32(dis_b(x_b)), True)
        losses = {"D_A": w.gan * loss_d_a, "D_B": w.gan * loss_d_b}
        if self.uses_gradient_penalty:
            losses["D_A_gp"] = self.penalty(dis_a, x_a, fakes["x_ba"])
            losses["D_B_gp"] = self.penalty(dis_b, x_b, fakes["x_ab"])
        self.update("D", sum(losses.values()))

        set_requires_grad([dis_a, dis_b], False)
        s_a, s_b = self._random_styles(x_a, x_b)
        out = gen(x_a, x_b, s_a, s_b)
        with self.accelerator.no_sync(dis_a), self.accelerator.no_sync(dis_b):
            pred_ba, pred_ab = dis_a(out["x_ba"]), dis_b(out["x_ab"])
        gen_losses = {
            "G_A": w.gan * self.gan_loss(f32(pred_ba), True, for_discriminator=False),
            "G_B": w.gan * self.gan_loss(f32(pred_ab), True, for_discriminator=False),
            "recon_x": w.image
            * (
                reconstruction_loss(f32(out["x_a_recon"]), f32(x_a))
                + reconstruction_loss(f32(out["x_b_recon"]), f32(x_b))
            ),
            "recon_cycle": w.cycle
            * (
                reconstruction_loss(f32(out["x_aba"]), f32(x_a))
                + reconstruction_loss(f32(out["x_bab"]), f32(x_b))
            ),
        }
        c_a, m_a, _ = out["codes_a"]
        c_b, m_b, _ = out["codes_b"]
        official = w.moments is None  # PONO-MUNIT: moment L1s summed into the content term
        reduction = "sum" if official else "mean"
        latent_ab = latent_reconstruction_loss(
            _f32_codes(out["codes_ab"]), _f32_codes((c_a, m_a, s_b)), moment_reduction=reduction
        )
        latent_ba = latent_reconstruction_loss(
            _f32_codes(out["codes_ba"]), _f32_codes((c_b, m_b, s_a)), moment_reduction=reduction
        )
        content = latent_ab["content"] + latent_ba["content"]
        moments = latent_ab["moments"] + latent_ba["moments"]
        gen_losses["recon_content"] = w.content * (content + moments if official else content)
        gen_losses["recon_style"] = w.style * (latent_ab["style"] + latent_ba["style"])
        if not official:
            gen_losses["recon_moments"] = w.moments * moments
        self.update("G", sum(gen_losses.values()))
        set_requires_grad([dis_a, dis_b], True)
        losses.update(gen_losses)
        return {k: v.item() for k, v in losses.items()}

    def fixed_styles(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Fixed ``(B-styles, A-styles)``, each ``(N, style_dim, 1, 1)``: item ``i`` always gets the same
        codes, the first two draws from ``(train.style_seed, i)``, whatever the batch or process it lands
        in. The B-style is the one for evaluation (``translate``); the A-style, for the B->A sample
        column, never coincides with it."""
        codes_b, codes_a = [], []
        for i in index.tolist():
            generator = torch.Generator().manual_seed(self.cfg.train.style_seed * 1_000_003 + int(i))
            codes_b.append(torch.randn(self.style_dim, 1, 1, generator=generator))
            codes_a.append(torch.randn(self.style_dim, 1, 1, generator=generator))
        return torch.stack(codes_b), torch.stack(codes_a)

    def translate(self, real_a: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        pair = self.unwrap("gen")
        style = self.fixed_styles(index)[0].to(real_a.device)
        with self.accelerator.autocast():
            content, moments, _ = pair.gen_a.encode(real_a)
            return pair.gen_b.decode(content, moments, style, size=real_a.shape[-2:]).float()

    def sample_columns(self, items: Batch, paired: bool) -> list[tuple[str, torch.Tensor]]:
        """``real A | A->B (fixed style) | A->B->A | real B | B->A | B->A->B``: the translations with the
        fixed styles (A->B is exactly ``translate``), and the cycles decoded from the re-encoded
        content and moments with each image's own style, as in training (``MunitPair``)."""
        real_a, index = items["A"], items["index"]
        if "B" not in items:
            return [("real A", real_a), ("A->B (fixed style)", self.translate(real_a, index))]
        real_b = items["B"]
        s_b, s_a = (styles.to(real_a.device) for styles in self.fixed_styles(index))
        with self.accelerator.autocast():
            out = self.unwrap("gen")(real_a, real_b, s_a, s_b)
        return [
            ("real A", real_a),
            ("A->B (fixed style)", out["x_ab"].float()),
            ("A->B->A", out["x_aba"].float()),
            ("real B", real_b),
            ("B->A", out["x_ba"].float()),
            ("B->A->B", out["x_bab"].float()),
        ]


def _f32_codes(codes: tuple) -> tuple:
    content, moments, style = codes
    return f32(content), [(f32(m), f32(s)) for m, s in moments], f32(style)


def _networks(a: int, b: int) -> list[tuple[str, str, int, int | None]]:
    return [
        ("gen_a", "generator", a, None),
        ("gen_b", "generator", b, None),
        ("dis_a", "discriminator", a, None),
        ("dis_b", "discriminator", b, None),
    ]


FAMILY = register_family(
    Family(
        name="munit",
        paper="Huang et al. 2018, Multimodal Unsupervised Image-to-Image Translation",
        trainer=MunitTrainer,
        roles=("gen_a", "gen_b"),
        routes={"AtoB": Route("gen_a", "gen_b"), "BtoA": Route("gen_b", "gen_a")},
        loss=MunitLoss,
        networks=_networks,
        # NVlabs/MUNIT: ``init: kaiming`` for the auto-encoders; its trainer re-initialises the
        # discriminators ``gaussian``
        init=("kaiming", "normal"),
        # auto-encoders with the Moment Shortcut + multi-scale D, Adam(1e-4, weight decay 1e-4),
        # LR x0.5 every 100k steps
        defaults={
            "model": {"generator": "munit", "shortcut": "ms", "discriminator": "multiscale"},
            "optim": {"lr_g": 1e-4, "lr_d": 1e-4, "weight_decay": 1e-4, "lr_policy": "step"},
        },
        multimodal=True,
        pono_layout="official",
    )
)
