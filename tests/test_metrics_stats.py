"""pytorch-fid statistics files (issue 14): `--real FILE.npz`, `--save-stats FILE` (atomic, never over a
file), `--save-features` for KID, and the statistics-only run."""

import json

import numpy as np
import pytest
from pytorch_fid.fid_score import calculate_frechet_distance, compute_statistics_of_path
from test_metrics_cli import _empty_torch_home, _eval, _folders, _glyph, _save, weights  # noqa: F401

from ponogan.metrics import GaussianStats, frechet_distance
from ponogan.metrics.stats_file import FeatureSet, load_stats_file, save_stats_file


def _features(n=5, dims=6, seed=0):
    return np.random.default_rng(seed).random((n, dims)).astype(np.float32).astype(np.float64)


@pytest.mark.filterwarnings("ignore:The `disp` argument is deprecated:DeprecationWarning")
def test_round_trip_and_pytorch_fid_reads_our_file(tmp_path):
    features = _features()
    path = save_stats_file(tmp_path / "sub" / "s.npz", FeatureSet.from_features(features), with_features=True)
    assert sorted(p.name for p in path.parent.iterdir()) == ["s.npz"]  # no temporary file left
    loaded = load_stats_file(path)
    np.testing.assert_allclose(loaded.stats.mu, features.mean(0))
    np.testing.assert_allclose(loaded.stats.sigma, np.cov(features, rowvar=False))  # pytorch-fid's sigma
    np.testing.assert_array_equal(loaded.features, features)
    mu, sigma = compute_statistics_of_path(str(path), None, 1, 6, "cpu")  # pytorch-fid's own reader
    np.testing.assert_allclose(sigma, np.cov(features, rowvar=False))
    other = _features(seed=1)
    assert calculate_frechet_distance(mu, sigma, other.mean(0), np.cov(other, rowvar=False)) == pytest.approx(
        frechet_distance(mu, sigma, other.mean(0), np.cov(other, rowvar=False)), rel=1e-6
    )


def test_reads_pytorch_fid_compressed_files_without_features(tmp_path):
    features = _features()
    np.savez_compressed(tmp_path / "ref.npz", mu=features.mean(0), sigma=np.cov(features, rowvar=False))
    loaded = load_stats_file(tmp_path / "ref.npz")
    assert loaded.features is None
    np.testing.assert_allclose(loaded.stats.covariance(), np.cov(features, rowvar=False))


def test_never_written_over_an_existing_file(tmp_path):
    target = tmp_path / "mine.npz"
    target.write_bytes(b"the user's file")
    with pytest.raises(FileExistsError, match="never overwrites"):
        save_stats_file(target, FeatureSet.from_features(_features()))
    assert target.read_bytes() == b"the user's file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.npz"]
    with pytest.raises(ValueError, match="only statistics are known"):
        save_stats_file(
            tmp_path / "new.npz", FeatureSet(GaussianStats.from_features(_features())), with_features=True
        )
    assert not (tmp_path / "new.npz").exists()


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"m": np.zeros(3)}, "needs arrays 'mu' and 'sigma'"),
        ({"mu": np.zeros(3), "sigma": np.zeros((2, 2))}, "do not fit"),
        ({"mu": np.zeros(3), "sigma": np.zeros((3, 3)), "features": np.zeros((4, 2))}, "features"),
    ],
)
def test_malformed_files_give_one_clear_error(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=message):
        load_stats_file(tmp_path / "bad.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable .npz"):
        load_stats_file(tmp_path / "junk.npz")


def test_cli_errors_are_one_line_exit_2(tmp_path, capsys):
    real, fake, _ = _folders(tmp_path)
    existing = tmp_path / "exists.npz"
    existing.write_bytes(b"keep me")
    cases = [
        (
            ["--real", real, "--fake", fake, "--out", tmp_path / "o", "--save-stats", existing],
            "never overwrites",
        ),
        (["--real", tmp_path / "missing.npz", "--fake", fake, "--out", tmp_path / "o"], "does not exist"),
        (
            ["--real", real, "--fake", fake, "--out", tmp_path / "o", "--save-stats", tmp_path / "x.txt"],
            ".npz",
        ),
        (
            ["--real", real, "--fake", fake, "--out", tmp_path / "o", "--save-features"],
            "go with --save-stats",
        ),
        (["--real", real, "--fake", fake], "--out is required"),
    ]
    for args, message in cases:
        assert _eval(*args) == 2, args
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and message in lines[0] and "Traceback" not in err, err
    assert existing.read_bytes() == b"keep me"
    assert not (tmp_path / "o").exists()  # nothing was written before the check


