"""PONO: the fused path against the written formula (values and gradients of y, mean and std, both
memory formats, float64 gradcheck, bf16 autocast), and MS / DMS."""

import pytest
import torch

from ponogan.norm import PONO, DynamicMomentShortcut, MomentShortcut, pono, pono_reference
from ponogan.norm.pono import use_fast_path

FORMATS = [torch.contiguous_format, torch.channels_last]


def formula(x, eps=1e-5, unbiased=False):
    """PONO written from the paper, independent of the package: loops over nothing, plain ops."""
    c = x.shape[1]
    mean = x.sum(1, keepdim=True) / c
    var = ((x - mean) ** 2).sum(1, keepdim=True) / (c - 1 if unbiased else c)
    std = (var + eps) ** 0.5
    return (x - mean) / std, mean, std


def _outputs_and_grads(fn, x, grads):
    x = x.detach().requires_grad_(True)
    out = fn(x)
    torch.autograd.backward(out, grads)
    return [o.detach() for o in out], x.grad


@pytest.mark.parametrize("memory_format", FORMATS)
@pytest.mark.parametrize("unbiased", [False, True])
def test_fast_path_matches_formula_values_and_gradients(memory_format, unbiased):
    x = (torch.randn(2, 7, 5, 6) * 3 + 2).contiguous(memory_format=memory_format)
    grads = [torch.randn(2, 7, 5, 6), torch.randn(2, 1, 5, 6), torch.randn(2, 1, 5, 6)]
    ours, g_ours = _outputs_and_grads(lambda t: pono(t, 1e-5, unbiased, fast=True), x, grads)
    ref, g_ref = _outputs_and_grads(lambda t: formula(t, 1e-5, unbiased), x, grads)
    for a, b in zip(ours, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-4, atol=1e-5)
    assert ours[0].is_contiguous(memory_format=memory_format)
    assert ours[1].shape == ours[2].shape == (2, 1, 5, 6)


@pytest.mark.parametrize("memory_format", FORMATS)
def test_fast_path_gradient_of_each_output_alone(memory_format):
    """Each of y, mean, std used on its own (the others get no gradient at all)."""
    x = torch.randn(2, 5, 3, 4, dtype=torch.float64).contiguous(memory_format=memory_format)
    for k in range(3):
        xa = x.clone().requires_grad_(True)
        xb = x.clone().requires_grad_(True)
        (pono(xa, fast=True)[k] ** 2).sum().backward()
        (formula(xb)[k] ** 2).sum().backward()
        torch.testing.assert_close(xa.grad, xb.grad)


@pytest.mark.parametrize("memory_format", FORMATS)
@pytest.mark.parametrize("unbiased", [False, True])
def test_gradcheck_float64(memory_format, unbiased):
    x = torch.randn(2, 3, 2, 3, dtype=torch.float64).contiguous(memory_format=memory_format)
    x.requires_grad_(True)
    fn = lambda t: pono(t, 1e-3, unbiased, fast=True)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,))
    if memory_format == torch.contiguous_format:  # the backward is the same code for both formats
        assert torch.autograd.gradgradcheck(fn, (x,))


def test_reference_and_public_function_agree_with_formula():
    x = torch.randn(3, 6, 4, 4, dtype=torch.float64)
    for got in (pono_reference(x), pono(x, fast=False), pono(x)):
        for a, b in zip(got, formula(x), strict=True):
            torch.testing.assert_close(a, b)


def test_unbiased_matches_official_code():
    x = torch.randn(2, 8, 4, 4, dtype=torch.float64)
    y, mean, std = pono(x, unbiased=True)
    torch.testing.assert_close(std, (x.var(dim=1, keepdim=True) + 1e-5).sqrt())
    torch.testing.assert_close(y, (x - x.mean(dim=1, keepdim=True)) / std)


def test_output_statistics_are_normalised():
    y, _, _ = pono(torch.randn(2, 32, 5, 5) * 4 + 3, eps=0.0)
    torch.testing.assert_close(y.mean(1), torch.zeros(2, 5, 5), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.var(1, correction=0), torch.ones(2, 5, 5), atol=1e-4, rtol=0)


def test_inplace_op_on_output_keeps_backward_valid():
    """The fused path saves x, not y, so an in-place activation after PONO is legal."""
    x = torch.randn(2, 4, 3, 3, requires_grad=True)
    y, mean, std = pono(x, fast=True)
    torch.relu_(y)
    (y.sum() + mean.sum() + std.sum()).backward()
    assert torch.isfinite(x.grad).all()


def test_bf16_autocast_cpu_matches_float32():
    x = torch.randn(2, 16, 4, 4)
    xb = x.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y, mean, std = pono(xb.bfloat16())
    assert y.dtype == mean.dtype == std.dtype == torch.bfloat16
    (y.float().sum() + std.float().sum()).backward()
    y_ref, _, std_ref = formula(x)
    torch.testing.assert_close(y.float(), y_ref, atol=5e-2, rtol=5e-2)
    torch.testing.assert_close(std.float(), std_ref, atol=5e-2, rtol=5e-2)
    assert torch.isfinite(xb.grad).all()


