"""KID (issue 14): the unbiased MMD^2 estimator against a direct formula, its subset protocol, ~0 for
the same distribution and > 0 for a shifted one, unbiased at small n where FID is not, and `ponogan
eval --metrics kid` writing kid and kid_std next to FID."""

import itertools
import json

import numpy as np
import pytest
from test_metrics_cli import _empty_torch_home, _eval, _save, weights  # noqa: F401

from ponogan.metrics import (
    GaussianStats,
    extract_features,
    frechet_distance_stats,
    kernel_inception_distance,
    load_fid_model,
    mmd2_unbiased,
)
from ponogan.metrics.catalog import parse_metrics, with_extras
from ponogan.metrics.images import list_images
from ponogan.metrics.kid import polynomial_kernel
from ponogan.metrics.report import metrics_markdown


def direct_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """The unbiased estimator written out term by term with k(a, b) = (a.b / d + 1)^3."""
    d = x.shape[1]

    def k(a, b):
        return (float(np.dot(a, b)) / d + 1.0) ** 3

    n, m = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(n), 2)) / (n * (n - 1))
    yy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
    return xx + yy - 2 * xy


def test_estimator_equals_the_direct_formula():
    rng = np.random.default_rng(1)
    x, y = rng.random((7, 5)), rng.random((9, 5)) + 0.3
    assert mmd2_unbiased(x, y) == pytest.approx(direct_mmd2(x, y), rel=1e-12)
    # the diagonal k(x_i, x_i) is left out: including it gives a different (biased) value
    n, k_xx = len(x), polynomial_kernel(x, x)
    assert mmd2_unbiased(x, y) != pytest.approx(mmd2_unbiased(x, y) + np.trace(k_xx) / (n * (n - 1)))
    # equal set sizes: every subset is the whole set, so the value is the full-set estimate, std 0
    kid = kernel_inception_distance(x, y[:7])
    assert (kid.mean, kid.std, kid.subset_size) == (pytest.approx(direct_mmd2(x, y[:7]), rel=1e-12), 0.0, 7)


def test_subsets_follow_the_documented_protocol():
    rng = np.random.default_rng(2)
    x, y = rng.random((12, 4)), rng.random((10, 4))
    kid = kernel_inception_distance(x, y, num_subsets=5, max_subset_size=6, seed=3)
    draws = np.random.default_rng(3)
    values = []
    for _ in range(5):
        i, j = draws.choice(12, 6, replace=False), draws.choice(10, 6, replace=False)
        values.append(direct_mmd2(x[i], y[j]))
    assert (kid.mean, kid.std) == (pytest.approx(np.mean(values), rel=1e-10), pytest.approx(np.std(values)))
    assert kid.subsets == 5 and kid.subset_size == 6
    # the per-subset path used for large sets gives the same numbers as the precomputed kernels
    fallback = kernel_inception_distance(x, y, num_subsets=5, max_subset_size=6, seed=3, max_gram_size=0)
    assert fallback.mean == pytest.approx(kid.mean, rel=1e-10)


def test_same_distribution_near_zero_shifted_positive():
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((300, 64)), rng.standard_normal((300, 64))
    same = kernel_inception_distance(x, y, max_subset_size=100)
    shifted = kernel_inception_distance(x, y + 0.5, max_subset_size=100)
    assert shifted.mean > 0.05
    assert abs(same.mean) < 0.02 * shifted.mean
    assert same.std > 0  # subsets of 100 out of 300 differ