def test_statistics_only_run_without_weights_says_what_to_fetch(tmp_path, capsys):
    real, _, _ = _folders(tmp_path)
    assert _eval("--real", real, "--save-stats", tmp_path / "r.npz") == 1
    err = capsys.readouterr().err
    assert "pt_inception-2015-12-05-6726825d.pth" in err and "Traceback" not in err
    assert not (tmp_path / "r.npz").exists()


@pytest.mark.slow
def test_stats_file_as_real_gives_the_folder_fid_and_kid_with_features(tmp_path, weights, capsys):  # noqa: F811
    real, fake, _ = _folders(tmp_path)
    for i in range(2, 4):  # 4 reals, 3 fakes: subsets of 3 reals vary
        _save(real, f"g{i}.png", _glyph(i))
    _save(fake, "g2.png", _glyph(5))
    common = ["--fid-weights", weights["fid"], "--cache-dir", tmp_path / "cache", "--kid-subsets", "5"]
    # the folder evaluation, saving the real folder's statistics (with features) on the way
    stats = tmp_path / "stats" / "real.npz"
    rc = _eval("--real", real, "--fake", fake, "--out", tmp_path / "folder", "--metrics", "fid,kid,l1",
               "--save-stats", stats, "--save-features", *common)  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    folder = json.loads((tmp_path / "folder" / "metrics.json").read_text())
    with np.load(stats) as data:
        assert sorted(data.files) == ["features", "mu", "sigma"]
        assert data["mu"].shape == (2048,) and data["sigma"].shape == (2048, 2048)
        assert data["features"].shape == (4, 2048) and data["features"].dtype == np.float32
    capsys.readouterr()

    # --real FILE.npz: FID and KID from the file, the paired metric skipped with the reason
    out = tmp_path / "from_stats"
    rc = _eval("--real", stats, "--fake", fake, "--out", out, "--metrics", "fid,kid,l1",
               "--save-stats", tmp_path / "fake.npz", *common)  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err
    assert "skipped l1" in err and "is a statistics file" in err
    values = json.loads((out / "metrics.json").read_text())
    assert values["fid"] == pytest.approx(folder["fid"], rel=1e-6)
    assert values["kid"] == pytest.approx(folder["kid"], rel=1e-6)
    assert values["kid_std"] == pytest.approx(folder["kid_std"], rel=1e-6)
    assert "| l1 | skipped |" in (out / "metrics.md").read_text()
    with np.load(tmp_path / "fake.npz") as data:  # with an .npz --real, --save-stats saves the fakes
        assert sorted(data.files) == ["mu", "sigma"]
        fake_mu = data["mu"]

    # statistics without features: FID still runs, KID is skipped with what to do
    only = tmp_path / "only_stats.npz"
    assert _eval("--real", real, "--save-stats", only, *common) == 0
    assert "wrote" in capsys.readouterr().out
    rc = _eval("--real", only, "--fake", fake, "--out", tmp_path / "nofeat", "--metrics", "fid,kid", *common)
    err = capsys.readouterr().err
    assert rc == 1 and "--save-features" in err
    nofeat = json.loads((tmp_path / "nofeat" / "metrics.json").read_text())
    assert list(nofeat) == ["fid"] and nofeat["fid"] == pytest.approx(folder["fid"], rel=1e-6)
    # the fakes' statistics file equals the fakes' own statistics (a stats-only run over the fake folder)
    assert _eval("--real", fake, "--save-stats", tmp_path / "fake2.npz", *common) == 0
    with np.load(tmp_path / "fake2.npz") as data:
        np.testing.assert_allclose(data["mu"], fake_mu, rtol=1e-10)