def test_constant_input_gives_finite_outputs_and_gradients():
    x = torch.full((1, 4, 2, 2), 3.0, requires_grad=True)
    y, mean, std = pono(x)
    (y.sum() + std.sum()).backward()
    assert torch.all(y == 0) and torch.isfinite(x.grad).all()


def test_path_rule_and_torch_compile():
    """Eager: the fused function. While torch.compile traces: the plain formula, same values."""
    x = torch.randn(2, 4, 3, 3)
    assert use_fast_path(x)
    flag = torch.compile(lambda t: t.new_tensor(float(use_fast_path(t))), backend="eager", fullgraph=True)
    assert flag(x).item() == 0.0
    compiled = torch.compile(lambda t: pono(t)[0], backend="eager", fullgraph=True)
    torch.testing.assert_close(compiled(x), formula(x)[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bad", [torch.randn(2, 3, 4), torch.randn(1, 2, 3, 4, 5)])
def test_bad_rank_is_a_clear_error(bad):
    with pytest.raises(ValueError, match=r"4-D tensor \(N, C, H, W\)"):
        PONO()(bad)


def test_integer_input_and_unbiased_single_channel_are_clear_errors():
    with pytest.raises(TypeError, match="floating-point"):
        pono(torch.ones(1, 2, 2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="C >= 2"):
        pono(torch.randn(1, 1, 2, 2), unbiased=True)
    with pytest.raises(ValueError, match="needs num_channels"):
        PONO(affine=True)
    with pytest.raises(ValueError, match="built for 4 channels"):
        PONO(num_channels=4)(torch.randn(1, 3, 2, 2))


def test_module_affine_and_return_moments():
    m = PONO(affine=True, num_channels=3)
    with torch.no_grad():
        m.weight.fill_(2.0)
        m.bias.fill_(1.0)
    x = torch.randn(2, 3, 4, 4)
    y, mean, std = m(x)
    torch.testing.assert_close(y, formula(x)[0] * 2 + 1, rtol=1e-5, atol=1e-5)
    y.sum().backward()
    assert m.weight.grad is not None and m.bias.grad is not None
    assert isinstance(PONO(return_moments=False)(x), torch.Tensor)


def test_moment_shortcut_reinjects_moments():
    x = torch.randn(2, 5, 4, 4, dtype=torch.float64, requires_grad=True)
    y, mean, std = pono(x)
    out = MomentShortcut()(y, mean, std)
    torch.testing.assert_close(out, x)  # MS undoes PONO exactly
    assert torch.autograd.gradcheck(
        lambda a, b, c: MomentShortcut()(a, b, c),
        (
            torch.randn(1, 3, 2, 2, dtype=torch.float64, requires_grad=True),
            torch.randn(1, 1, 2, 2, dtype=torch.float64, requires_grad=True),
            torch.rand(1, 1, 2, 2, dtype=torch.float64, requires_grad=True),
        ),
    )


def test_moment_shortcut_is_out_of_place():
    x, mean, std = torch.randn(1, 3, 2, 2), torch.randn(1, 1, 2, 2), torch.rand(1, 1, 2, 2)
    before = x.clone()
    MomentShortcut()(x, mean, std)
    assert torch.equal(x, before)


def test_dynamic_moment_shortcut_starts_as_ms_and_learns():
    dms = DynamicMomentShortcut(6)
    x, mean, std = torch.randn(2, 6, 5, 5), torch.randn(2, 1, 5, 5), torch.rand(2, 1, 5, 5) + 0.5
    out = dms(x, mean, std)
    assert out.shape == (2, 6, 5, 5)
    torch.testing.assert_close(out, MomentShortcut()(x, mean, std))
    out.square().sum().backward()
    for name, p in dms.named_parameters():
        assert p.grad is not None, name
    assert dms.net[-1].weight.grad.abs().sum() > 0


def test_dynamic_moment_shortcut_gradients_reach_inputs():
    dms = DynamicMomentShortcut(4, hidden_channels=8).double()
    with torch.no_grad():
        for p in dms.parameters():
            p.normal_(0, 0.3)
    args = (
        torch.randn(1, 4, 3, 3, dtype=torch.float64, requires_grad=True),
        torch.randn(1, 1, 3, 3, dtype=torch.float64, requires_grad=True),
        torch.rand(1, 1, 3, 3, dtype=torch.float64, requires_grad=True),
    )
    assert torch.autograd.gradcheck(dms, args)


def test_shortcut_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        MomentShortcut()(torch.randn(2, 3, 4, 4), torch.randn(2, 1, 8, 8), torch.randn(2, 1, 8, 8))
    with pytest.raises(ValueError, match="channels"):
        DynamicMomentShortcut(5)(torch.randn(2, 3, 4, 4), torch.randn(2, 1, 4, 4), torch.randn(2, 1, 4, 4))
