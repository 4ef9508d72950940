"""The registry and the classic members: every name builds and trains, names normalise, kwargs reach
the class, GN / IN / LN / AdaIN against torch references or formulas, bf16 autocast, state_dict round
trips."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ponogan.norm import (
    NORM_REGISTRY,
    PONO,
    AdaIN,
    BatchNorm2d,
    GroupNorm,
    InstanceNorm2d,
    LayerNormCHW,
    SwitchNorm2d,
    make_norm,
    pono_reference,
)

C = 8


def style(name: str, n: int = 2) -> tuple:
    """What a norm's forward takes besides x: AdaIN's per-sample affine ``(N, C)`` from a style code."""
    return (torch.rand(n, C) + 0.5, torch.randn(n, C)) if name == "adain" else ()


@pytest.mark.parametrize("name", list(NORM_REGISTRY))
def test_every_name_builds_runs_forward_backward(name):
    norm = make_norm(name, C)
    x = torch.randn(2, C, 5, 5, requires_grad=True)
    y = norm(x, *style(name))
    assert isinstance(y, torch.Tensor) and y.shape == x.shape
    (y * torch.randn_like(y)).sum().backward()
    assert torch.isfinite(y).all() and torch.isfinite(x.grad).all()
    for pname, p in norm.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), f"{name}.{pname} got no gradient"


@pytest.mark.parametrize("name", list(NORM_REGISTRY))
def test_every_name_under_bf16_autocast(name):
    torch.manual_seed(0)
    norm = make_norm(name, C)
    x = torch.randn(2, C, 4, 4, requires_grad=True)
    affine = style(name)
    ref = norm(x, *affine)  # float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = norm(x, *affine)
    y.float().sum().backward()
    assert torch.isfinite(y.float()).all() and torch.isfinite(x.grad).all()
    # bf16 keeps 8 bits of mantissa: outputs of unit scale agree to a few hundredths
    assert (y.float() - ref.detach()).abs().max() < 0.1


@pytest.mark.parametrize("name", list(NORM_REGISTRY))
def test_every_name_state_dict_round_trip(name):
    norm = make_norm(name, C)
    with torch.no_grad():
        for p in norm.parameters():
            p.normal_()
    norm.train()
    norm(torch.randn(2, C, 3, 3), *style(name))  # moves running statistics where there are any
    clone = make_norm(name, C)
    clone.load_state_dict(norm.state_dict())
    norm.eval()
    clone.eval()
    x, affine = torch.randn(2, C, 3, 3), style(name)
    torch.testing.assert_close(norm(x, *affine), clone(x, *affine), rtol=0, atol=0)


@pytest.mark.parametrize(
    "name",
    [
        "Instance",
        "INSTANCE_NORM",
        "instance_norm",
        "instance-norm",
        "instancenorm",
        "Group_Norm",
        "PONO",
        "switch_norm",
        "None",
    ],
)
def test_name_normalisation(name):
    canonical = name.lower().replace("_", "").replace("-", "").removesuffix("norm") or "none"
    assert type(make_norm(name, C)) is type(make_norm(canonical, C))


def test_names_map_to_the_right_classes():
    assert isinstance(make_norm("batch", C), BatchNorm2d)
    assert isinstance(make_norm("Instance_Norm", C), InstanceNorm2d)
    assert isinstance(make_norm("layer", C), LayerNormCHW)
    assert isinstance(make_norm("group", C), GroupNorm)
    assert isinstance(make_norm("switch", C), SwitchNorm2d)
    assert isinstance(make_norm("pono", C), PONO)
    assert type(make_norm("none", C)) is nn.Identity


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="unknown norm 'spectral'") as info:
        make_norm("spectral", C)
    for name in NORM_REGISTRY:
        assert name in str(info.value)
    assert type(make_norm("AdaIN", C)) is AdaIN  # by name too; its affine comes from a style code
    with pytest.raises(TypeError, match="must be a string"):
        make_norm(None, C)


def test_kwargs_reach_the_class():
    assert make_norm("group", 64, num_groups=8).num_groups == 8
    assert make_norm("switch", C, using_bn=False).mean_weight.numel() == 2
    assert make_norm("pono", C, unbiased=True).unbiased
    assert make_norm("batch", C, momentum=0.3).momentum == 0.3
    with pytest.raises(TypeError):
        make_norm("instance", C, no_such_option=1)


def test_registry_pono_is_a_drop_in_returning_y():
    x = torch.randn(2, C, 3, 3)
    y = make_norm("pono", C)(x)
    assert isinstance(y, torch.Tensor) and torch.allclose(y, pono_reference(x)[0], atol=1e-5)
    y, mean, std = make_norm("pono", C, return_moments=True)(torch.randn(2, C, 3, 3))
    assert mean.shape == std.shape == (2, 1, 3, 3)


@pytest.mark.parametrize(
    "channels, groups, expected", [(64, 32, 32), (8, 32, 8), (12, 32, 12), (48, 32, 24), (6, 4, 3), (7, 4, 1)]
)
def test_group_norm_clamps_groups(channels, groups, expected):
    gn = GroupNorm(channels, num_groups=groups)
    assert gn.num_groups == expected
    x = torch.randn(2, channels, 3, 3)
    ref = nn.GroupNorm(expected, channels)
    ref.load_state_dict(gn.state_dict())
    torch.testing.assert_close(gn(x), ref(x))


def test_group_norm_matches_formula():
    x = torch.randn(2, 8, 4, 4) * 3 + 1
    gn = GroupNorm(8, num_groups=4)
    g = x.view(2, 4, -1)
    ref = ((g - g.mean(-1, keepdim=True)) / (g.var(-1, correction=0, keepdim=True) + 1e-5).sqrt()).view_as(x)
    torch.testing.assert_close(gn(x), ref, rtol=1e-4, atol=1e-5)


def test_instance_norm_matches_torch_and_formula():
    x = torch.randn(3, C, 5, 4) * 2 - 1
    ours = InstanceNorm2d(C)(x)
    torch.testing.assert_close(ours, nn.InstanceNorm2d(C)(x))
    var, mean = torch.var_mean(x, dim=(2, 3), keepdim=True, correction=0)
    torch.testing.assert_close(ours, (x - mean) / (var + 1e-5).sqrt(), rtol=1e-4, atol=1e-5)


def test_layer_norm_chw_is_the_formula():
    """The default path (``F.group_norm`` with one group) is layer norm over C, H, W per sample with
    a per-channel affine; ``munit_std=True`` is MUNIT's ``(x - mean) / (unbiased std + eps)``."""
    x = torch.randn(2, C, 4, 5, dtype=torch.float64) * 2 + 3
    for munit_std in (False, True):
        ln = LayerNormCHW(C, munit_std=munit_std).double()
        with torch.no_grad():
            ln.weight.normal_()
            ln.bias.normal_()
        var, mean = torch.var_mean(x, dim=(1, 2, 3), keepdim=True, correction=int(munit_std))
        y = (x - mean) / (var.sqrt() + 1e-5 if munit_std else (var + 1e-5).sqrt())
        ref = y * ln.weight.view(1, C, 1, 1) + ln.bias.view(1, C, 1, 1)
        torch.testing.assert_close(ln(x), ref, rtol=0, atol=1e-12)
    assert LayerNormCHW(C, affine=False).state_dict() == {}
    assert set(LayerNormCHW(C).state_dict()) == {"weight", "bias"}  # the keys old checkpoints hold


def test_adain_applies_per_sample_affine():
    x = torch.randn(2, 3, 4, 4)
    weight, bias = torch.rand(2, 3), torch.randn(2, 3)
    y = AdaIN(3)(x, weight, bias)
    ref = F.instance_norm(x) * weight[:, :, None, None] + bias[:, :, None, None]
    torch.testing.assert_close(y, ref)
    with pytest.raises(ValueError, match=r"weight and bias of shape \(2, 3\)"):
        AdaIN(3)(x, torch.rand(3), torch.rand(3))


@pytest.mark.parametrize("name", ["batch", "instance", "layer", "group", "switch", "pono", "adain"])
def test_bad_input_shape_is_a_clear_error(name):
    norm, args = (
        (AdaIN(C), (torch.rand(2, C), torch.rand(2, C))) if name == "adain" else (make_norm(name, C), ())
    )
    with pytest.raises(ValueError, match=rf"built for {C} channels got input of shape \(2, {C + 1}, 4, 4\)"):
        norm(torch.randn(2, C + 1, 4, 4), *args)
    with pytest.raises(ValueError, match=r"expects a 4-D tensor \(N, C, H, W\), got shape \(2, 8, 4\)"):
        norm(torch.randn(2, C, 4), *args)
