"""Losses for the three families: adversarial (``GANLoss``), gradient penalty, L1 reconstruction /
cycle / identity, and MUNIT's latent reconstruction (content, style, and PONO moments).

Every function takes tensors and returns a scalar tensor; nothing is stored between calls.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import autograd, nn

Scores = torch.Tensor | Sequence[torch.Tensor]


def _lsgan(pred: torch.Tensor, real: bool, for_d: bool) -> torch.Tensor:
    return F.mse_loss(pred, torch.full_like(pred, 1.0 if real else 0.0))


def _vanilla(pred: torch.Tensor, real: bool, for_d: bool) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(pred, torch.full_like(pred, 1.0 if real else 0.0))


def _hinge(pred: torch.Tensor, real: bool, for_d: bool) -> torch.Tensor:
    if not for_d:
        return -pred.mean()
    return F.relu(1.0 - pred).mean() if real else F.relu(1.0 + pred).mean()


def _wgan(pred: torch.Tensor, real: bool, for_d: bool) -> torch.Tensor:
    return -pred.mean() if real else pred.mean()


GAN_MODES: dict[str, Callable[[torch.Tensor, bool, bool], torch.Tensor]] = {
    "lsgan": _lsgan,  # Mao et al. 2017: mean (D(x) - target)^2, targets 1 (real) / 0 (fake)
    "vanilla": _vanilla,  # Goodfellow et al. 2014: BCE on logits
    "hinge": _hinge,  # D: relu(1 - D(real)) + relu(1 + D(fake)); G: -D(fake)
    "wgangp": _wgan,  # Gulrajani et al. 2017: D: -D(real) + D(fake) (+ gradient_penalty); G: -D(fake)
}


SCALE_REDUCTIONS = ("mean", "sum")


class GANLoss(nn.Module):
    """Adversarial loss: ``loss(pred, target_is_real, for_discriminator=True)``.

    ``pred`` is a score map ``(N, 1, h, w)`` of raw logits, or a list of them (multi-scale
    discriminator). Each map's loss is a mean over its elements; ``scale_reduction`` combines the
    maps: ``"mean"`` averages over scales, ``"sum"`` adds them (NVlabs/MUNIT's ``MsImageDis``, so a
    3-scale D weighs its GAN loss 3x the mean). One map gives the same value either way.
    For the generator call with ``target_is_real=True, for_discriminator=False``; ``lsgan`` and
    ``vanilla`` ignore ``for_discriminator``, ``hinge`` uses it (the generator term is ``-mean(D(G(x)))``).
    """

    def __init__(self, mode: str = "lsgan", scale_reduction: str = "mean"):
        super().__init__()
        if mode not in GAN_MODES:
            raise ValueError(f"unknown GAN loss mode {mode!r}; valid modes: {', '.join(GAN_MODES)}")
        if scale_reduction not in SCALE_REDUCTIONS:
            raise ValueError(
                f"unknown scale_reduction {scale_reduction!r}; valid: {', '.join(SCALE_REDUCTIONS)}"
            )
        self.mode = mode
        self.scale_reduction = scale_reduction

    def forward(self, pred: Scores, target_is_real: bool, for_discriminator: bool = True) -> torch.Tensor:
        if not for_discriminator and not target_is_real:
            raise ValueError(
                "the generator loss pushes fakes towards 'real': call with target_is_real=True "
                "when for_discriminator=False"
            )
        preds = [pred] if isinstance(pred, torch.Tensor) else list(pred)
        if not preds or not all(isinstance(p, torch.Tensor) for p in preds):
            raise TypeError(
                f"GANLoss expects a tensor or a non-empty list of tensors, got {type(pred).__name__}"
            )
        fn = GAN_MODES[self.mode]
        per_scale = torch.stack([fn(p, target_is_real, for_discriminator) for p in preds])
        return per_scale.sum() if self.scale_reduction == "sum" else per_scale.mean()

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, scale_reduction={self.scale_reduction!r}"


def gradient_penalty(
    discriminator: Callable[[torch.Tensor], Scores],
    real: torch.Tensor,
    fake: torch.Tensor,
    *,
    target_norm: float = 1.0,
) -> torch.Tensor:
    """WGAN-GP penalty ``E[(||grad_x D(x_hat)||_2 - target_norm)^2]`` at random interpolates
    ``x_hat = a * real + (1 - a) * fake``, ``a ~ U(0, 1)`` per sample; ``real, fake (N, C, H, W)``.
    ``fake`` is detached; the result keeps the graph (``create_graph=True``) so it can be
    back-propagated into ``D``. A multi-scale ``D`` (list of score maps) is penalised on the gradient
    of the sum of all its scores. The gradient norm and the penalty are computed in at least float32
    (a bf16 gradient is promoted). Multiply by the penalty weight (10 in the paper) yourself.
    """
    if real.shape != fake.shape:
        raise ValueError(
            f"real and fake must have the same shape, got {tuple(real.shape)} and {tuple(fake.shape)}"
        )
    alpha = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), device=real.device, dtype=real.dtype)
    x_hat = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    scores = discriminator(x_hat)
    scores = [scores] if isinstance(scores, torch.Tensor) else list(scores)
    total = sum(s.sum() for s in scores)
    (grad,) = autograd.grad(total, x_hat, create_graph=True)
    grad = grad.to(torch.promote_types(grad.dtype, torch.float32))
    return ((grad.flatten(1).norm(2, dim=1) - target_norm) ** 2).mean()


def reconstruction_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error ``mean |output - target|`` (pix2pix's L1, MUNIT's image reconstruction)."""
    if output.shape != target.shape:
        raise ValueError(f"output {tuple(output.shape)} and target {tuple(target.shape)} differ in shape")
    return F.l1_loss(output, target)


