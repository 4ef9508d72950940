"""Fréchet distance between two Gaussians, the statistic behind FID.

    d^2 = |mu1 - mu2|^2 + Tr(S1) + Tr(S2) - 2 Tr((S1 S2)^(1/2))

``Tr((S1 S2)^(1/2))`` is the sum of the square roots of the eigenvalues of ``S1 S2``, which are those of
a symmetric PSD matrix similar to it: ``L^T S2 L`` with ``S1 = L L^T`` (Cholesky, when S1 is positive
definite) or ``S1^(1/2) S2 S1^(1/2)`` (``eigh``, when it is singular). Symmetric eigensolvers replace
scipy's general ``sqrtm``: faster, no complex parts, and no dependency on the SciPy argument
pytorch-fid uses that SciPy 1.18 removes. Eigenvalues below 0 (round-off) are clamped, and so is the
result.

When a set has fewer samples than feature dimensions, its covariance is ``F F^T`` with the centred
features ``F`` ``(D, n)`` scaled by ``1/sqrt(n - 1)``: the nonzero eigenvalues of ``S1 F2 F2^T`` are those
of the small ``F2^T S1 F2`` ``(n, n)``, so :class:`GaussianStats` keeps ``F`` instead of the ``(D, D)``
covariance and the distance costs an ``n x n`` eigenproblem (exactly the same value).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GaussianStats:
    """Mean ``mu`` ``(D,)`` and covariance, as ``sigma`` ``(D, D)`` or a factor ``(D, k)`` with
    ``sigma = factor @ factor.T`` (cheaper when the set has fewer than D samples)."""

    mu: np.ndarray
    sigma: np.ndarray | None = None
    factor: np.ndarray | None = None

    @classmethod
    def from_features(cls, features: np.ndarray, *, low_rank: bool | None = None) -> GaussianStats:
        """Statistics of features ``(N, D)``: unbiased covariance (as ``np.cov``, like pytorch-fid).

        ``low_rank=None`` keeps the factor when ``N <= D``, the full covariance otherwise.
        """
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or features.shape[0] < 2:
            raise ValueError(f"need at least 2 feature vectors (N, D) for a covariance, got {features.shape}")
        n, dims = features.shape
        mu = features.mean(axis=0)
        factor = (features - mu).T / np.sqrt(n - 1)  # (D, N)
        if low_rank if low_rank is not None else n <= dims:
            return cls(mu=mu, factor=factor)
        return cls(mu=mu, sigma=factor @ factor.T)

    def covariance(self) -> np.ndarray:
        return self.sigma if self.sigma is not None else self.factor @ self.factor.T

    def trace(self) -> float:
        return float(np.trace(self.sigma)) if self.sigma is not None else float(np.square(self.factor).sum())

    def arrays(self) -> dict[str, np.ndarray]:
        """For ``np.savez``: ``mu`` plus ``sigma`` or ``factor``."""
        covariance = {"sigma": self.sigma} if self.sigma is not None else {"factor": self.factor}
        return {"mu": self.mu, **covariance}


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(D,)`` and unbiased covariance ``(D, D)`` of features ``(N, D)``, as pytorch-fid has them."""
    stats = GaussianStats.from_features(features, low_rank=False)
    return stats.mu, stats.sigma


def _sqrt_eigenvalue_sum(matrix: np.ndarray) -> float:
    """Sum of the square roots of the (clamped) eigenvalues of a symmetric PSD matrix."""
    eigenvalues = np.linalg.eigvalsh((matrix + matrix.T) / 2)
    return float(np.sqrt(np.clip(eigenvalues, 0.0, None)).sum())


def _trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """``Tr((S1 S2)^(1/2))`` for full covariances."""
    try:
        root = np.linalg.cholesky(sigma1)  # S1 = L L^T
        return _sqrt_eigenvalue_sum(root.T @ sigma2 @ root)
    except np.linalg.LinAlgError:  # singular S1: symmetric square root instead
        values, vectors = np.linalg.eigh(sigma1)
        root = (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T
        return _sqrt_eigenvalue_sum(root @ sigma2 @ root)


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Squared Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2); ``mu`` (D,), ``sigma`` (D, D)."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(
            f"statistics do not match: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs {sigma2.shape}"
        )
    return frechet_distance_stats(GaussianStats(mu1, sigma=sigma1), GaussianStats(mu2, sigma=sigma2))


def frechet_distance_stats(stats1: GaussianStats, stats2: GaussianStats) -> float:
    """:func:`frechet_distance` for :class:`GaussianStats`, using a low-rank factor where one is kept."""
    if stats1.mu.shape != stats2.mu.shape:
        raise ValueError(f"feature dimensions differ: {stats1.mu.shape} vs {stats2.mu.shape}")
    if stats2.factor is None and stats1.factor is not None:
        stats1, stats2 = stats2, stats1  # the distance is symmetric; put a factor on the right
    if stats2.factor is not None:
        f2 = stats2.factor  # (D, k2)
        if stats1.factor is not None:
            cross = f2.T @ stats1.factor  # (k2, k1)
            inner = cross @ cross.T
        else:
            inner = f2.T @ stats1.sigma @ f2
        trace_covmean = _sqrt_eigenvalue_sum(inner)
    else:
        sigma1, sigma2 = (stats1.sigma + stats1.sigma.T) / 2, (stats2.sigma + stats2.sigma.T) / 2
        trace_covmean = _trace_sqrt_product(sigma1, sigma2)
    diff = stats1.mu - stats2.mu
    value = diff @ diff + stats1.trace() + stats2.trace() - 2.0 * trace_covmean
    return float(max(value, 0.0))