def test_kid_is_unbiased_at_small_n_where_fid_is_not():
    """Two sets of 50 from the same Gaussian, 20 times: KID averages to ~0 (within its standard error);
    FID, the distance between plug-in estimates, is far above 0 every time."""
    rng = np.random.default_rng(5)
    dims, n, repeats = 256, 50, 20
    kids, fids = [], []
    for _ in range(repeats):
        x, y = rng.standard_normal((n, dims)), rng.standard_normal((n, dims))
        kids.append(kernel_inception_distance(x, y).mean)
        fids.append(frechet_distance_stats(GaussianStats.from_features(x), GaussianStats.from_features(y)))
    kids, fids = np.array(kids), np.array(fids)
    standard_error = kids.std(ddof=1) / np.sqrt(repeats)
    assert abs(kids.mean()) < 3 * standard_error
    shifted = kernel_inception_distance(rng.standard_normal((n, dims)) + 0.3, rng.standard_normal((n, dims)))
    assert shifted.mean > 10 * standard_error  # a real difference stands far above that noise
    # FID of two samples of N(0, I) is positive and large: its bias at n = 50 in 256 dims
    assert fids.min() > 100 and fids.std() < 0.1 * fids.mean()


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="equal D"):
        kernel_inception_distance(np.zeros((3, 4)), np.zeros((3, 5)))
    with pytest.raises(ValueError, match="at least 2 images"):
        kernel_inception_distance(np.zeros((1, 4)), np.zeros((3, 4)))


def test_registry_and_markdown_know_kid_and_its_std():
    assert parse_metrics("fid,kid") == ["fid", "kid"]
    assert with_extras(["fid", "kid", "l1"]) == ["fid", "kid", "kid_std", "l1"]
    lines = metrics_markdown({"kid": 0.00123, "kid_std": 0.0004}).splitlines()
    assert lines[2].startswith("| kid | 1.230e-03 | lower | Kernel Inception Distance")
    assert lines[3].startswith("| kid_std | 4.000e-04 | lower | standard deviation of KID")


def _squares(folder, shifts, size=32):
    for i, shift in enumerate(shifts):
        image = np.full((size, size, 3), 255, np.uint8)
        image[6:18, 6 + shift : 18 + shift] = 40 * (i % 3)
        _save(folder, f"g{i}.png", image)
    return folder


@pytest.mark.slow
def test_eval_writes_kid_next_to_fid(tmp_path, weights, capsys):  # noqa: F811
    real = _squares(tmp_path / "real", [0, 1, 2, 3])
    fake = _squares(tmp_path / "fake", [6, 7, 8, 9, 10])
    out = tmp_path / "out"
    rc = _eval(
        "--real", real, "--fake", fake, "--out", out, "--metrics", "fid,kid,l1",
        "--fid-weights", weights["fid"], "--cache-dir", tmp_path / "cache", "--kid-subsets", "7",
    )  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    values = json.loads((out / "metrics.json").read_text())
    assert list(values) == ["fid", "kid", "kid_std", "l1"]
    model = load_fid_model(weights["fid"])
    features = {side: extract_features(list_images(folder), model, progress=False) for side, folder in
                (("fake", fake), ("real", real))}  # fmt: skip
    expected = kernel_inception_distance(features["fake"], features["real"], num_subsets=7)
    assert values["kid"] == pytest.approx(expected.mean, rel=1e-6, abs=1e-12)
    assert values["kid_std"] == pytest.approx(expected.std, rel=1e-6) and expected.std > 0  # 4 of 5 vary
    markdown = (out / "metrics.md").read_text()
    assert "| kid |" in markdown and "| kid_std |" in markdown and "7 subsets" in markdown
    # the real folder's cache entry now holds its features too; a second run reads them from it
    (entry,) = (tmp_path / "cache").glob("*.npz")
    with np.load(entry) as data:
        assert data["features"].shape == (4, 2048)
    written = entry.stat().st_mtime_ns
    rc = _eval(
        "--real", real, "--fake", fake, "--out", tmp_path / "again", "--metrics", "kid",
        "--fid-weights", weights["fid"], "--cache-dir", tmp_path / "cache", "--kid-subsets", "7",
    )  # fmt: skip
    assert rc == 0
    again = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert again["kid"] == pytest.approx(values["kid"], rel=1e-9)
    assert again["kid_std"] == pytest.approx(values["kid_std"], rel=1e-9)
    assert entry.stat().st_mtime_ns == written  # a cache hit: not recomputed