# CycleGAN's cycle consistency (L1 between ``G_B(G_A(x))`` and ``x``) and identity loss (L1 between
# ``G_A(y)`` and ``y`` for ``y`` from the target domain) are this same L1
cycle_loss = identity_loss = reconstruction_loss


def moment_loss(
    moments_rec: Sequence[tuple[torch.Tensor, torch.Tensor]],
    moments: Sequence[tuple[torch.Tensor, torch.Tensor]],
    reduction: str = "mean",
) -> torch.Tensor:
    """L1 between two lists of PONO moments ``[(mean, std) (N, 1, h, w), ...]``: one L1 (mean over
    elements) per map, then ``reduction`` over the ``2 * len(moments)`` maps: ``"mean"`` averages
    them, ``"sum"`` adds them (the official PONO-MUNIT ``recon_criterion``). Empty lists give 0."""
    if reduction not in ("mean", "sum"):
        raise ValueError(f"unknown moment reduction {reduction!r}; valid: mean, sum")
    if len(moments_rec) != len(moments):
        raise ValueError(f"got {len(moments_rec)} and {len(moments)} moment levels")
    if not moments:
        return torch.zeros(())
    pairs = zip(moments_rec, moments, strict=True)
    terms = torch.stack(
        [reconstruction_loss(a, b) for pair_rec, pair in pairs for a, b in zip(pair_rec, pair, strict=True)]
    )
    return terms.sum() if reduction == "sum" else terms.mean()


def latent_reconstruction_loss(
    recon: tuple, target: tuple, moment_reduction: str = "mean"
) -> dict[str, torch.Tensor]:
    """MUNIT latent reconstruction: ``recon`` and ``target`` are ``(content, moments, style)``
    triples (``MunitGenerator.encode`` output), e.g. the re-encoding of a translated image against
    the content/moments that produced it and the style it was decoded with.

    Returns ``{"content": L1, "style": L1, "moments": L1 (0 when there are no moments)}``, the
    moment L1s combined by ``moment_reduction`` (see ``moment_loss``); the trainer weights and sums
    them. Targets are not detached (as in MUNIT).
    """
    content_rec, moments_rec, style_rec = recon
    content, moments, style = target
    loss_moments = moment_loss(moments_rec, moments, moment_reduction).to(
        device=content.device, dtype=content.dtype
    )
    return {
        "content": reconstruction_loss(content_rec, content),
        "style": reconstruction_loss(style_rec, style),
        "moments": loss_moments,
    }
