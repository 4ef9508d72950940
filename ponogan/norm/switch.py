"""Switchable Normalization (Luo et al., "Differentiable Learning-to-Normalize via Switchable
Normalization", ICLR 2019), written from the paper.

Statistics are a learned mixture of IN, LN and BN moments. Following Eq. 4, all three come from the
per-(sample, channel) IN moments, so the input is reduced once:

    mu_in, var_in  over H, W                     (N, C, 1, 1)
    mu_ln  = mean_c mu_in,  var_ln = mean_c(var_in + mu_in^2) - mu_ln^2     (N, 1, 1, 1)
    mu_bn  = mean_n mu_in,  var_bn = mean_n(var_in + mu_in^2) - mu_bn^2     (1, C, 1, 1)

    mu  = sum_k softmax(mean_weight)_k mu_k,   var = sum_k softmax(var_weight)_k var_k
    y   = (x - mu) / sqrt(var + eps) * gamma + beta

NOTE: the paper's Eq. 3 uses the biased variance (divide by H*W); the official code uses ``x.var``
(divide by H*W - 1) and starts ``running_var`` at 0. We follow the paper by default, which makes
one-hot SN equal IN, LN and BN exactly; ``SwitchNorm2d(C, official=True)`` reproduces the official
code's outputs and loads its state dicts (running buffers stored there as ``(1, C, 1)``).

Speed: the big tensor is touched as few times as possible. ``_InstanceMoments`` reduces ``x`` once
(``var_mean`` over H, W) and its analytic backward is one fused pass; all mixing happens on
``(N, C, 1, 1)`` tensors; ``_ChannelAffine`` normalises in one pass as ``x * scale + shift`` with
``scale = gamma / sqrt(var + eps)`` and ``shift = beta - mu * scale`` per (n, c), and its backward
reduces ``gy`` and ``gy * x`` with dot products instead of materialising products.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import torch
from torch import nn

from ponogan.norm.checks import check_nchw


class _InstanceMoments(torch.autograd.Function):
    """``(x (N, C, H, W), correction) -> (mean, var)`` over H, W, each ``(N, C, 1, 1)``; ``var``
    divides by ``H * W - correction`` (0: biased, the paper; 1: unbiased, the official code).

    Backward: ``dx = g_mean / M + g_var * 2 (x - mean) / (M - correction)`` with ``M = H * W``,
    written as one fused ``x * a + b`` pass. Saves ``x`` and its own output ``mean``, so it is twice
    differentiable.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, correction: int):
        var, mean = torch.var_mean(x, dim=(2, 3), keepdim=True, correction=correction)
        ctx.correction = correction
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x, mean)
        return mean, var

    @staticmethod
    def backward(ctx, g_mean, g_var):
        x, mean = ctx.saved_tensors
        m = x.shape[2] * x.shape[3]
        a = 2.0 * g_var / (m - ctx.correction) if g_var is not None else torch.zeros_like(mean)
        b = -a * mean
        if g_mean is not None:
            b = b + g_mean / m
        return torch.addcmul(b, x, a), None


