"""Paired metrics (L1, PSNR, SSIM) and glyph structure metrics (mask IoU, centroid error)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage.metrics import structural_similarity

from ponogan.metrics import centroid_error, mask_iou, paired_metrics
from ponogan.metrics.paired import gaussian_window, paired_per_image


def _skimage_ssim(fake: torch.Tensor, real: torch.Tensor) -> float:
    """Reference: mean over images of skimage SSIM on the [0, 1] scale, channels last."""
    values = []
    for f, r in zip(fake, real, strict=True):
        a = ((f + 1) / 2).permute(1, 2, 0).double().numpy()
        b = ((r + 1) / 2).permute(1, 2, 0).double().numpy()
        values.append(
            structural_similarity(
                a,
                b,
                gaussian_weights=True,
                sigma=1.5,
                use_sample_covariance=False,
                data_range=1,
                channel_axis=2,
            )
        )
    return float(np.mean(values))


def test_l1_and_psnr_on_a_constant_offset():
    real = torch.rand(2, 3, 16, 16) * 1.6 - 0.8  # keep real + offset inside [-1, 1]
    fake = real + 0.2  # 0.1 on the [0, 1] scale: L1 = 0.1, MSE = 0.01, PSNR = 20 dB
    out = paired_metrics(fake, real, ("l1", "psnr"))
    assert out["l1"] == pytest.approx(0.1, rel=1e-5)
    assert out["psnr"] == pytest.approx(20.0, rel=1e-5)


def test_psnr_is_averaged_per_image_and_capped_for_identical_images():
    real = torch.zeros(2, 1, 12, 12)
    fake = real.clone()
    fake[0] += 0.2  # MSE 0.01 -> 20 dB
    fake[1] += 0.02  # MSE 1e-4 -> 40 dB
    assert paired_metrics(fake, real, ("psnr",))["psnr"] == pytest.approx(30.0, rel=1e-5)
    assert paired_metrics(real, real, ("psnr",))["psnr"] == pytest.approx(100.0)


def test_gaussian_window_is_the_11_tap_sigma_1_5_filter():
    taps = gaussian_window(dtype=torch.float64)
    x = torch.arange(-5, 6, dtype=torch.float64)
    expected = torch.exp(-(x**2) / (2 * 1.5**2))
    assert taps.numel() == 11
    torch.testing.assert_close(taps, expected / expected.sum())


@pytest.mark.parametrize("shape", [(2, 3, 16, 16), (1, 1, 13, 20), (3, 3, 11, 11)])
def test_ssim_matches_skimage(shape):
    real = torch.rand(shape) * 2 - 1
    fake = (real + 0.3 * torch.randn(shape)).clamp(-1, 1)
    ours = paired_metrics(fake, real, ("ssim",))["ssim"]
    assert ours == pytest.approx(_skimage_ssim(fake, real), abs=1e-5)
    assert paired_metrics(real, real, ("ssim",))["ssim"] == pytest.approx(1.0, abs=1e-6)


def test_target_of_another_size_is_resized_to_the_fake():
    fake = torch.rand(1, 3, 16, 16) * 2 - 1
    real = torch.rand(1, 3, 32, 32) * 2 - 1
    resized = F.interpolate(real, size=(16, 16), mode="bicubic", align_corners=False, antialias=True).clamp(
        -1, 1
    )
    assert paired_metrics(fake, real) == pytest.approx(paired_metrics(fake, resized))


def test_half_precision_inputs_are_upcast():
    real = torch.rand(2, 3, 16, 16) * 2 - 1
    fake = (real + 0.1 * torch.randn_like(real)).clamp(-1, 1)
    full = paired_metrics(fake, real)
    half = paired_metrics(fake.bfloat16(), real.bfloat16())
    assert half["ssim"] == pytest.approx(full["ssim"], abs=2e-2)
    assert all(isinstance(v, float) for v in half.values())


def test_bad_input_raises_clear_errors():
    x = torch.zeros(2, 3, 16, 16)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        paired_metrics(x[0], x[0])
    with pytest.raises(ValueError, match="same batch size and channels"):
        paired_metrics(x, x[:, :1])
    with pytest.raises(ValueError, match="unknown paired metric"):
        paired_metrics(x, x, ("l2",))
    with pytest.raises(ValueError, match="at least 11x11"):
        paired_metrics(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8), ("ssim",))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_paired_metrics_on_cuda_match_cpu():
    real = torch.rand(2, 3, 16, 16) * 2 - 1
    fake = (real + 0.2 * torch.randn_like(real)).clamp(-1, 1)
    cpu = paired_metrics(fake, real, ("l1", "psnr", "ssim", "iou", "centroid"))
    gpu = paired_metrics(fake.cuda(), real.cuda(), ("l1", "psnr", "ssim", "iou", "centroid"))
    assert gpu == pytest.approx(cpu, rel=1e-4, abs=1e-4)


def _square(size, top, left, side, n=1):
    """Dark square glyph on a white page, (n, 3, size, size) in [-1, 1]."""
    image = torch.ones(n, 3, size, size)
    image[..., top : top + side, left : left + side] = -1.0
    return image


def test_mask_iou_and_centroid_of_shifted_squares():
    target = _square(20, 4, 4, 6)  # rows/cols 4..9
    fake = _square(20, 4, 7, 6)  # cols 7..12: overlap 6 x 3 = 18, union 36 + 36 - 18 = 54
    assert mask_iou(fake, target) == pytest.approx(18 / 54)
    assert centroid_error(fake, target) == pytest.approx(3.0)
    diagonal = _square(20, 7, 8, 6)  # shifted by (3, 4) -> 5 px
    assert centroid_error(diagonal, target) == pytest.approx(5.0)
    assert mask_iou(target, target) == 1.0


def test_structure_metrics_accept_given_masks_and_light_on_dark():
    fake = _square(16, 2, 2, 4)
    mask = torch.zeros(1, 16, 16, dtype=torch.bool)
    mask[:, 2:6, 2:6] = True
    assert mask_iou(fake, mask) == 1.0
    assert centroid_error(fake, mask) == 0.0
    inverted = -fake  # light glyph on a dark page
    assert mask_iou(inverted, mask, dark_on_light=False) == 1.0
    assert mask_iou(inverted, mask) < 0.1


def test_empty_masks_are_defined():
    page = torch.ones(1, 3, 15, 15)
    assert mask_iou(page, page) == 1.0  # nothing to draw, nothing drawn
    glyph = _square(15, 0, 0, 3)  # centroid (1, 1); empty fake counts as the centre (7, 7)
    assert centroid_error(page, glyph) == pytest.approx(math.hypot(6, 6))
    assert mask_iou(page, glyph) == 0.0


def test_structure_metrics_in_paired_metrics_and_per_image():
    target = torch.cat([_square(20, 4, 4, 6), _square(20, 4, 4, 6)])
    fake = torch.cat([_square(20, 4, 4, 6), _square(20, 4, 7, 6)])
    per_image = paired_per_image(fake, target, ("iou", "centroid"))
    torch.testing.assert_close(per_image["iou"], torch.tensor([1.0, 18 / 54], dtype=torch.float64))
    torch.testing.assert_close(per_image["centroid"], torch.tensor([0.0, 3.0], dtype=torch.float64))
    assert paired_metrics(fake, target, ("iou",))["iou"] == pytest.approx((1 + 18 / 54) / 2)
