"""Input checks shared by the normalizers, so a wrong tensor fails with a message naming the layer
instead of a traceback from deep inside torch."""

from __future__ import annotations

import torch


def check_nchw(x: torch.Tensor, num_channels: int | None, who: str) -> None:
    """Raise ``TypeError``/``ValueError`` unless ``x`` is a floating-point ``(N, C, H, W)`` tensor with
    ``num_channels`` channels (any count when ``num_channels`` is None)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{who} expects a tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"{who} expects a 4-D tensor (N, C, H, W), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{who} expects a floating-point tensor, got {x.dtype}")
    if num_channels is not None and x.shape[1] != num_channels:
        raise ValueError(f"{who} built for {num_channels} channels got input of shape {tuple(x.shape)}")
