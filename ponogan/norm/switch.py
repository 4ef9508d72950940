"""Switchable Normalization (Luo et al., "Differentiable Learning-to-Normalize via Switchable
Normalization", ICLR 2019), written from the paper.

Statistics are a learned mixture of IN, LN and BN moments. Following Eq. 4, all three come from the
per-(sample, channel) IN moments, so the input is reduced once:

    mu_in, var_in  over H, W                     (N, C, 1, 1)
    mu_ln  = mean_c mu_in,  var_ln = mean_c(var_in + mu_in^2) - mu_ln^2     (N, 1, 1, 1)
    mu_bn  = mean_n mu_in,  var_bn = mean_n(var_in + mu_in^2) - mu_bn^2     (1, C, 1, 1)

    mu  = sum_k softmax(mean_weight)_k mu_k,   var = sum_k softmax(var_weight)_k var_k
    y   = (x - mu) / sqrt(var + eps) * gamma + beta
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


class _SwitchNormBase(nn.Module):
    """Shared parameters, running statistics and the mixing of IN/LN/BN moments."""

    n_dims: int  # 2 for (N, C), 4 for (N, C, H, W)

    def __init__(self, num_channels: int, eps: float = 1e-5, momentum: float = 0.9, using_bn: bool = True,
                 using_moving_average: bool = True, last_gamma: bool = False):
        super().__init__()
        self.num_channels = num_channels
        self.eps = eps
        self.momentum = momentum
        self.using_bn = using_bn
        self.using_moving_average = using_moving_average
        shape = (1, num_channels) + (1,) * (self.n_dims - 2)
        self.weight = nn.Parameter(torch.zeros(shape) if last_gamma else torch.ones(shape))
        self.bias = nn.Parameter(torch.zeros(shape))
        n_stats = self._n_stats()
        self.mean_weight = nn.Parameter(torch.ones(n_stats))
        self.var_weight = nn.Parameter(torch.ones(n_stats))
        if using_bn:
            self.register_buffer("running_mean", torch.zeros(shape))
            self.register_buffer("running_var", torch.ones(shape))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def _n_stats(self) -> int:
        raise NotImplementedError

    def reset_running_stats(self) -> None:
        """Zero the BN statistics; with ``using_moving_average=False`` the next training batches
        then build the paper's batch average from scratch."""
        if self.using_bn:
            self.running_mean.zero_()
            self.running_var.fill_(1.0)
            self.num_batches_tracked.zero_()

    @torch.no_grad()
    def _update_running(self, mean_bn: torch.Tensor, var_bn: torch.Tensor) -> None:
        mean_bn, var_bn = mean_bn.detach().float(), var_bn.detach().float()
        if self.using_moving_average:
            self.running_mean.mul_(self.momentum).add_(mean_bn, alpha=1 - self.momentum)
            self.running_var.mul_(self.momentum).add_(var_bn, alpha=1 - self.momentum)
        else:  # cumulative average over all batches since the last reset (the paper's batch average)
            k = self.num_batches_tracked.item()
            self.running_mean.mul_(k / (k + 1)).add_(mean_bn, alpha=1 / (k + 1))
            self.running_var.mul_(k / (k + 1)).add_(var_bn, alpha=1 / (k + 1))
        self.num_batches_tracked.add_(1)

    def _batch_moments(self, mean_x: torch.Tensor, mean_x2: torch.Tensor):
        """BN moments from per-sample moments ``(N, C, ...)``: average over N, then update or use
        the running statistics depending on the mode."""
        if self.training:
            mean_bn = mean_x.mean(0, keepdim=True)
            var_bn = (mean_x2.mean(0, keepdim=True) - mean_bn**2).clamp_min(0)
            self._update_running(mean_bn, var_bn)
            return mean_bn, var_bn
        return self.running_mean.to(mean_x.dtype), self.running_var.to(mean_x.dtype)

    def _mix(self, means: list[torch.Tensor], vars_: list[torch.Tensor]):
        mw = torch.softmax(self.mean_weight, 0)
        vw = torch.softmax(self.var_weight, 0)
        mean = sum(w * m for w, m in zip(mw, means, strict=True))
        var = sum(w * v for w, v in zip(vw, vars_, strict=True))
        return mean, var

    def extra_repr(self) -> str:
        return (f"{self.num_channels}, eps={self.eps}, momentum={self.momentum}, using_bn={self.using_bn}, "
                f"using_moving_average={self.using_moving_average}")


class SwitchNorm2d(_SwitchNormBase):
    """Switchable Normalization for ``(N, C, H, W)``: a softmax-weighted mixture of IN (over H, W),
    LN (over C, H, W) and BN (over N, H, W) moments, with separate importance logits for means
    (``mean_weight``) and variances (``var_weight``), 3 each (2 with ``using_bn=False``, the
    IN/LN-only variant for batch size 1).

    Eval uses the BN running statistics: an exponential moving average with ``momentum`` (the
    running value keeps ``momentum`` of itself), or, with ``using_moving_average=False``, the
    paper's batch average: call :func:`accumulate_batch_average` after training.
    """

    n_dims = 4

    def _n_stats(self) -> int:
        return 3 if self.using_bn else 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"SwitchNorm2d expects (N, C, H, W), got shape {tuple(x.shape)}")
        var_in, mean_in = torch.var_mean(x, dim=(2, 3), keepdim=True, correction=0)  # (N, C, 1, 1)
        mean_x2 = var_in + mean_in**2
        mean_ln = mean_in.mean(1, keepdim=True)
        var_ln = (mean_x2.mean(1, keepdim=True) - mean_ln**2).clamp_min(0)
        means, vars_ = [mean_in, mean_ln], [var_in, var_ln]
        if self.using_bn:
            mean_bn, var_bn = self._batch_moments(mean_in, mean_x2)
            means.append(mean_bn)
            vars_.append(var_bn)
        mean, var = self._mix(means, vars_)
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias


class SwitchNorm1d(_SwitchNormBase):
    """Switchable Normalization for ``(N, C)`` features: a mixture of LN (over C, per sample) and
    BN (over N, per channel) moments; IN is undefined without spatial axes, so 2 logits each
    (1 without BN, which then reduces to LayerNorm)."""

    n_dims = 2

    def _n_stats(self) -> int:
        return 2 if self.using_bn else 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2:
            raise ValueError(f"SwitchNorm1d expects (N, C), got shape {tuple(x.shape)}")
        var_ln, mean_ln = torch.var_mean(x, dim=1, keepdim=True, correction=0)  # (N, 1)
        means, vars_ = [mean_ln], [var_ln]
        if self.using_bn:
            mean_bn, var_bn = self._batch_moments(x, x * x)
            means.append(mean_bn)
            vars_.append(var_bn)
        mean, var = self._mix(means, vars_)
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias


@torch.no_grad()
def accumulate_batch_average(model: nn.Module, batches: Iterable, forward=None) -> int:
    """The SN paper's batch average: reset every Switchable Norm layer of ``model``, switch them to
    cumulative averaging, run ``model`` in training mode over ``batches`` (no gradients), then put
    the model in eval mode with the averaged BN statistics frozen. Returns the number of batches.

    ``forward(model, batch)`` runs one batch (default ``model(batch)``).
    """
    layers = [m for m in model.modules() if isinstance(m, _SwitchNormBase) and m.using_bn]
    for m in layers:
        m.reset_running_stats()
        m.using_moving_average = False
    was_training = model.training
    model.train()
    count = 0
    for batch in batches:
        forward(model, batch) if forward else model(batch)
        count += 1
    model.train(was_training)
    model.eval()
    return count
