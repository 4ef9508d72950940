"""Diversity LPIPS: how different the outputs for different random styles of the same input are.

For ``K`` outputs per input (MUNIT-style multimodal sampling) the score is the LPIPS distance averaged
over all ``K (K - 1) / 2`` unordered pairs of outputs and over the inputs. Higher means more diverse.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import torch

from ponogan.metrics.lpips_metric import lpips_per_image


@torch.no_grad()
def diversity_per_input(model: torch.nn.Module, outputs: Sequence[torch.Tensor]) -> torch.Tensor:
    """Mean pairwise LPIPS ``(N,)`` over ``K >= 2`` output batches, each ``(N, C, H, W)`` in ``[-1, 1]``.

    ``outputs[k][n]`` is the output for input ``n`` under style ``k``.
    """
    if len(outputs) < 2:
        raise ValueError(f"diversity needs at least 2 outputs per input, got {len(outputs)}")
    shape = outputs[0].shape
    if any(o.shape != shape for o in outputs):
        raise ValueError(f"all style outputs must share one shape, got {[tuple(o.shape) for o in outputs]}")
    distances = [lpips_per_image(model, a, b) for a, b in combinations(outputs, 2)]
    return torch.stack(distances).mean(0)


def diversity_lpips(model: torch.nn.Module, outputs: Sequence[torch.Tensor]) -> float:
    """Mean pairwise LPIPS between outputs for different styles of the same inputs (one number)."""
    return float(diversity_per_input(model, outputs).double().mean())
