"""GAN losses on known inputs, gradient penalty against its closed form, L1 and latent losses."""

import math

import pytest
import torch

from ponogan.losses import (
    GANLoss,
    cycle_loss,
    gradient_penalty,
    identity_loss,
    latent_reconstruction_loss,
    moment_loss,
    reconstruction_loss,
)


def full(v, shape=(2, 1, 3, 3)):
    return torch.full(shape, float(v))


@pytest.mark.parametrize("mode, pred, real, for_d, expected", [
    ("lsgan", 0.0, True, True, 1.0),
    ("lsgan", 0.0, False, True, 0.0),
    ("lsgan", 0.5, True, False, 0.25),
    ("lsgan", 3.0, False, True, 9.0),
    ("vanilla", 0.0, True, True, math.log(2)),
    ("vanilla", 0.0, False, True, math.log(2)),
    ("vanilla", 2.0, True, False, math.log1p(math.exp(-2.0))),
    ("vanilla", 2.0, False, True, 2.0 + math.log1p(math.exp(-2.0))),
    ("hinge", 0.5, True, True, 0.5),
    ("hinge", 2.0, True, True, 0.0),
    ("hinge", -0.5, False, True, 0.5),
    ("hinge", -3.0, False, True, 0.0),
    ("hinge", 2.0, True, False, -2.0),
    ("wgangp", 1.5, True, True, -1.5),
    ("wgangp", 1.5, False, True, 1.5),
    ("wgangp", 1.5, True, False, -1.5),
])
def test_gan_loss_known_values(mode, pred, real, for_d, expected):
    loss = GANLoss(mode)(full(pred), real, for_discriminator=for_d)
    assert loss.shape == ()
    assert loss.item() == pytest.approx(expected, rel=1e-6, abs=1e-6)


@pytest.mark.parametrize("mode", ["lsgan", "vanilla", "hinge", "wgangp"])
def test_multiscale_list_is_averaged_over_scales(mode):
    crit = GANLoss(mode)
    preds = [torch.randn(2, 1, 8, 8), torch.randn(2, 1, 4, 4), torch.randn(2, 1, 2, 2)]
    expected = sum(crit(p, True) for p in preds) / 3
    torch.testing.assert_close(crit(preds, True), expected)
    torch.testing.assert_close(crit(tuple(preds), False), sum(crit(p, False) for p in preds) / 3)


def test_gan_loss_bad_input():
    with pytest.raises(ValueError, match="valid modes: lsgan, vanilla, hinge, wgangp"):
        GANLoss("wasserstein")
    with pytest.raises(ValueError, match="target_is_real=True"):
        GANLoss("hinge")(full(0), False, for_discriminator=False)
    with pytest.raises(TypeError, match="non-empty list"):
        GANLoss("lsgan")([], True)


def test_gan_loss_backprops_and_keeps_dtype():
    pred = torch.randn(2, 1, 4, 4, dtype=torch.float64, requires_grad=True)
    loss = GANLoss("vanilla")(pred, True)
    loss.backward()
    assert loss.dtype == torch.float64 and pred.grad is not None


def test_gradient_penalty_matches_closed_form_for_a_linear_critic():
    """D(x) = sum(w * x) per sample has gradient w everywhere: penalty = (||w|| - 1)^2."""
    w = torch.randn(1, 2, 4, 4)

    def critic(x):
        return (x * w).sum(dim=(1, 2, 3)).view(-1, 1, 1, 1)

    real, fake = torch.randn(3, 2, 4, 4), torch.randn(3, 2, 4, 4, requires_grad=True)
    gp = gradient_penalty(critic, real, fake)
    torch.testing.assert_close(gp, (w.norm() - 1) ** 2)
    gp_list = gradient_penalty(lambda x: [critic(x), critic(x)], real, fake)
    torch.testing.assert_close(gp_list, (2 * w.norm() - 1) ** 2)
    assert fake.grad is None


def test_gradient_penalty_reaches_the_critic_parameters():
    critic = torch.nn.Conv2d(3, 1, 3, padding=1)
    gp = gradient_penalty(critic, torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8))
    gp.backward()
    assert critic.weight.grad is not None and critic.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="same shape"):
        gradient_penalty(critic, torch.randn(2, 3, 8, 8), torch.randn(1, 3, 8, 8))


def test_l1_losses():
    a, b = torch.zeros(1, 1, 2, 2), torch.tensor([[[[1.0, -1.0], [2.0, 0.0]]]])
    assert reconstruction_loss(a, b).item() == pytest.approx(1.0)
    assert cycle_loss(a, b).item() == pytest.approx(1.0)
    assert identity_loss(b, b).item() == 0.0
    with pytest.raises(ValueError, match="differ in shape"):
        reconstruction_loss(a, b[..., :1])


def test_latent_reconstruction_with_and_without_moments():
    c, s = torch.zeros(1, 4, 2, 2), torch.zeros(1, 3, 1, 1)
    m = [(torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4)), (torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2))]
    m_rec = [(torch.full((1, 1, 4, 4), 0.5), torch.ones(1, 1, 4, 4)), (torch.zeros(1, 1, 2, 2),
                                                                     torch.full((1, 1, 2, 2), 3.0))]
    losses = latent_reconstruction_loss((c + 1, m_rec, s - 2), (c, m, s))
    assert losses["content"].item() == pytest.approx(1.0)
    assert losses["style"].item() == pytest.approx(2.0)
    assert losses["moments"].item() == pytest.approx((0.5 + 0 + 0 + 2.0) / 4)
    plain = latent_reconstruction_loss((c, [], s), (c, [], s))
    assert plain["moments"].item() == 0.0
    with pytest.raises(ValueError, match="moment levels"):
        moment_loss(m[:1], m)
