"""`ponogan eval` and `ponogan weights` refuse nonsense in one line (issue 20): the real cause and the
fix, exit status 2 for usage errors with nothing written, 1 when some inputs failed; weight files holding
pickled objects are refused without torch's advice to unpickle them."""

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from test_metrics_cli import _empty_torch_home, _eval, _folders, _glyph, _save, _tiny_run  # noqa: F401

import ponogan.metrics.weights as weights_module
from ponogan.cli import main
from ponogan.core.messages import EXIT_STATUS_HELP
from ponogan.metrics.weights import LPIPS_BACKBONES, hub_checkpoint_dir, load_state_dict

UNSAFE_HINTS = ("weights_only", "arbitrary code", "allow_pickle", "pickle.load", "trusted source")


def one_error(capsys) -> str:
    """The single ``error:`` line a refused command printed (nothing else on stderr)."""
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def listing(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


class _MakesADirectory:
    """Unpickling this runs ``os.mkdir(path)``: a harmless stand-in for a malicious pickle."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.mkdir, (self.path,))


@pytest.fixture
def evil(tmp_path):
    """Weight files whose unpickling would create ``tmp_path / "pwned"``: a torch zip and a plain pickle."""
    marker = tmp_path / "pwned"
    zipped, plain = tmp_path / "evil.pth", tmp_path / "plain_evil.pth"
    torch.save({"conv.weight": _MakesADirectory(marker)}, zipped)
    plain.write_bytes(pickle.dumps({"conv.weight": _MakesADirectory(marker)}))
    return {"zip": zipped, "plain": plain, "marker": marker}


@pytest.mark.parametrize("kind", ["zip", "plain"])
@pytest.mark.parametrize("option, metric", [("--fid-weights", "fid"), ("--lpips-weights", "lpips")])
def test_pickled_weight_files_are_refused_without_an_unsafe_hint(
    tmp_path, capsys, evil, kind, option, metric
):
    real, fake, _ = _folders(tmp_path)
    out = tmp_path / "out"
    assert _eval("--real", real, "--fake", fake, "--out", out, "--metrics", metric, option, evil[kind]) == 2
    line = one_error(capsys)
    assert option in line and "not a plain weights file" in line and "never unpickles" in line
    assert not any(hint in line for hint in UNSAFE_HINTS), line
    assert not evil["marker"].exists() and not out.exists()


def test_a_pickled_file_in_the_hub_cache_skips_its_metric_in_one_line(tmp_path, capsys, evil):
    real, fake, _ = _folders(tmp_path)
    hub_checkpoint_dir().mkdir(parents=True)
    (hub_checkpoint_dir() / LPIPS_BACKBONES["alex"].filename).write_bytes(evil["zip"].read_bytes())
    out = tmp_path / "out"
    assert _eval("--real", real, "--fake", fake, "--out", out, "--metrics", "l1,lpips") == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert len(lines) == 1 and "skipped lpips" in lines[0] and "never unpickles" in lines[0]
    assert not any(hint in err for hint in UNSAFE_HINTS) and not evil["marker"].exists()
    assert list(json.loads((out / "metrics.json").read_text())) == ["l1"]


def test_unreadable_weight_files_name_the_cause_only(tmp_path):
    garbage, empty, mixed = tmp_path / "garbage.pth", tmp_path / "empty.pth", tmp_path / "mixed.pth"
    garbage.write_bytes(b"not a checkpoint")
    empty.write_bytes(b"")
    torch.save({"w": torch.zeros(1), "step": 3}, mixed)
    for path, message in ((garbage, "damaged or not a weights file"), (empty, "empty"), (mixed, "tensors")):
        with pytest.raises(ValueError, match=message) as caught:
            load_state_dict(path)
        assert "\n" not in str(caught.value) and not any(h in str(caught.value) for h in UNSAFE_HINTS)


def test_missing_weight_files_given_by_path_are_usage_errors(tmp_path, capsys):
    real, fake, _ = _folders(tmp_path)
    out = tmp_path / "out"
    args = ["--real", real, "--fake", fake, "--out", out, "--metrics", "l1,fid"]
    assert _eval(*args, "--fid-weights", tmp_path / "nowhere.pth") == 2
    line = one_error(capsys)
    assert "--fid-weights" in line and "nowhere.pth does not exist" in line
    assert "ponogan weights download fid" in line and not out.exists()
    assert _eval("--real", real, "--save-stats", tmp_path / "s.npz", "--fid-weights", tmp_path / "x.pth") == 2
    assert "x.pth does not exist" in one_error(capsys) and not (tmp_path / "s.npz").exists()


@pytest.mark.parametrize("device", ["bogus", "cuda:7"])
def test_bad_devices_are_one_line_usage_errors(tmp_path, capsys, device):
    if device == "cuda:7" and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    real, fake, _ = _folders(tmp_path)
    out = tmp_path / "out"
    assert _eval("--real", real, "--fake", fake, "--out", out, "--metrics", "l1", "--device", device) == 2
    line = one_error(capsys)
    assert "--device" in line and device in line and not out.exists()


@pytest.mark.parametrize("where", ["fake", "fake/sub", "parent", "masks", "link_to_fake"])
def test_out_overlapping_a_folder_eval_reads_is_refused(tmp_path, capsys, where):
    real, fake, _ = _folders(tmp_path / "data")
    masks = tmp_path / "data" / "masks"
    _save(masks, "g0.png", _glyph(0)[..., 0])
    (tmp_path / "link_to_fake").symlink_to(fake, target_is_directory=True)
    out = {
        "fake": fake,
        "fake/sub": fake / "sub",
        "parent": tmp_path / "data",
        "masks": masks,
        "link_to_fake": tmp_path / "link_to_fake",
    }[where]
    before = listing(tmp_path)
    args = ["--real", real, "--fake", fake, "--masks", masks, "--metrics", "l1,iou", "--out", out]
    assert _eval(*args) == 2
    line = one_error(capsys)
    assert f"--out {out}" in line and "choose an --out apart from" in line
    assert listing(tmp_path) == before  # nothing written


@pytest.mark.parametrize("fake", ["same", "link", "inside", "outside"])
def test_real_and_fake_must_be_apart(tmp_path, capsys, fake):
    real, _, _ = _folders(tmp_path)
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    _save(real / "inner", "g0.png", _glyph(1))
    chosen = {"same": real, "link": tmp_path / "link", "inside": real / "inner", "outside": tmp_path}[fake]
    out = tmp_path.parent / f"{tmp_path.name}_out"
    assert _eval("--real", real, "--fake", chosen, "--out", out, "--metrics", "l1") == 2
    line = one_error(capsys)
    assert "same folder" in line if fake in ("same", "link") else "is inside" in line
    assert not out.exists()


def test_masks_matching_no_pair_are_refused_and_partial_masks_are_counted(tmp_path, capsys):
    real, fake, _ = _folders(tmp_path)
    masks = tmp_path / "masks"
    _save(masks, "other.png", _glyph(0)[..., 0])
    out = tmp_path / "out"
    base = ["--real", real, "--fake", fake, "--metrics", "iou", "--masks", masks]
    assert _eval(*base, "--out", out) == 2
    line = one_error(capsys)
    assert "--masks" in line and "no mask matches" in line and "g0.png" in line and not out.exists()
    _save(masks, "g0.png", _glyph(0)[..., 0])  # now 1 of the 2 pairs has a mask
    assert _eval(*base, "--out", out) == 0
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and "a mask for 1 of 2 pairs" in warnings[0]
    assert "a mask for 1 of 2 pairs" in (out / "metrics.md").read_text()
    assert _eval("--real", real, "--fake", fake, "--metrics", "l1", "--masks", masks, "--out", out) == 2
    assert "iou and centroid" in one_error(capsys)  # --masks without a metric that reads it


@pytest.mark.parametrize(
    "args, message",
    [
        (["--batch-size", "0"], "--batch-size must be at least 1"),
        (["--kid-subsets", "-3"], "--kid-subsets must be at least 1"),
        (["--kid-subset-size", "1"], "--kid-subset-size must be at least 2"),
        (["--n-styles", "0"], "--n-styles must be at least 1"),
        (["--seed", str(2**70)], "--seed must be between 0 and 2**63 - 1"),
        (["--metrics", ","], "--metrics is empty"),
        (["--metrics", "l1,bogus"], "'bogus'"),
        (["--record"], "--record applies to --checkpoint"),
        (["--cache-dir", "{file}"], "--cache-dir"),
        (["--save-stats", "{file}/x.npz"], "is a file, so nothing can be written under it"),
    ],
)
def test_nonsense_settings_are_refused_before_anything_runs(tmp_path, capsys, args, message):
    real, fake, _ = _folders(tmp_path)
    (tmp_path / "a_file").write_text("x")
    args = [a.format(file=tmp_path / "a_file") for a in args]
    out = tmp_path / "out"
    assert _eval("--real", real, "--fake", fake, "--out", out, *args) == 2
    assert message in one_error(capsys) and not out.exists()


def test_an_out_below_a_file_is_refused_before_anything_runs(tmp_path, capsys):
    real, fake, _ = _folders(tmp_path)
    (tmp_path / "a_file").write_text("x")
    for out in (tmp_path / "a_file", tmp_path / "a_file" / "sub" / "out"):
        assert _eval("--real", real, "--fake", fake, "--out", out, "--metrics", "l1") == 2
        assert f"--out {out}" in one_error(capsys)
    assert (tmp_path / "a_file").read_text() == "x"


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d.mkdir(), "holds no image files"),
        (lambda d: (d.mkdir(), (d / "notes.txt").write_text("x")), "holds no image files"),
        (lambda d: (d.mkdir(), (d / "a.png").write_text("x")), "holds no readable image"),
        (lambda d: d.write_text("x"), "is a file, not a folder"),
    ],
)
def test_fake_folders_without_images_are_refused(tmp_path, capsys, make, message):
    real, _, _ = _folders(tmp_path)
    make(tmp_path / "bad")
    out = tmp_path / "out"
    assert _eval("--real", real, "--fake", tmp_path / "bad", "--out", out, "--metrics", "l1") == 2
    assert message in one_error(capsys) and not out.exists()


def test_a_real_that_is_not_a_statistics_file_is_refused_safely(tmp_path, capsys):
    _, fake, _ = _folders(tmp_path)
    garbage, pickled, folder = tmp_path / "garbage.npz", tmp_path / "objects.npz", tmp_path / "folder.npz"
    garbage.write_bytes(b"garbage")
    np.savez(pickled, mu=np.array([{"a": 1}], dtype=object), sigma=np.zeros((1, 1)))
    folder.mkdir()
    cases = {garbage: "not a zip archive", pickled: "never unpickles", folder: "is a folder"}
    for path, message in cases.items():
        assert _eval("--real", path, "--fake", fake, "--out", tmp_path / "out", "--metrics", "fid") == 2
        line = one_error(capsys)
        assert message in line and not any(hint in line for hint in UNSAFE_HINTS), line
    assert not (tmp_path / "out").exists()


def test_checkpoint_evaluations_refuse_before_translating(tmp_path, capsys):
    run = _tiny_run(tmp_path / "run", "pix2pix")
    out = tmp_path / "out"
    base = ["--checkpoint", run, "--data", "glyphs", "--device", "cpu"]
    cases = [
        (["--out", out, "--metrics", "diversity", "--n-styles", "2"], "diversity needs several styles"),
        (["--out", out, "--batch-size", "0"], "--batch-size must be at least 1"),
        (["--out", out, "--masks", tmp_path], "--masks goes with --real/--fake"),
        (["--out", run / "eval"], "inside the --checkpoint folder"),
        (["--out", out, "--direction", "BtoA"], "--direction"),  # a pix2pix run translates AtoB only
        (["--out", out, "--metrics", "fid", "--fid-weights", tmp_path / "none.pth"], "does not exist"),
    ]
    for args, message in cases:
        assert _eval(*base, *args) == 2, args
        assert message in one_error(capsys)
        assert not out.exists() and not (run / "eval").exists()
    assert _eval("--checkpoint", tmp_path / "missing", "--data", "glyphs", "--out", out) == 2
    assert "--checkpoint" in one_error(capsys) and not out.exists()


def test_help_and_docs_give_the_exit_statuses_the_code_returns(capsys):
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert EXIT_STATUS_HELP in text and "Exit status 1 also when a requested metric was skipped" in text
    docs = (Path(__file__).parents[1] / "docs" / "evaluation.md").read_text()
    assert "status 3" not in docs and "`3`" not in docs


def test_weights_command_errors_are_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "home"))
    assert main(["weights", "download", "bogus", "fid"]) == 2
    assert "unknown weight name(s) 'bogus'" in one_error(capsys)
    # a hub cache file that is not the real one: named, with what to do, and never replaced
    hub_checkpoint_dir().mkdir(parents=True)
    wrong = hub_checkpoint_dir() / weights_module.FID_INCEPTION.filename
    wrong.write_bytes(b"something else")
    assert main(["weights", "download", "--no-progress", "fid"]) == 1
    line = one_error(capsys)
    assert "SHA-256" in line and "remove it and download again" in line
    assert wrong.read_bytes() == b"something else"
    # a hub cache that cannot be written (TORCH_HOME is a file)
    (tmp_path / "home_file").write_text("x")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "home_file"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: None)
    assert main(["weights", "download", "--no-progress", "lpips"]) == 1
    line = one_error(capsys)
    assert "cannot write" in line and "TORCH_HOME" in line


@pytest.mark.slow
def test_explicit_weights_that_load_still_evaluate(tmp_path, capsys):
    """The check of a --lpips-weights file passes a real state dict through (the metric then runs)."""
    real, fake, _ = _folders(tmp_path)
    alex = tmp_path / "alex.pth"
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), alex)
    out = tmp_path / "out"
    assert (
        _eval("--real", real, "--fake", fake, "--out", out, "--metrics", "lpips", "--lpips-weights", alex)
        == 0
    )
    assert list(json.loads((out / "metrics.json").read_text())) == ["lpips"]
