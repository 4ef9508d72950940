"""Fréchet distance: closed-form cases, agreement with pytorch-fid, the low-rank path, bad input."""

import numpy as np
import pytest
from pytorch_fid.fid_score import calculate_frechet_distance

from ponogan.metrics.frechet import (
    GaussianStats,
    feature_statistics,
    frechet_distance,
    frechet_distance_stats,
)


def _random_psd(rng, dims, rank=None):
    a = rng.normal(size=(dims, rank or dims + 3))
    return a @ a.T / a.shape[1]


def test_identical_statistics_give_zero():
    rng = np.random.default_rng(1)
    mu, sigma = rng.normal(size=8), _random_psd(rng, 8)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-9)


def test_one_dimensional_closed_form():
    # d^2 = (m1 - m2)^2 + (s1 - s2)^2 for N(m, s^2)
    assert frechet_distance([1.0], [[4.0]], [-2.0], [[9.0]]) == pytest.approx(9.0 + 1.0)


def test_diagonal_closed_form():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    var1, var2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(var1) - np.sqrt(var2)) ** 2)
    assert frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2)) == pytest.approx(expected)


def test_scaled_covariance_closed_form():
    # S2 = c^2 S1 commutes with S1: d^2 = |dmu|^2 + Tr(S1) (1 - c)^2
    rng = np.random.default_rng(2)
    sigma, c = _random_psd(rng, 6), 3.0
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(sigma) * (1 - c) ** 2
    assert frechet_distance(mu1, sigma, mu2, c**2 * sigma) == pytest.approx(expected, rel=1e-9)


def test_zero_covariance_is_squared_mean_distance():
    zeros = np.zeros((4, 4))
    assert frechet_distance(np.zeros(4), zeros, np.full(4, 2.0), zeros) == pytest.approx(16.0)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("rank", [None, 5])  # positive definite (Cholesky path) and singular (eigh path)
def test_matches_pytorch_fid_on_random_statistics(rank):
    rng = np.random.default_rng(3)
    for _ in range(3):
        mu1, mu2 = rng.normal(size=24), rng.normal(size=24)
        s1, s2 = _random_psd(rng, 24, rank), _random_psd(rng, 24, rank)
        ours = frechet_distance(mu1, s1, mu2, s2)
        assert ours == pytest.approx(float(calculate_frechet_distance(mu1, s1, mu2, s2)), rel=1e-6, abs=1e-8)


@pytest.mark.filterwarnings("ignore")
def test_low_rank_statistics_equal_full_covariance():
    rng = np.random.default_rng(4)
    f1, f2 = rng.normal(size=(6, 32)), 1.3 * rng.normal(size=(9, 32)) + 0.2
    low1, low2 = GaussianStats.from_features(f1), GaussianStats.from_features(f2)
    assert low1.factor is not None and low1.sigma is None  # 6 samples <= 32 dims keeps the factor
    mu1, s1 = feature_statistics(f1)
    mu2, s2 = feature_statistics(f2)
    np.testing.assert_allclose(s1, np.cov(f1, rowvar=False), atol=1e-12)
    full = frechet_distance(mu1, s1, mu2, s2)
    assert frechet_distance_stats(low1, low2) == pytest.approx(full, rel=1e-7)
    assert frechet_distance_stats(GaussianStats(mu1, sigma=s1), low2) == pytest.approx(full, rel=1e-7)
    assert frechet_distance_stats(low1, GaussianStats(mu2, sigma=s2)) == pytest.approx(full, rel=1e-7)
    assert full == pytest.approx(float(calculate_frechet_distance(mu1, s1, mu2, s2)), rel=1e-6)
    assert frechet_distance_stats(low1, low1) == pytest.approx(0.0, abs=1e-9)


def test_mismatched_statistics_raise():
    with pytest.raises(ValueError, match="do not match"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="at least 2"):
        feature_statistics(np.zeros((1, 5)))
