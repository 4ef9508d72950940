"""Evaluation: FID (pytorch-fid), LPIPS (lpips), paired L1/PSNR/SSIM, glyph structure, diversity, reports.

Tensor API (``(N, C, H, W)`` in ``[-1, 1]``; CPU or CUDA):
    paired_metrics(fake, real, metrics=("l1", "psnr", "ssim")) -> dict[str, float]
    mask_iou(fake, target_mask) / centroid_error(fake, target) -> float
    load_lpips(net, weights) + lpips_distance(model, fake, real); diversity_lpips(model, outputs)
    load_fid_model(weights) + tensor_features / extract_features; frechet_distance(mu1, s1, mu2, s2)
Folder API: evaluate_folders(EvalConfig(real, fake, out, metrics=...)) -> EvalResult.
Weights are only read locally; a missing file raises MissingWeightsError naming the file and its URL.
"""

from .diversity import diversity_lpips, diversity_per_input
from .evaluate import EvalConfig, EvalResult, evaluate_folders
from .fid import extract_features, fid_between_folders, folder_statistics, load_fid_model, tensor_features
from .frechet import GaussianStats, feature_statistics, frechet_distance, frechet_distance_stats
from .inception import FIDInceptionV3, fid_inception_v3
from .lpips_metric import load_lpips, lpips_distance, lpips_per_image
from .paired import PAIRED_METRICS, paired_metrics, paired_per_image
from .registry import DEFAULT_METRICS, METRICS, parse_metrics
from .report import write_report
from .structure import centroid_error, glyph_mask, mask_iou
from .weights import FID_INCEPTION, LPIPS_BACKBONES, MissingWeightsError, locate_weights

__all__ = [
    "DEFAULT_METRICS",
    "EvalConfig",
    "EvalResult",
    "FIDInceptionV3",
    "FID_INCEPTION",
    "GaussianStats",
    "LPIPS_BACKBONES",
    "METRICS",
    "MissingWeightsError",
    "PAIRED_METRICS",
    "centroid_error",
    "diversity_lpips",
    "diversity_per_input",
    "evaluate_folders",
    "extract_features",
    "feature_statistics",
    "fid_between_folders",
    "fid_inception_v3",
    "folder_statistics",
    "frechet_distance",
    "frechet_distance_stats",
    "glyph_mask",
    "load_fid_model",
    "load_lpips",
    "locate_weights",
    "lpips_distance",
    "lpips_per_image",
    "mask_iou",
    "paired_metrics",
    "paired_per_image",
    "parse_metrics",
    "tensor_features",
    "write_report",
]