class _ChannelAffine(torch.autograd.Function):
    """``y = x * scale + shift`` for ``x (N, C, H, W)`` and per-(n, c) ``scale, shift (N, C, 1, 1)``.

    Backward: ``dx = gy * scale``, ``d_scale = sum_hw gy * x``, ``d_shift = sum_hw gy``; the sums are
    dot products over the flattened H*W axis, so no full-size product is materialised.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor):
        ctx.save_for_backward(x, scale)
        return torch.addcmul(shift, x, scale)

    @staticmethod
    def backward(ctx, g_y):
        x, scale = ctx.saved_tensors
        g_x = g_y * scale
        if x.is_contiguous() and g_y.is_contiguous():
            g_scale = torch.linalg.vecdot(g_y.flatten(2), x.flatten(2), dim=-1)[..., None, None]
        else:
            g_scale = (g_y * x).sum((2, 3), keepdim=True)
        g_shift = g_y.sum((2, 3), keepdim=True)
        return g_x, g_scale.to(scale.dtype), g_shift.to(scale.dtype)


class SwitchNorm2d(nn.Module):
    """Switchable Normalization for ``(N, C, H, W)``: a softmax-weighted mixture of IN (over H, W),
    LN (over C, H, W) and BN (over N, H, W) moments, with separate importance logits for means
    (``mean_weight``) and variances (``var_weight``), 3 each (2 with ``using_bn=False``, the
    IN/LN-only variant for batch size 1). ``weight`` and ``bias`` are ``(1, C, 1, 1)`` (``weight``
    starts at 0 with ``last_gamma=True``), ``running_mean``/``running_var`` are ``(1, C, 1, 1)``.

    Eval uses the BN running statistics: an exponential moving average with ``momentum`` (the
    running value keeps ``momentum`` of itself), or, with ``using_moving_average=False``, the
    paper's batch average: call :func:`accumulate_batch_average` after training.

    ``official=True`` follows the official implementation instead of the paper, so that its
    checkpoints load (:meth:`load_state_dict` accepts its ``(1, C, 1)`` running buffers and the
    missing ``num_batches_tracked``) and give the same outputs in train and eval mode:

    # NOTE: departs from the paper (Eq. 3 divides by H*W): the IN variance is unbiased (divides by
    # H*W - 1, so H*W >= 2 is required), and LN and BN variances are derived from it by Eq. 4.
    # NOTE: ``running_var`` starts (and resets) at 0 instead of 1, as in the official code.
    # NOTE: the batch average (``accumulate_batch_average``) pools the batches as the official
    # helper does: ``running_var = mean(var_bn + mean_bn^2) - running_mean^2``, not mean(var_bn).
    """

    def __init__(
        self,
        num_channels: int,
        eps: float = 1e-5,
        momentum: float = 0.9,
        using_bn: bool = True,
        using_moving_average: bool = True,
        last_gamma: bool = False,
        *,
        official: bool = False,
    ):
        super().__init__()
        self.num_channels = num_channels
        self.eps = eps
        self.momentum = momentum
        self.using_bn = using_bn
        self.using_moving_average = using_moving_average
        self.official = bool(official)
        shape = (1, num_channels, 1, 1)
        self.weight = nn.Parameter(torch.zeros(shape) if last_gamma else torch.ones(shape))
        self.bias = nn.Parameter(torch.zeros(shape))
        self.mean_weight = nn.Parameter(torch.ones(3 if using_bn else 2))
        self.var_weight = nn.Parameter(torch.ones(3 if using_bn else 2))
        if using_bn:
            self.register_buffer("running_mean", torch.zeros(shape))
            self.register_buffer("running_var", torch.ones(shape))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        self.reset_running_stats()

    def reset_running_stats(self) -> None:
        """Zero the BN statistics (``running_var`` back to 1, or to 0 with ``official=True``); with
        ``using_moving_average=False`` the next training batches then build the batch average from
        scratch."""
        if self.using_bn:
            self.running_mean.zero_()
            self.running_var.fill_(0.0 if self.official else 1.0)
            self.num_batches_tracked.zero_()

    @torch.no_grad()
    def _update_running(self, mean_bn: torch.Tensor, var_bn: torch.Tensor) -> None:
        mean_bn = mean_bn.detach().to(self.running_mean.dtype)
        var_bn = var_bn.detach().to(self.running_var.dtype)
        if self.using_moving_average:
            self.running_mean.mul_(self.momentum).add_(mean_bn, alpha=1 - self.momentum)
            self.running_var.mul_(self.momentum).add_(var_bn, alpha=1 - self.momentum)
        elif self.official:
            # The official batch average: the moments of all batches pooled, i.e. running_var is the
            # mean of (var_bn + mean_bn^2) minus running_mean^2, kept finished after every batch.
            k = self.num_batches_tracked.item()
            mean_x2 = self.running_var + self.running_mean**2
            mean_x2.mul_(k / (k + 1)).add_(var_bn + mean_bn**2, alpha=1 / (k + 1))
            self.running_mean.mul_(k / (k + 1)).add_(mean_bn, alpha=1 / (k + 1))
            self.running_var.copy_((mean_x2 - self.running_mean**2).clamp_min_(0))
        else:  # cumulative average over all batches since the last reset (the paper's batch average)
            k = self.num_batches_tracked.item()
            self.running_mean.mul_(k / (k + 1)).add_(mean_bn, alpha=1 / (k + 1))
            self.running_var.mul_(k / (k + 1)).add_(var_bn, alpha=1 / (k + 1))
        self.num_batches_tracked.add_(1)

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ):
        # The official module keeps its running statistics as (1, C, 1) for its (N, C, H*W) view and
        # has no batch counter (which only matters for the batch average, restarted by a reset).
        found_official = False
        for name in ("running_mean", "running_var"):
            value = state_dict.get(prefix + name)
            if self.using_bn and isinstance(value, torch.Tensor) and value.shape == (1, self.num_channels, 1):
                state_dict[prefix + name] = value.reshape(getattr(self, name).shape)
                found_official = True
        key = prefix + "num_batches_tracked"
        if self.using_bn and key not in state_dict and prefix + "running_mean" in state_dict:
            state_dict[key] = torch.zeros_like(self.num_batches_tracked)
        if found_official and not self.official:
            warnings.warn(
                "SwitchNorm2d: loading an official Switchable Norm state dict into a layer "
                "with official=False; build it with official=True to reproduce its outputs",
                stacklevel=2,
            )
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def extra_repr(self) -> str:
        return (
            f"{self.num_channels}, eps={self.eps}, momentum={self.momentum}, using_bn={self.using_bn}, "
            f"using_moving_average={self.using_moving_average}"
        ) + (", official=True" if self.official else "")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_nchw(x, self.num_channels, "SwitchNorm2d")
        if self.official and x.shape[2] * x.shape[3] < 2:
            raise ValueError(
                "SwitchNorm2d(official=True) needs H*W >= 2 for the unbiased instance "
                f"variance, got input of shape {tuple(x.shape)}"
            )
        mean_in, var_in = _InstanceMoments.apply(x, 1 if self.official else 0)  # (N, C, 1, 1) each
        mean_x2 = var_in + mean_in**2
        mean_ln = mean_in.mean(1, keepdim=True)  # (N, 1, 1, 1)
        var_ln = (mean_x2.mean(1, keepdim=True) - mean_ln**2).clamp_min(0)
        means, vars_ = [mean_in, mean_ln], [var_in, var_ln]
        if self.using_bn and self.training:  # (1, C, 1, 1)
            mean_bn = mean_in.mean(0, keepdim=True)
            var_bn = (mean_x2.mean(0, keepdim=True) - mean_bn**2).clamp_min(0)
            self._update_running(mean_bn, var_bn)
            means.append(mean_bn)
            vars_.append(var_bn)
        elif self.using_bn:
            means.append(self.running_mean.to(x.dtype))
            vars_.append(self.running_var.to(x.dtype))
        mw, vw = torch.softmax(self.mean_weight, 0), torch.softmax(self.var_weight, 0)
        mean = sum(w * m for w, m in zip(mw, means, strict=True))  # broadcast to (N, C, 1, 1)
        var = sum(w * v for w, v in zip(vw, vars_, strict=True))
        scale = torch.rsqrt(var + self.eps) * self.weight.to(x.dtype)
        shift = self.bias.to(x.dtype) - mean * scale
        return _ChannelAffine.apply(x, scale.expand_as(mean_in), shift.expand_as(mean_in))


@torch.no_grad()
def accumulate_batch_average(model: nn.Module, batches: Iterable, forward=None) -> int:
    """The SN paper's batch average, its alternative to the moving average at inference: reset every
    :class:`SwitchNorm2d` of ``model``, run ``model`` over ``batches`` (no gradients) with only
    those layers in training mode (every other module, e.g. a BatchNorm, stays in eval and keeps its
    statistics), then leave the whole model in eval mode with the BN statistics frozen: each layer's
    ``running_mean``/``running_var`` is the plain mean of the per-batch BN moments (with
    ``official=True``: ``running_var`` pools the batches, ``mean(var_bn + mean_bn^2) -
    running_mean^2``, as the official helper does). Returns the number of batches.

    ``forward(model, batch)`` runs one batch (default ``model(batch)``). On a generator trained
    with ``norm="switch"``, feeding it training inputs ``(N, C, H, W)``::

        generators, config = ponogan.models.load_pretrained("runs/my_run")
        loader = DataLoader(create_dataset("aligned", root, "train"), batch_size=16)
        accumulate_batch_average(generators["G"], (item["A"] for item in loader))
        ponogan.models.save_pretrained("runs/my_run_batch_average", generators, config)
    """
    layers = [m for m in model.modules() if isinstance(m, SwitchNorm2d) and m.using_bn]
    if not layers:
        raise ValueError("accumulate_batch_average: the model has no SwitchNorm layer with using_bn=True")
    for m in layers:
        m.reset_running_stats()
        m.using_moving_average = False
    model.eval()
    for m in layers:
        m.train()
    count = 0
    for batch in batches:
        forward(model, batch) if forward else model(batch)
        count += 1
    model.eval()
    if count == 0:
        raise ValueError("accumulate_batch_average needs at least one batch")
    return count
