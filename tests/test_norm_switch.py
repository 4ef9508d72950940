"""Switchable Norm: one-hot reductions to IN / LN / BN, equality with the official algorithm
(values and gradients), eval with moving and batch averages, batch of 1, state_dict round trip."""

import pytest
import torch
import torch.nn.functional as F

from ponogan.norm import SwitchNorm1d, SwitchNorm2d, accumulate_batch_average


def one_hot_logits(k: int, n: int = 3) -> torch.Tensor:
    logits = torch.full((n,), -1e4)
    logits[k] = 1e4
    return logits


def set_logits(sn, mean_k: int, var_k: int):
    with torch.no_grad():
        sn.mean_weight.copy_(one_hot_logits(mean_k, sn.mean_weight.numel()))
        sn.var_weight.copy_(one_hot_logits(var_k, sn.var_weight.numel()))


def official_switch(x, sn):
    """The official SN algorithm (training mode), written out with the paper's biased variance."""
    n, c, h, w = x.shape
    v = x.view(n, c, -1)
    mean_in, var_in = v.mean(-1, keepdim=True), v.var(-1, keepdim=True, unbiased=False)
    temp = var_in + mean_in**2
    mean_ln = mean_in.mean(1, keepdim=True)
    var_ln = temp.mean(1, keepdim=True) - mean_ln**2
    mean_bn = mean_in.mean(0, keepdim=True)
    var_bn = temp.mean(0, keepdim=True) - mean_bn**2
    mw, vw = torch.softmax(sn.mean_weight, 0), torch.softmax(sn.var_weight, 0)
    mean = mw[0] * mean_in + mw[1] * mean_ln + mw[2] * mean_bn
    var = vw[0] * var_in + vw[1] * var_ln + vw[2] * var_bn
    return ((v - mean) / (var + sn.eps).sqrt()).view(n, c, h, w) * sn.weight + sn.bias


@pytest.mark.parametrize("k, reference", [
    (0, lambda x: F.instance_norm(x, eps=1e-5)),
    (1, lambda x: F.group_norm(x, 1, eps=1e-5)),
    (2, lambda x: F.batch_norm(x, None, None, training=True, eps=1e-5)),
])
def test_one_hot_logits_reduce_to_in_ln_bn(k, reference):
    sn = SwitchNorm2d(6)
    set_logits(sn, k, k)
    x = torch.randn(4, 6, 5, 5) * 2 + 1
    torch.testing.assert_close(sn(x), reference(x), rtol=1e-4, atol=1e-5)


def test_matches_official_algorithm_values_and_gradients():
    sn = SwitchNorm2d(5).double()
    with torch.no_grad():
        for p in (sn.mean_weight, sn.var_weight, sn.weight, sn.bias):
            p.normal_()
    x = torch.randn(3, 5, 4, 6, dtype=torch.float64) * 2 + 1
    g = torch.randn_like(x)
    params = [sn.mean_weight, sn.var_weight, sn.weight, sn.bias]
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ya = sn(xa)
    ga = torch.autograd.grad(ya, [xa, *params], g)
    yb = official_switch(xb, sn)
    gb = torch.autograd.grad(yb, [xb, *params], g)
    torch.testing.assert_close(ya, yb)
    for a, b in zip(ga, gb, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_gradcheck_float64(memory_format):
    sn = SwitchNorm2d(3).double()
    with torch.no_grad():
        sn.mean_weight.normal_()
        sn.var_weight.normal_()
    x = torch.randn(2, 3, 3, 4, dtype=torch.float64).contiguous(memory_format=memory_format)
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(sn, (x,))
    assert torch.autograd.gradgradcheck(sn, (x,))


def test_batch_of_one_has_no_nan_with_and_without_bn():
    for using_bn in (True, False):
        sn = SwitchNorm2d(4, using_bn=using_bn)
        x = torch.randn(1, 4, 3, 3, requires_grad=True)
        y = sn(x)
        y.square().sum().backward()
        assert torch.isfinite(y).all() and torch.isfinite(x.grad).all()
        assert sn.mean_weight.numel() == (3 if using_bn else 2)


def test_eval_uses_moving_average():
    sn = SwitchNorm2d(3, momentum=0.5)
    set_logits(sn, 2, 2)
    batches = [torch.randn(4, 3, 5, 5) * (i + 1) + i for i in range(3)]
    mean_ref, var_ref = torch.zeros(1, 3, 1, 1), torch.ones(1, 3, 1, 1)
    for b in batches:
        sn(b)
        var, mean = torch.var_mean(b, dim=(0, 2, 3), keepdim=True, correction=0)
        mean_ref = 0.5 * mean_ref + 0.5 * mean
        var_ref = 0.5 * var_ref + 0.5 * var
    torch.testing.assert_close(sn.running_mean, mean_ref)
    torch.testing.assert_close(sn.running_var, var_ref)
    sn.eval()
    x = torch.randn(2, 3, 5, 5)
    torch.testing.assert_close(sn(x), (x - mean_ref) / (var_ref + sn.eps).sqrt())


def test_eval_with_batch_average():
    model = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 1), SwitchNorm2d(3))
    sn = model[1]
    sn(torch.randn(2, 3, 4, 4) * 10)  # stale statistics that the batch average must discard
    batches = [torch.randn(3, 2, 4, 4) + i for i in range(4)]
    assert accumulate_batch_average(model, batches) == 4
    assert not model.training and not sn.using_moving_average
    with torch.no_grad():
        feats = [model[0](b) for b in batches]
    stats = [torch.var_mean(f, dim=(0, 2, 3), keepdim=True, correction=0) for f in feats]
    torch.testing.assert_close(sn.running_mean, torch.stack([m for _, m in stats]).mean(0))
    torch.testing.assert_close(sn.running_var, torch.stack([v for v, _ in stats]).mean(0))
    frozen = sn.running_mean.clone()
    with torch.no_grad():
        model(torch.randn(3, 2, 4, 4) + 100)  # eval: statistics stay frozen
    assert torch.equal(sn.running_mean, frozen)


