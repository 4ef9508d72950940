"""Evaluation: FID and KID (pytorch-fid's Inception), LPIPS (lpips), paired L1/PSNR/SSIM, glyph structure,
diversity, reports.

Tensor API (``(N, C, H, W)`` in ``[-1, 1]``; CPU or CUDA):
    paired_metrics(fake, real, metrics=("l1", "psnr", "ssim")) -> dict[str, float]
    mask_iou(fake, target_mask) / centroid_error(fake, target) -> float
    load_lpips(net, weights) + lpips_distance(model, fake, real); diversity_lpips(model, outputs)
    load_fid_model(weights) + tensor_features / extract_features; frechet_distance(mu1, s1, mu2, s2)
    kernel_inception_distance(features1, features2) -> KIDResult(mean, std, ...)
Folder API: evaluate_folders(EvalConfig(real, fake, out, metrics=...)) -> EvalResult.
Statistics files (pytorch-fid's ``.npz``): load_stats_file / save_stats_file.
Weights are only read locally; a missing file raises MissingWeightsError naming the file and its URL;
``download_weights`` (``ponogan weights download``) fetches and verifies them.

Names are imported from their submodules on first use, so ``import ponogan.cli.weights`` (the
``ponogan weights`` command) does not pay for torch, torchvision and pytorch-fid.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ponogan.core.lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "diversity_lpips": "diversity",
    "diversity_per_input": "diversity",
    "EvalConfig": "folder_eval",
    "EvalResult": "folder_eval",
    "evaluate_folders": "folder_eval",
    "extract_features": "fid",
    "fid_between_folders": "fid",
    "folder_feature_set": "fid",
    "folder_statistics": "fid",
    "load_fid_model": "fid",
    "tensor_features": "fid",
    "GaussianStats": "frechet",
    "feature_statistics": "frechet",
    "frechet_distance": "frechet",
    "frechet_distance_stats": "frechet",
    "FIDInceptionV3": "inception",
    "fid_inception_v3": "inception",
    "KIDResult": "kid",
    "kernel_inception_distance": "kid",
    "mmd2_unbiased": "kid",
    "load_lpips": "lpips_metric",
    "lpips_distance": "lpips_metric",
    "lpips_per_image": "lpips_metric",
    "PAIRED_METRICS": "paired",
    "paired_metrics": "paired",
    "paired_per_image": "paired",
    "DEFAULT_METRICS": "catalog",
    "METRICS": "catalog",
    "parse_metrics": "catalog",
    "write_report": "report",
    "FeatureSet": "stats_file",
    "load_stats_file": "stats_file",
    "save_stats_file": "stats_file",
    "centroid_error": "structure",
    "mask_iou": "structure",
    "FID_INCEPTION": "weights",
    "LPIPS_BACKBONES": "weights",
    "MissingWeightsError": "weights",
    "download_weights": "weights",
    "locate_weights": "weights",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


# ruff: noqa: F401 - the imports below only re-export the names of __all__
if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from ponogan.metrics.catalog import DEFAULT_METRICS, METRICS, parse_metrics
    from ponogan.metrics.diversity import diversity_lpips, diversity_per_input
    from ponogan.metrics.fid import (
        extract_features,
        fid_between_folders,
        folder_feature_set,
        folder_statistics,
        load_fid_model,
        tensor_features,
    )
    from ponogan.metrics.folder_eval import EvalConfig, EvalResult, evaluate_folders
    from ponogan.metrics.frechet import (
        GaussianStats,
        feature_statistics,
        frechet_distance,
        frechet_distance_stats,
    )
    from ponogan.metrics.inception import FIDInceptionV3, fid_inception_v3
    from ponogan.metrics.kid import KIDResult, kernel_inception_distance, mmd2_unbiased
    from ponogan.metrics.lpips_metric import load_lpips, lpips_distance, lpips_per_image
    from ponogan.metrics.paired import PAIRED_METRICS, paired_metrics, paired_per_image
    from ponogan.metrics.report import write_report
    from ponogan.metrics.stats_file import FeatureSet, load_stats_file, save_stats_file
    from ponogan.metrics.structure import centroid_error, mask_iou
    from ponogan.metrics.weights import (
        FID_INCEPTION,
        LPIPS_BACKBONES,
        MissingWeightsError,
        download_weights,
        locate_weights,
    )
