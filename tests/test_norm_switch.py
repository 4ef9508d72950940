"""Switchable Norm: one-hot reductions to IN / LN / BN, equality with the official algorithm
(values and gradients), eval with moving and batch averages (also on a generator, through save and
load), batch of 1, state_dict round trip;
``official=True``: equality with the official conventions in train and eval, loading official
state dicts, the registry."""

import warnings

import pytest
import torch
import torch.nn.functional as F

from ponogan.models import create_generator, load_pretrained, save_pretrained
from ponogan.norm import SwitchNorm2d, accumulate_batch_average, make_norm


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


@pytest.mark.parametrize(
    "k, reference",
    [
        (0, lambda x: F.instance_norm(x, eps=1e-5)),
        (1, lambda x: F.group_norm(x, 1, eps=1e-5)),
        (2, lambda x: F.batch_norm(x, None, None, training=True, eps=1e-5)),
    ],
)
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


def test_batch_average_on_a_generator_survives_save_and_load(tmp_path):
    """The recipe in ``accumulate_batch_average``'s docstring, on a generator with ``norm="switch"``."""
    torch.manual_seed(0)
    g = create_generator("resnet_9blocks", norm="switch", ngf=4, n_blocks=1)
    batches = [torch.rand(2, 3, 16, 16) * 2 - 1 for _ in range(3)]
    assert accumulate_batch_average(g, batches) == 3
    with torch.no_grad():  # the stem's SN sees the stem conv of each batch
        means = [g.stem.conv(g.stem.pad(b)).mean((0, 2, 3), keepdim=True) for b in batches]
    torch.testing.assert_close(g.stem.norm.running_mean, torch.stack(means).mean(0))
    assert not g.training
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        before = g(x)
    save_pretrained(tmp_path / "run", {"G": g}, {})
    loaded = load_pretrained(tmp_path / "run")[0]["G"]
    with torch.no_grad():
        assert torch.equal(loaded(x), before)


def test_batch_average_leaves_other_norms_alone_and_needs_input():
    model = torch.nn.Sequential(torch.nn.BatchNorm2d(3), SwitchNorm2d(3))
    before = model[0].running_mean.clone()
    accumulate_batch_average(model, [torch.randn(2, 3, 4, 4) + 5])
    assert torch.equal(model[0].running_mean, before)
    with pytest.raises(ValueError, match="at least one batch"):
        accumulate_batch_average(model, [])
    with pytest.raises(ValueError, match="no SwitchNorm layer"):
        accumulate_batch_average(torch.nn.Conv2d(1, 1, 1), [torch.randn(1, 1, 2, 2)])


# ----------------------------------------------------------------------------------------------
# official=True: the official implementation's conventions


def official_reference(x, params, running=None, training=True, momentum=0.9, eps=1e-5):
    """The official SN algorithm in plain ops, written from the paper and the official conventions:
    ``x`` seen as ``(N, C, H*W)``, unbiased IN variance (divide by H*W - 1), LN and BN moments
    derived from the IN ones, BN branch from ``running`` (``{"mean", "var"}``, each ``(1, C, 1)``)
    in eval, and ``running = momentum * running + (1 - momentum) * batch`` in training.
    ``params`` uses the official names; 2 mixing logits mean no BN branch."""
    n, c, h, w = x.shape
    flat = x.reshape(n, c, h * w)
    mu_in = flat.sum(-1, keepdim=True) / (h * w)
    var_in = ((flat - mu_in) ** 2).sum(-1, keepdim=True) / (h * w - 1)
    second = var_in + mu_in * mu_in
    mu_ln = mu_in.mean(1, keepdim=True)
    var_ln = second.mean(1, keepdim=True) - mu_ln * mu_ln
    means, variances = [mu_in, mu_ln], [var_in, var_ln]
    if params["mean_weight"].numel() == 3:
        if training:
            mu_bn = mu_in.mean(0, keepdim=True)
            var_bn = second.mean(0, keepdim=True) - mu_bn * mu_bn
            running["mean"] = momentum * running["mean"] + (1 - momentum) * mu_bn.detach()
            running["var"] = momentum * running["var"] + (1 - momentum) * var_bn.detach()
        else:
            mu_bn, var_bn = running["mean"], running["var"]
        means.append(mu_bn)
        variances.append(var_bn)
    mix_m = torch.exp(params["mean_weight"]) / torch.exp(params["mean_weight"]).sum()
    mix_v = torch.exp(params["var_weight"]) / torch.exp(params["var_weight"]).sum()
    mean = sum(m * t for m, t in zip(mix_m, means, strict=True))
    var = sum(m * t for m, t in zip(mix_v, variances, strict=True))
    y = ((flat - mean) / torch.sqrt(var + eps)).reshape(n, c, h, w)
    return y * params["weight"] + params["bias"]