def test_state_dict_round_trip():
    sn = SwitchNorm2d(4)
    with torch.no_grad():
        sn.mean_weight.normal_()
        sn.weight.normal_()
    sn(torch.randn(2, 4, 3, 3))
    other = SwitchNorm2d(4)
    other.load_state_dict(sn.state_dict())
    sn.eval()
    other.eval()
    x = torch.randn(2, 4, 3, 3)
    assert torch.equal(sn(x), other(x))
    assert set(sn.state_dict()) >= {"mean_weight", "var_weight", "running_mean", "running_var"}


def test_switchnorm1d_reduces_to_layer_and_batch_norm():
    x = torch.randn(5, 7) * 3 + 1
    sn = SwitchNorm1d(7)
    set_logits(sn, 0, 0)
    torch.testing.assert_close(sn(x), F.layer_norm(x, (7,)), rtol=1e-4, atol=1e-5)
    set_logits(sn, 1, 1)
    torch.testing.assert_close(sn(x), F.batch_norm(x, None, None, training=True), rtol=1e-4, atol=1e-5)


def test_bf16_autocast_cpu():
    sn = SwitchNorm2d(4)
    x = torch.randn(2, 4, 6, 6, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = sn(x.bfloat16())
    y.float().square().sum().backward()
    torch.testing.assert_close(y.float(), official_switch(x.detach(), sn).detach(), atol=6e-2, rtol=6e-2)
    assert torch.isfinite(x.grad).all() and sn.mean_weight.grad is not None


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match=r"expects a 4-D tensor \(N, C, H, W\)"):
        SwitchNorm2d(3)(torch.randn(2, 3))
    with pytest.raises(ValueError, match="built for 3 channels"):
        SwitchNorm2d(3)(torch.randn(2, 4, 2, 2))
    with pytest.raises(ValueError, match=r"expects \(N, C\)"):
        SwitchNorm1d(3)(torch.randn(2, 3, 2, 2))


def test_batch_average_leaves_other_norms_alone_and_needs_input():
    model = torch.nn.Sequential(torch.nn.BatchNorm2d(3), SwitchNorm2d(3))
    before = model[0].running_mean.clone()
    accumulate_batch_average(model, [torch.randn(2, 3, 4, 4) + 5])
    assert torch.equal(model[0].running_mean, before)
    with pytest.raises(ValueError, match="at least one batch"):
        accumulate_batch_average(model, [])
    with pytest.raises(ValueError, match="no SwitchNorm layer"):
        accumulate_batch_average(torch.nn.Conv2d(1, 1, 1), [torch.randn(1, 1, 2, 2)])
