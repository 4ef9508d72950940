"""FID (Heusel et al. 2017) with pytorch-fid's InceptionV3 and weights, from local files only.

Images are read as RGB in ``[0, 1]`` and resized to 299x299 bilinearly, exactly what pytorch-fid's
``InceptionV3(resize_input=True)`` does, so numbers are comparable with ``python -m pytorch_fid``.
Pool3 features ``(N, 2048)`` give a mean and covariance per set (kept as a low-rank factor for sets
of at most 2048 images); the distance is :func:`~ponogan.metrics.frechet.frechet_distance_stats`.
Statistics of a real folder are cached on disk, keyed by the folder, every file's relative path, size
and mtime, and the weight file.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ponogan.core.distributed import SINGLE, ProcessGroup
from ponogan.metrics.frechet import GaussianStats, frechet_distance_stats
from ponogan.metrics.images import list_images, read_image
from ponogan.metrics.inception import FID_DIMS, FID_SIZE, FIDInceptionV3
from ponogan.metrics.stats_file import FeatureSet, save_npz
from ponogan.metrics.weights import FID_INCEPTION, locate_weights

CACHE_VERSION = 1


def default_cache_dir() -> Path:
    """``$PONOGAN_CACHE/fid``, else ``$XDG_CACHE_HOME/ponogan/fid``, else ``~/.cache/ponogan/fid``."""
    if os.environ.get("PONOGAN_CACHE"):
        return Path(os.environ["PONOGAN_CACHE"]) / "fid"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ponogan" / "fid"


def load_fid_model(weights: str | Path | None = None, device: str | torch.device = "cpu") -> FIDInceptionV3:
    """The FID InceptionV3 with weights from ``weights`` or the hub cache; raises MissingWeightsError."""
    path = locate_weights(FID_INCEPTION, weights)
    return FIDInceptionV3.from_file(path).to(device)


@torch.no_grad()
def tensor_features(model: FIDInceptionV3, images: torch.Tensor) -> np.ndarray:
    """Pool3 features ``(N, 2048)`` of ``(N, C, H, W)`` images in ``[-1, 1]`` (C = 1 or 3)."""
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    param = next(model.parameters())
    x = (images.to(param.device, param.dtype) * 0.5 + 0.5).clamp(0, 1)
    return model(x).double().cpu().numpy()


def _load_for_fid(path: Path) -> torch.Tensor:
    x = (read_image(path) * 0.5 + 0.5).clamp(0, 1)  # (1, 3, H, W) in [0, 1]
    if x.shape[-2:] != (FID_SIZE, FID_SIZE):
        x = F.interpolate(x, size=(FID_SIZE, FID_SIZE), mode="bilinear", align_corners=False)
    return x


@torch.no_grad()
def extract_features(
    files: Sequence[Path],
    model: FIDInceptionV3,
    *,
    batch_size: int = 32,
    progress: bool = True,
    group: ProcessGroup | None = None,
) -> np.ndarray:
    """Pool3 features ``(len(files), 2048)`` of image files, in batches, with a tqdm progress bar.

    With a multi-process ``group`` each process computes every ``world_size``-th batch and the batches
    are gathered back in order: the batches are those of a one-process run, so are the features.
    """
    group = group or SINGLE
    param = next(model.parameters())
    batches = [files[start : start + batch_size] for start in range(0, len(files), batch_size)]

    def features(batch: Sequence[Path]) -> np.ndarray:
        images = torch.cat([_load_for_fid(p) for p in batch])
        return model(images.to(param.device, param.dtype)).double().cpu().numpy()

    chunks = group.map(features, batches, progress=progress, desc="FID features", unit="batch")
    return np.concatenate(chunks) if chunks else np.zeros((0, FID_DIMS))


def _file_signature(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return str(path.resolve()), stat.st_size, stat.st_mtime_ns


def statistics_cache_key(folder: Path, files: Sequence[Path], weights_path: Path) -> str:
    """Hash of the folder, each file's relative path/size/mtime and the weight file's identity."""
    record = {
        "version": CACHE_VERSION,
        "folder": str(folder.resolve()),
        "files": [(p.relative_to(folder).as_posix(), *_file_signature(p)[1:]) for p in files],
        "weights": _file_signature(Path(weights_path)),
        "resize": f"bilinear{FID_SIZE}",
    }
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:32]


def _read_cache(cache_file: Path) -> FeatureSet:
    with np.load(cache_file, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    features = arrays.pop("features", None)
    return FeatureSet(GaussianStats(**arrays), features)


def _write_cache(cache_file: Path, feature_set: FeatureSet) -> None:
    arrays = feature_set.stats.arrays()
    if feature_set.features is not None:  # Inception outputs are float32: nothing is lost
        arrays["features"] = feature_set.features.astype(np.float32)
    save_npz(cache_file, arrays)


def folder_feature_set(
    folder: str | Path,
    model: FIDInceptionV3,
    *,
    files: Sequence[Path] | None = None,
    need_features: bool = False,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    batch_size: int = 32,
    progress: bool = True,
    group: ProcessGroup | None = None,
) -> FeatureSet:
    """Statistics (mean ``(2048,)``, covariance) of every image under ``folder``, and with
    ``need_features`` (KID) the features ``(N, 2048)`` too. ``files``: only these images of ``folder``
    (e.g. its readable ones).

    With ``use_cache`` the result is read from / written to ``cache_dir`` (default
    :func:`default_cache_dir`) under a key that changes when any file or the weights change; a cache
    entry without features is recomputed (and rewritten with them) when features are needed. A model
    built without a weight file (``model.weights_path is None``), or ``files`` that leave some of the
    folder out, are never cached. In a multi-process
    ``group`` rank 0 decides whether the cache holds the entry and writes it; the features are sharded.
    """
    group = group or SINGLE
    folder = Path(folder)
    every_file = list_images(folder)
    files = every_file if files is None else list(files)
    if len(files) < 2:
        raise ValueError(f"FID needs at least 2 images, found {len(files)} in {folder}")
    cache_file = None
    if use_cache and model.weights_path is not None and files == every_file:
        key = statistics_cache_key(folder, files, model.weights_path)
        cache_file = Path(cache_dir or default_cache_dir()) / f"{key}.npz"

    def cached() -> FeatureSet | None:
        if cache_file is None or not cache_file.is_file():
            return None
        try:
            entry = _read_cache(cache_file)
        except (OSError, ValueError, TypeError):  # a damaged entry is recomputed
            return None
        return None if need_features and entry.features is None else entry

    entry = group.broadcast(cached() if group.is_main else None)  # rank 0's cache (may be node-local)
    if entry is not None:
        return entry
    features = extract_features(files, model, batch_size=batch_size, progress=progress, group=group)
    result = FeatureSet.from_features(features)
    if cache_file is not None and group.is_main:
        _write_cache(cache_file, result if need_features else FeatureSet(result.stats))
    return result


def folder_statistics(
    folder: str | Path,
    model: FIDInceptionV3,
    *,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    batch_size: int = 32,
    progress: bool = True,
) -> GaussianStats:
    """Feature mean ``(2048,)`` and covariance of every image under ``folder`` (cached, see
    :func:`folder_feature_set`)."""
    return folder_feature_set(
        folder, model, cache_dir=cache_dir, use_cache=use_cache, batch_size=batch_size, progress=progress
    ).stats


def fid_between_folders(
    real: str | Path,
    fake: str | Path,
    *,
    model: FIDInceptionV3 | None = None,
    weights: str | Path | None = None,
    device: str | torch.device = "cpu",
    cache_dir: str | Path | None = None,
    batch_size: int = 32,
    progress: bool = True,
) -> float:
    """FID between all images under ``real`` (statistics cached) and all under ``fake`` (never cached)."""
    model = model or load_fid_model(weights, device)
    real_stats = folder_statistics(real, model, cache_dir=cache_dir, batch_size=batch_size, progress=progress)
    fake_stats = folder_statistics(fake, model, use_cache=False, batch_size=batch_size, progress=progress)
    return frechet_distance_stats(fake_stats, real_stats)