def randomize(sn):
    with torch.no_grad():
        for p in (sn.mean_weight, sn.var_weight, sn.weight, sn.bias):
            p.normal_()
    return sn


@pytest.mark.parametrize("size", [4, 16])
def test_official_train_matches_reference_values_and_gradients(size):
    sn = randomize(SwitchNorm2d(5, official=True).double())
    x = torch.randn(3, 5, size, size, dtype=torch.float64) * 2 + 1
    g = torch.randn_like(x)
    params = dict(sn.named_parameters())
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ya = sn(xa)
    running = {"mean": torch.zeros(1, 5, 1, dtype=x.dtype), "var": torch.zeros(1, 5, 1, dtype=x.dtype)}
    yb = official_reference(xb, params, running)
    torch.testing.assert_close(ya, yb)
    for a, b in zip(
        torch.autograd.grad(ya, [xa, *params.values()], g),
        torch.autograd.grad(yb, [xb, *params.values()], g),
        strict=True,
    ):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(sn.running_mean, running["mean"].reshape(1, 5, 1, 1))
    torch.testing.assert_close(sn.running_var, running["var"].reshape(1, 5, 1, 1))
    # the test sees the convention: the paper's biased default is visibly different at this size
    default = SwitchNorm2d(5).double()
    default.load_state_dict(sn.state_dict())
    assert (default(x) - yb).abs().max() > 1e-3


