"""Paired metrics that need no weights: L1, PSNR and SSIM, torch-only (CPU and CUDA).

Inputs are ``(N, C, H, W)`` tensors in ``[-1, 1]``; every metric is computed on the ``[0, 1]`` scale,
per image, then averaged over the batch. When the target's size differs from the fake's, the target is
resized to the fake's size (bicubic, antialiased) first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from ponogan.metrics.structure import centroid_error_per_image, mask_iou_per_image

PSNR_MAX_DB = 100.0  # identical images: MSE clamped at 1e-10 so PSNR stays finite (and JSON-safe)
SSIM_SIGMA = 1.5
# scipy/skimage truncate: radius int(3.5 * 1.5 + 0.5) = 5 -> the 11x11 window of Wang et al.
SSIM_TRUNCATE = 3.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """``[-1, 1]`` -> ``[0, 1]`` in at least float32."""
    return (x.float() if x.dtype in (torch.float16, torch.bfloat16) else x) * 0.5 + 0.5


def match_pair(fake: torch.Tensor, real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Check two ``(N, C, H, W)`` batches and bring ``real`` to ``fake``'s size (bicubic, antialias)."""
    if fake.ndim != 4 or real.ndim != 4:
        raise ValueError(
            f"expected (N, C, H, W) tensors, got fake {tuple(fake.shape)} and real {tuple(real.shape)}"
        )
    if fake.shape[:2] != real.shape[:2]:
        raise ValueError(
            "fake and real must have the same batch size and channels, "
            f"got {tuple(fake.shape)} and {tuple(real.shape)}"
        )
    real = real.to(device=fake.device, dtype=fake.dtype)
    if real.shape[-2:] != fake.shape[-2:]:
        real = F.interpolate(real, size=fake.shape[-2:], mode="bicubic", align_corners=False, antialias=True)
        real = real.clamp(-1, 1)
    return fake, real


def l1_per_image(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Mean absolute error on the ``[0, 1]`` scale, ``(N,)``."""
    return (to_unit(fake) - to_unit(real)).abs().flatten(1).mean(1)


def psnr_per_image(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """PSNR in dB with data range 1, ``(N,)``; capped at :data:`PSNR_MAX_DB` for identical images."""
    mse = (to_unit(fake) - to_unit(real)).square().flatten(1).mean(1)
    return -10.0 * torch.log10(mse.clamp_min(10 ** (-PSNR_MAX_DB / 10)))


def gaussian_window(sigma: float = SSIM_SIGMA, truncate: float = SSIM_TRUNCATE, **like) -> torch.Tensor:
    """Normalised 1-D Gaussian taps, ``(2r + 1,)`` with ``r = int(truncate * sigma + 0.5)`` (scipy's rule)."""
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, **like)
    taps = torch.exp(-0.5 * (x / sigma) ** 2)
    return taps / taps.sum()


def _blur(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Separable 'valid' Gaussian filter per channel: ``(B, C, H, W)`` -> ``(B, C, H - 2r, W - 2r)``."""
    channels = x.shape[1]
    k = taps.numel()
    x = F.conv2d(x, taps.view(1, 1, k, 1).expand(channels, 1, k, 1), groups=channels)
    return F.conv2d(x, taps.view(1, 1, 1, k).expand(channels, 1, 1, k), groups=channels)


def ssim_per_image(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """SSIM (Wang et al. 2004) with an 11x11 Gaussian window, sigma 1.5, data range 1, ``(N,)``.

    Population (co)variances, constants ``(0.01)^2`` and ``(0.03)^2``; the SSIM map is averaged over the
    window positions that fit inside the image and over channels -- the same value as
    ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1, channel_axis=...)``.
    """
    x, y = to_unit(fake), to_unit(real)
    taps = gaussian_window(dtype=x.dtype, device=x.device)
    if min(x.shape[-2:]) < taps.numel():
        raise ValueError(
            f"SSIM needs images of at least {taps.numel()}x{taps.numel()} pixels, got {tuple(x.shape[-2:])}"
        )
    n = x.shape[0]
    moments = _blur(torch.cat([x, y, x * x, y * y, x * y]), taps).split(n)
    mu_x, mu_y, xx, yy, xy = moments
    var_x, var_y, cov = xx - mu_x.square(), yy - mu_y.square(), xy - mu_x * mu_y
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x.square() + mu_y.square() + c1) * (var_x + var_y + c2)
    )
    return ssim_map.flatten(1).mean(1)


PAIRED_METRICS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "l1": l1_per_image,
    "psnr": psnr_per_image,
    "ssim": ssim_per_image,
    "iou": mask_iou_per_image,
    "centroid": centroid_error_per_image,
}


@torch.no_grad()
def paired_per_image(
    fake: torch.Tensor, real: torch.Tensor, metrics: Sequence[str] = ("l1", "psnr", "ssim")
) -> dict[str, torch.Tensor]:
    """Per-image values ``(N,)`` of each requested paired metric (names from :data:`PAIRED_METRICS`)."""
    unknown = [m for m in metrics if m not in PAIRED_METRICS]
    if unknown:
        raise ValueError(f"unknown paired metric(s) {unknown}; valid: {', '.join(PAIRED_METRICS)}")
    fake, real = match_pair(fake, real)
    return {name: PAIRED_METRICS[name](fake, real) for name in metrics}


def paired_metrics(
    fake: torch.Tensor, real: torch.Tensor, metrics: Sequence[str] = ("l1", "psnr", "ssim")
) -> dict[str, float]:
    """Batch averages of paired metrics of ``fake`` vs ``real`` (both ``(N, C, H, W)`` in ``[-1, 1]``)."""
    return {name: float(v.double().mean()) for name, v in paired_per_image(fake, real, metrics).items()}
