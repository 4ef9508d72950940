"""Sample grids: one row per test item, ``input | output | target``, two items side by side."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torchvision.utils import make_grid, save_image


def _rgb(x: torch.Tensor) -> torch.Tensor:
    """``(N, C, H, W)`` in [-1, 1] -> ``(N, 3, H, W)`` in [0, 1] (grayscale repeated)."""
    x = x.detach().float().cpu().clamp(-1, 1) * 0.5 + 0.5
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def sample_grid(inputs: torch.Tensor, outputs: torch.Tensor, targets: torch.Tensor | None = None,
                *, per_row: int = 2) -> torch.Tensor:
    """A ``(3, H', W')`` grid of triplets (pairs without targets), ``per_row`` triplets per row."""
    columns = [_rgb(inputs), _rgb(outputs)] + ([_rgb(targets)] if targets is not None else [])
    if len({c.shape[-2:] for c in columns}) != 1 or len({c.shape[0] for c in columns}) != 1:
        raise ValueError(f"sample grid needs equally sized batches, got {[tuple(c.shape) for c in columns]}")
    tiles = torch.stack(columns, dim=1).flatten(0, 1)  # (N * k, 3, H, W): in, out, target, in, ...
    per_row = max(1, min(per_row, inputs.shape[0]))
    return make_grid(tiles, nrow=len(columns) * per_row, padding=2, pad_value=0.5)


def save_sample_grid(path: str | Path, inputs: torch.Tensor, outputs: torch.Tensor,
                     targets: torch.Tensor | None = None) -> Path:
    """Write the grid as PNG (temp file + rename, so a viewer never sees half an image)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    save_image(sample_grid(inputs, outputs, targets), tmp)
    os.replace(tmp, path)
    return path