def test_official_eval_after_training_steps_matches_reference():
    sn = randomize(SwitchNorm2d(4, momentum=0.7, official=True).double())
    params = {k: v.detach() for k, v in sn.named_parameters()}
    running = {name: torch.zeros(1, 4, 1, dtype=torch.float64) for name in ("mean", "var")}
    for i in range(4):
        b = torch.randn(3, 4, 4, 4, dtype=torch.float64) * (i + 1) + i
        torch.testing.assert_close(sn(b), official_reference(b, params, running, momentum=0.7))
    torch.testing.assert_close(sn.running_var, running["var"].reshape(1, 4, 1, 1))
    sn.eval()
    x = torch.randn(2, 4, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(sn(x), official_reference(x, params, running, training=False))
    default = SwitchNorm2d(4).double().eval()
    default.load_state_dict(sn.state_dict())
    assert (default(x) - sn(x)).abs().max() > 1e-3


def test_official_without_bn_matches_reference():
    sn = randomize(SwitchNorm2d(3, using_bn=False, official=True).double())
    params = dict(sn.named_parameters())
    x = torch.randn(1, 3, 4, 4, dtype=torch.float64) * 3 - 1
    torch.testing.assert_close(sn(x), official_reference(x, params))
    sn.eval()
    torch.testing.assert_close(sn(x), official_reference(x, params, training=False))


def test_official_running_var_starts_and_resets_at_zero():
    sn = SwitchNorm2d(3, official=True)
    assert torch.equal(sn.running_var, torch.zeros(1, 3, 1, 1))
    assert torch.equal(sn.running_mean, torch.zeros(1, 3, 1, 1))
    sn(torch.randn(2, 3, 4, 4) * 3)
    assert (sn.running_var > 0).all()
    sn.reset_running_stats()
    assert torch.equal(sn.running_var, torch.zeros(1, 3, 1, 1))
    default = SwitchNorm2d(3)
    assert torch.equal(default.running_var, torch.ones(1, 3, 1, 1))
    default.reset_running_stats()
    assert torch.equal(default.running_var, torch.ones(1, 3, 1, 1))
    assert "official=True" in repr(sn) and "official" not in repr(default)
    assert torch.equal(SwitchNorm2d(3, last_gamma=True, official=True).weight, torch.zeros(1, 3, 1, 1))


def official_state_dict(c, seed=0):
    """A state dict as the official module saves it: its key names and shapes, no batch counter."""
    gen = torch.Generator().manual_seed(seed)
    return {
        "weight": torch.randn(1, c, 1, 1, generator=gen),
        "bias": torch.randn(1, c, 1, 1, generator=gen),
        "mean_weight": torch.randn(3, generator=gen),
        "var_weight": torch.randn(3, generator=gen),
        "running_mean": torch.randn(1, c, 1, generator=gen),
        "running_var": torch.rand(1, c, 1, generator=gen) + 0.5,
    }


def test_official_state_dict_loads_and_matches_outputs():
    state = official_state_dict(6)
    model = torch.nn.Sequential(torch.nn.Identity(), SwitchNorm2d(6, official=True))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.load_state_dict({f"1.{k}": v for k, v in state.items()})  # strict, with a prefix
    sn = model[1].eval()
    assert sn.running_mean.shape == (1, 6, 1, 1) and sn.num_batches_tracked.item() == 0
    running = {"mean": state["running_mean"], "var": state["running_var"]}
    x = torch.randn(2, 6, 5, 5) * 2 + 1
    y = sn(x)
    ref = official_reference(x, state, running, training=False)
    torch.testing.assert_close(y, ref)
    # train mode too, and its running-stat update starts from the loaded buffers
    sn.train()
    torch.testing.assert_close(sn(x), official_reference(x, state, running))
    torch.testing.assert_close(sn.running_var, running["var"].reshape(1, 6, 1, 1))
    # ponogan's own state dict still round-trips, and is what it saves
    other = SwitchNorm2d(6, official=True)
    other.load_state_dict(sn.state_dict())
    assert torch.equal(other.running_var, sn.running_var)


def test_official_state_dict_into_paper_mode_warns_and_bad_shapes_fail():
    state = official_state_dict(4)
    with pytest.warns(UserWarning, match="official=True"):
        SwitchNorm2d(4).load_state_dict(state)
    bad = dict(state, running_mean=torch.zeros(1, 5, 1))
    with pytest.raises(RuntimeError, match="running_mean"):
        SwitchNorm2d(4, official=True).load_state_dict(bad)
    no_bn = {k: v for k, v in state.items() if not k.startswith("running")}
    no_bn.update(mean_weight=torch.randn(2), var_weight=torch.randn(2))
    sn = SwitchNorm2d(4, using_bn=False, official=True)
    sn.load_state_dict(no_bn)
    x = torch.randn(1, 4, 3, 3)
    torch.testing.assert_close(sn(x), official_reference(x, no_bn))


def test_make_norm_official():
    sn = make_norm("Switch_Norm", 4, official=True)
    assert isinstance(sn, SwitchNorm2d) and sn.official
    assert torch.equal(sn.running_var, torch.zeros(1, 4, 1, 1))
    x = torch.randn(2, 4, 4, 4)
    running = {"mean": torch.zeros(1, 4, 1), "var": torch.zeros(1, 4, 1)}
    torch.testing.assert_close(sn(x), official_reference(x, dict(sn.named_parameters()), running))
    assert not make_norm("switch", 4).official


def test_official_gradcheck_float64():
    sn = randomize(SwitchNorm2d(3, official=True).double())
    x = torch.randn(2, 3, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(sn, (x,))
    assert torch.autograd.gradgradcheck(sn, (x,))


def test_official_needs_two_pixels():
    with pytest.raises(ValueError, match=r"official=True\) needs H\*W >= 2"):
        SwitchNorm2d(3, official=True)(torch.randn(2, 3, 1, 1))
    assert torch.isfinite(SwitchNorm2d(3)(torch.randn(2, 3, 1, 1))).all()


def test_official_batch_average_pools_batches():
    sn = SwitchNorm2d(3, official=True).double()
    sn(torch.randn(2, 3, 4, 4, dtype=torch.float64) * 10)  # stale statistics to discard
    batches = [torch.randn(3, 3, 4, 4, dtype=torch.float64) * (i + 1) + 2 * i for i in range(4)]
    accumulate_batch_average(sn, batches)
    # the official helper: zero the buffers, sum mean_bn and var_bn + mean_bn^2 over the batches,
    # divide by their count, subtract the squared mean
    sum_mean = torch.zeros(1, 3, 1, dtype=torch.float64)
    sum_second = torch.zeros(1, 3, 1, dtype=torch.float64)
    for b in batches:
        flat = b.reshape(3, 3, -1)
        mu_in, var_in = flat.mean(-1, keepdim=True), flat.var(-1, keepdim=True, correction=1)
        mu_bn = mu_in.mean(0, keepdim=True)
        var_bn = (var_in + mu_in**2).mean(0, keepdim=True) - mu_bn**2
        sum_mean += mu_bn
        sum_second += var_bn + mu_bn**2
    mean = sum_mean / len(batches)
    var = sum_second / len(batches) - mean**2
    torch.testing.assert_close(sn.running_mean, mean.reshape(1, 3, 1, 1))
    torch.testing.assert_close(sn.running_var, var.reshape(1, 3, 1, 1))
