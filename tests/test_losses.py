"""GAN losses on known inputs, gradient penalty against its closed form, L1 and latent losses."""

import math

import pytest
import torch
import torch.nn.functional as F

from ponogan.training.losses import (
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


@pytest.mark.parametrize(
    "mode, pred, real, for_d, expected",
    [
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
    ],
)
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
    m_rec = [
        (torch.full((1, 1, 4, 4), 0.5), torch.ones(1, 1, 4, 4)),
        (torch.zeros(1, 1, 2, 2), torch.full((1, 1, 2, 2), 3.0)),
    ]
    losses = latent_reconstruction_loss((c + 1, m_rec, s - 2), (c, m, s))
    assert losses["content"].item() == pytest.approx(1.0)
    assert losses["style"].item() == pytest.approx(2.0)
    assert losses["moments"].item() == pytest.approx((0.5 + 0 + 0 + 2.0) / 4)
    plain = latent_reconstruction_loss((c, [], s), (c, [], s))
    assert plain["moments"].item() == 0.0
    with pytest.raises(ValueError, match="moment levels"):
        moment_loss(m[:1], m)


@pytest.mark.parametrize("mode", ["lsgan", "vanilla", "hinge", "wgangp"])
def test_multiscale_sum_reduction_adds_the_scales(mode):
    preds = [torch.randn(2, 1, 8, 8), torch.randn(2, 1, 4, 4), torch.randn(2, 1, 2, 2)]
    summed, mean = GANLoss(mode, scale_reduction="sum"), GANLoss(mode)
    torch.testing.assert_close(summed(preds, False), sum(mean(p, False) for p in preds))
    torch.testing.assert_close(
        summed(preds, True, for_discriminator=False), 3 * mean(preds, True, for_discriminator=False)
    )
    torch.testing.assert_close(summed(preds[0], True), mean(preds[0], True))  # one scale: no change
    assert "scale_reduction='sum'" in repr(summed)
    with pytest.raises(ValueError, match="valid: mean, sum"):
        GANLoss(mode, scale_reduction="max")


def test_gradient_penalty_of_a_linear_layer_critic_has_its_known_norm_in_float32():
    """D = Linear(C*H*W -> 1) on the flattened image: grad_x D = its weight row w, so the penalty is
    (||w|| - 1)^2 whatever the interpolates (0 for a unit row); a bf16 critic still gives a float32
    penalty (its gradient is promoted before the norm), a float64 one stays float64."""
    linear = torch.nn.Linear(2 * 3 * 3, 1)
    with torch.no_grad():
        linear.weight.copy_(torch.arange(1.0, 19.0).view(1, -1) / 10)

    def critic(x):  # the layer, run in the input's dtype without converting the module
        return F.linear(x.flatten(1), linear.weight.to(x.dtype), linear.bias.to(x.dtype)).view(-1, 1, 1, 1)

    real, fake = torch.randn(4, 2, 3, 3), torch.randn(4, 2, 3, 3)
    norm = math.sqrt(sum((k / 10) ** 2 for k in range(1, 19)))
    assert gradient_penalty(critic, real, fake).item() == pytest.approx((norm - 1) ** 2, rel=1e-5)
    assert gradient_penalty(critic, real, fake, target_norm=norm).item() == pytest.approx(0.0, abs=1e-5)
    bf16 = gradient_penalty(critic, real.bfloat16(), fake.bfloat16())
    assert bf16.dtype == torch.float32 and bf16.item() == pytest.approx((norm - 1) ** 2, rel=1e-2)
    assert gradient_penalty(critic, real.double(), fake.double()).dtype == torch.float64
    with torch.no_grad():
        linear.weight.div_(norm)
    assert gradient_penalty(critic, real, fake).item() == pytest.approx(0.0, abs=1e-6)


def test_moment_loss_reductions():
    m = [(torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4)), (torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2))]
    m_rec = [
        (torch.full((1, 1, 4, 4), 0.5), torch.ones(1, 1, 4, 4)),
        (torch.full((1, 1, 2, 2), -1.0), torch.full((1, 1, 2, 2), 3.0)),
    ]
    assert moment_loss(m_rec, m, reduction="sum").item() == pytest.approx(0.5 + 0 + 1.0 + 2.0)
    assert moment_loss(m_rec, m).item() == pytest.approx((0.5 + 0 + 1.0 + 2.0) / 4)
    assert moment_loss([], [], reduction="sum").item() == 0.0
    c, s = torch.zeros(1, 4, 2, 2), torch.zeros(1, 3, 1, 1)
    summed = latent_reconstruction_loss((c, m_rec, s), (c, m, s), moment_reduction="sum")
    assert summed["moments"].item() == pytest.approx(3.5) and summed["content"].item() == 0.0
    with pytest.raises(ValueError, match="valid: mean, sum"):
        moment_loss(m_rec, m, reduction="max")
