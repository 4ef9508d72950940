"""Learning-rate schedules by name, as multipliers of the base rate per optimizer step.

``linear`` (pix2pix/CycleGAN): 1 until ``decay_start * max_steps``, then linearly down to 0 at
``max_steps`` (the original decays over ``n_epochs_decay + 1``; the +1 keeps the last step's rate > 0).
``step`` (MUNIT): ``gamma ** (step // step_size)``. ``constant``: 1.
"""

from __future__ import annotations

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from ponogan.training.config import OptimConfig


def decay_start_step(cfg: OptimConfig, max_steps: int) -> int | None:
    """The optimizer step (counted from 0) the ``linear`` decay starts at; None for other policies."""
    return int(cfg.decay_start * max_steps) if cfg.lr_policy == "linear" else None


def make_scheduler(optimizer: Optimizer, cfg: OptimConfig, max_steps: int) -> LambdaLR:
    """A ``LambdaLR`` stepped once per optimizer step (its state_dict holds only numbers)."""
    start = int(cfg.decay_start * max_steps)
    span = max(max_steps - start, 0) + 1
    multipliers = {
        "constant": lambda step: 1.0,
        "linear": lambda step: 1.0 - max(0, step - start) / span,
        "step": lambda step: cfg.gamma ** (step // cfg.step_size),
    }
    if cfg.lr_policy not in multipliers:
        raise ValueError(f"unknown lr_policy {cfg.lr_policy!r}; valid: {', '.join(multipliers)}")
    return LambdaLR(optimizer, multipliers[cfg.lr_policy])
