"""pytorch-fid statistics files: ``.npz`` with ``mu`` ``(2048,)`` and ``sigma`` ``(2048, 2048)``.

``python -m pytorch_fid --save-stats DIR FILE`` writes such a file and ``python -m pytorch_fid FILE DIR``
reads one in place of a folder; ``ponogan eval --real FILE.npz`` reads the same format and
``ponogan eval --save-stats FILE`` writes it. Optionally the file also holds ``features`` ``(N, 2048)``
(float32, exactly the Inception outputs): statistics alone give FID, KID needs the features themselves.

Files are written atomically and never over an existing file (``ponogan.core.atomic``'s ``exclusive``
write). They are read with ``allow_pickle=False``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ponogan.core.atomic import atomic_write
from ponogan.core.messages import first_line
from ponogan.metrics.frechet import GaussianStats


@dataclass(frozen=True)
class FeatureSet:
    """What FID and KID need of one side: statistics, and the features ``(N, D)`` when known."""

    stats: GaussianStats
    features: np.ndarray | None = None

    @classmethod
    def from_features(cls, features: np.ndarray) -> FeatureSet:
        return cls(GaussianStats.from_features(features), np.asarray(features))


def is_stats_file(path: str | Path) -> bool:
    """Whether ``--real`` names a statistics file (a ``.npz`` path) rather than an image folder."""
    return Path(path).suffix.lower() == ".npz"


def load_stats_file(path: str | Path) -> FeatureSet:
    """Read ``mu``, ``sigma`` (and ``features`` when present) from a pytorch-fid statistics file.

    Raises ``FileNotFoundError`` when it is missing and ``ValueError`` (one line) when it is not a
    statistics file or its arrays do not fit together.
    """
    path = Path(path)
    if path.is_dir():
        raise FileNotFoundError(
            f"--real {path} is a folder, yet its .npz name marks a statistics file: rename the folder"
        )
    if not path.is_file():
        raise FileNotFoundError(f"--real statistics file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except Exception as err:  # not a zip, truncated, pickled objects (never unpickled)...
        raise ValueError(
            f"--real {path} is not a readable .npz statistics file ({_unreadable_reason(path, err)}): "
            "write one with `ponogan eval --real DIR --save-stats FILE` or "
            "`python -m pytorch_fid --save-stats DIR FILE`"
        ) from None
    if "mu" not in arrays or "sigma" not in arrays:
        raise ValueError(
            f"--real {path} is not a pytorch-fid statistics file: it needs arrays 'mu' and 'sigma', "
            f"has {sorted(arrays)}"
        )
    mu, sigma = np.asarray(arrays["mu"], np.float64), np.asarray(arrays["sigma"], np.float64)
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise ValueError(
            f"--real {path}: mu {mu.shape} and sigma {sigma.shape} do not fit (need (D,), (D, D))"
        )
    features = arrays.get("features")
    if features is not None and (features.ndim != 2 or features.shape[1] != mu.shape[0]):
        raise ValueError(f"--real {path}: features {features.shape} do not fit mu {mu.shape}")
    return FeatureSet(GaussianStats(mu, sigma=sigma), features)


def _unreadable_reason(path: Path, err: Exception) -> str:
    """Why numpy could not read ``path``, without numpy's hint to load pickled data unsafely."""
    with open(path, "rb") as handle:
        is_zip = handle.read(2) == b"PK"  # an .npz is a zip archive of .npy arrays
    if not is_zip:
        return "not a zip archive of arrays"
    if "pickle" in str(err).lower():
        return "it holds pickled Python objects, which ponogan never unpickles"
    return f"damaged: {first_line(err)}"


def check_new_file(path: str | Path) -> Path:
    """``FileExistsError`` when ``path`` exists (statistics are never written over a file)."""
    path = Path(path)
    if path.is_symlink() or path.exists():
        raise FileExistsError(
            f"--save-stats {path} already exists; ponogan eval never overwrites it: "
            "choose another name or remove the file"
        )
    return path


def save_stats_file(path: str | Path, features: FeatureSet, *, with_features: bool = False) -> Path:
    """Write ``mu`` ``(D,)``, ``sigma`` ``(D, D)`` float64 (pytorch-fid's keys) and, with
    ``with_features``, ``features`` ``(N, D)`` float32, atomically and never over an existing file.

    The parent folder is created. Raises ``FileExistsError`` when ``path`` exists (also when another
    process creates it meanwhile) and ``ValueError`` when features are asked for but unknown.
    """
    path = check_new_file(path)
    arrays = {"mu": features.stats.mu, "sigma": features.stats.covariance()}
    if with_features:
        if features.features is None:
            raise ValueError(f"cannot save features to {path}: only statistics are known")
        arrays["features"] = np.asarray(features.features, np.float32)
    try:
        return save_npz(path, arrays, exclusive=True)
    except FileExistsError:
        check_new_file(path)  # the message that says what to do
        raise


def save_npz(path: str | Path, arrays: dict[str, np.ndarray], *, exclusive: bool = False) -> Path:
    """Write ``arrays`` as an ``.npz`` atomically (``exclusive``: see
    ``ponogan.core.atomic.atomic_write``)."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:  # a file object: np.savez would append .npz to the temp name
            np.savez(handle, **arrays)

    return atomic_write(path, write, exclusive=exclusive)
