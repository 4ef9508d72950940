"""Weight-free structure measures for glyph translation: glyph-mask IoU and centroid error.

Masks come from ``ponogan.data.glyph_mask``, the rule of the built-in glyph data (luminance below
:data:`MASK_THRESHOLD`, whose ink is darker and page/clutter brighter than it in both variants); with
``dark_on_light=False`` glyph pixels are those brighter than the threshold. A boolean tensor
``(N, H, W)`` or ``(N, 1, H, W)`` is taken as a ready mask. Both measures are per image, then averaged.
"""

from __future__ import annotations

import torch

from ponogan.data.glyph_style import MASK_THRESHOLD
from ponogan.data.glyphs import glyph_mask


def _mask(x: torch.Tensor, threshold: float, dark_on_light: bool) -> torch.Tensor:
    """``(N, 1, H, W)`` bool mask of ``(N, C, H, W)`` images in ``[-1, 1]``, or of a bool mask."""
    if x.dtype != torch.bool:
        if x.ndim != 4:
            raise ValueError(f"expected (N, C, H, W) images, got {tuple(x.shape)}")
        return glyph_mask(x, threshold, dark_on_light=dark_on_light)
    mask = x.unsqueeze(1) if x.ndim == 3 else x
    if mask.ndim != 4 or mask.shape[1] != 1:
        raise ValueError(f"a glyph mask must be (N, H, W) or (N, 1, H, W), got {tuple(x.shape)}")
    return mask


def _masks(fake, target, threshold, dark_on_light):
    fake_mask = _mask(fake, threshold, dark_on_light)
    target_mask = _mask(target, threshold, dark_on_light).to(fake_mask.device)
    if fake_mask.shape != target_mask.shape:
        raise ValueError(
            f"fake and target masks differ in shape: {tuple(fake_mask.shape)} vs {tuple(target_mask.shape)}"
        )
    return fake_mask, target_mask


def mask_iou_per_image(
    fake: torch.Tensor,
    target: torch.Tensor,
    *,
    threshold: float = MASK_THRESHOLD,
    dark_on_light: bool = True,
) -> torch.Tensor:
    """Intersection over union of the glyph masks, ``(N,)``; two empty masks count as a perfect 1."""
    a, b = _masks(fake, target, threshold, dark_on_light)
    inter = (a & b).flatten(1).sum(1).double()
    union = (a | b).flatten(1).sum(1).double()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))


def mask_centroid(mask: torch.Tensor) -> torch.Tensor:
    """Centroid ``(N, 2)`` (row, col) in pixels of ``(N, 1, H, W)`` masks; an empty mask gives the centre."""
    h, w = mask.shape[-2:]
    weights = mask.double().flatten(1)  # (N, H*W)
    rows = torch.arange(h, dtype=torch.float64, device=mask.device).repeat_interleave(w)
    cols = torch.arange(w, dtype=torch.float64, device=mask.device).repeat(h)
    total = weights.sum(1)
    centre = torch.tensor([(h - 1) / 2, (w - 1) / 2], dtype=torch.float64, device=mask.device)
    centroid = torch.stack([weights @ rows, weights @ cols], 1) / total.clamp_min(1).unsqueeze(1)
    return torch.where((total > 0).unsqueeze(1), centroid, centre.expand_as(centroid))


def centroid_error_per_image(
    fake: torch.Tensor,
    target: torch.Tensor,
    *,
    threshold: float = MASK_THRESHOLD,
    dark_on_light: bool = True,
) -> torch.Tensor:
    """Euclidean distance in pixels between the glyph-mask centroids of fake and target, ``(N,)``."""
    a, b = _masks(fake, target, threshold, dark_on_light)
    return (mask_centroid(a) - mask_centroid(b)).norm(dim=1)


def mask_iou(fake: torch.Tensor, target: torch.Tensor, **kwargs) -> float:
    """Mean glyph-mask IoU of ``fake`` ``(N, C, H, W)`` vs ``target`` (images or a bool mask)."""
    return float(mask_iou_per_image(fake, target, **kwargs).mean())


def centroid_error(fake: torch.Tensor, target: torch.Tensor, **kwargs) -> float:
    """Mean glyph centroid error in pixels of ``fake`` vs ``target`` (images or a bool mask)."""
    return float(centroid_error_per_image(fake, target, **kwargs).mean())
