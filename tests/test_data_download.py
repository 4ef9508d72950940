"""Public-dataset download (error path, unpacking on local archives), A|B combining, `ponogan data`."""

import errno
import importlib.util
import shutil
import tarfile
import urllib.error
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ponogan.cli import main as ponogan_main
from ponogan.data import create_dataset, load_image, tensor_to_pil
from ponogan.data.download import DownloadError, combine_ab, dataset_url, download_dataset, fetch

REPO = Path(__file__).resolve().parents[1]


def solid(path: Path, colour, size=(8, 6)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def make_dataset_tree(root: Path, name: str) -> Path:
    for split, colour in (("trainA", (255, 0, 0)), ("trainB", (0, 0, 255)), ("testA", (0, 255, 0))):
        solid(root / name / split / "x.png", colour)
    return root / name


def test_dataset_urls_follow_the_public_layout():
    assert (
        dataset_url("horse2zebra") == "http://efrosgans.eecs.berkeley.edu/cyclegan/datasets/horse2zebra.zip"
    )
    assert (
        dataset_url("edges2shoes") == "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/edges2shoes.tar.gz"
    )
    assert dataset_url("facades", "pix2pix").endswith("pix2pix/datasets/facades.tar.gz")
    with pytest.raises(ValueError, match="choose one with --kind"):
        dataset_url("facades")
    with pytest.raises(ValueError, match="unknown dataset 'cats2dogs'.*horse2zebra"):
        dataset_url("cats2dogs")


def test_unreachable_network_gives_a_clear_error(monkeypatch, tmp_path, capsys):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr("urllib.request.urlopen", offline)
    with pytest.raises(
        DownloadError, match="could not download http://efrosgans.*horse2zebra.zip.*--archive"
    ):
        download_dataset("horse2zebra", tmp_path)
    assert ponogan_main(["data", "download", "horse2zebra", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "error: could not download" in err and "name resolution" in err and "Traceback" not in err
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]  # no temp file of the failed download


def test_failed_fetch_raises_download_error_and_leaves_nothing(tmp_path, monkeypatch):
    with pytest.raises(DownloadError, match="could not download file://"):
        fetch((tmp_path / "absent.zip").as_uri(), tmp_path / "out.zip")
    source = tmp_path / "src.zip"
    source.write_bytes(b"PK" * 1000)

    def cut(response, handle, length):  # the connection drops mid-download
        handle.write(b"PK")
        raise OSError(errno.ECONNRESET, "Connection reset by peer")

    monkeypatch.setattr(shutil, "copyfileobj", cut)
    with pytest.raises(DownloadError, match="Connection reset"):
        fetch(source.as_uri(), tmp_path / "out.zip")
    assert [p.name for p in tmp_path.iterdir()] == ["src.zip"]


def test_download_unpacks_zip_from_file_url(tmp_path):
    tree = make_dataset_tree(tmp_path / "src", "tiny2toy")
    archive = tmp_path / "tiny2toy.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in tree.rglob("*.png"):
            zf.write(path, path.relative_to(tmp_path / "src"))
    target = download_dataset("tiny2toy", tmp_path / "datasets", url=archive.as_uri())
    assert target == tmp_path / "datasets" / "tiny2toy"
    item = create_dataset("unaligned", target, load_size=8, crop_size=4)[0]
    assert item["A"][0].min() == 1 and item["B"][2].min() == 1


def test_download_unpacks_local_tar_gz_via_cli(tmp_path, capsys):
    make_dataset_tree(tmp_path / "src", "facades")
    archive = tmp_path / "facades.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(tmp_path / "src" / "facades", arcname="facades")
    out = tmp_path / "datasets"
    assert ponogan_main(["data", "download", "facades", "--kind", "pix2pix", "--out", str(out),
                         "--archive", str(archive)]) == 0  # fmt: skip
    assert (out / "facades" / "trainB" / "x.png").is_file()
    assert "dataset ready" in capsys.readouterr().out


def test_unsafe_or_broken_archives_are_refused(tmp_path):
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../escape.txt", "x")
    with pytest.raises(DownloadError, match="outside the target folder"):
        download_dataset("evil", tmp_path / "out", archive=evil)
    assert not (tmp_path / "escape.txt").exists()
    junk = tmp_path / "junk.zip"
    junk.write_text("not an archive")
    with pytest.raises(DownloadError, match="not a zip or tar archive"):
        download_dataset("junk", tmp_path / "out", archive=junk)


def test_combine_builds_aligned_pairs_per_split(tmp_path):
    for split in ("train", "test"):
        solid(tmp_path / "A" / split / "1.png", (255, 0, 0))
        solid(tmp_path / "B" / split / "1.jpg", (0, 0, 255), size=(16, 12))
    solid(tmp_path / "A" / "train" / "lonely.png", (0, 0, 0))
    (tmp_path / "B" / "train" / "2.png").write_bytes(b"")
    solid(tmp_path / "A" / "train" / "2.png", (0, 0, 0))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        count = combine_ab(tmp_path / "A", tmp_path / "B", tmp_path / "AB")
    assert count == 2
    messages = " ".join(str(w.message) for w in caught)
    assert "2.png" in messages and "no partner" in messages
    pair = np.asarray(load_image(tmp_path / "AB" / "train" / "1.png"))
    assert pair.shape == (6, 16, 3)
    assert pair[:, :8].tolist() == [[[255, 0, 0]] * 8] * 6
    assert np.abs(pair[:, 8:].astype(int) - [0, 0, 255]).max() <= 3
    item = create_dataset("aligned", tmp_path / "AB", "test", preprocess="none")[0]
    assert item["A"].shape == item["B"].shape == (3, 6, 8)
    with pytest.raises(ValueError, match="does not exist"):
        combine_ab(tmp_path / "nothing", tmp_path / "B", tmp_path / "AB")


def test_cli_writes_unaligned_layout_the_folder_loader_reads(tmp_path, capsys):
    out = tmp_path / "glyphs"
    assert ponogan_main(["data", "glyphs", "--out", str(out), "--size", "32", "--length", "12",
                         "--test-jitters", "1"]) == 0  # fmt: skip
    assert "wrote 12 train and 11 test items" in capsys.readouterr().out
    assert {p.name for p in out.iterdir()} - {".ponogan-data-manifest.jsonl"} == {
        "trainA", "trainB", "testA", "testB", "testB_mask"
    }  # fmt: skip
    assert len(list((out / "trainB").iterdir())) == 12
    names = [sorted(p.name for p in (out / split).iterdir()) for split in ("testA", "testB")]
    assert names[0] == names[1]
    ds = create_dataset("unaligned", out, "test", load_size=32, crop_size=32, serial=True)
    reference = create_dataset("glyphs", None, "test", image_size=32, test_jitters=1)
    for index in (0, 5):
        assert torch.allclose(ds[index]["B"], reference[index]["B"], atol=1 / 127.5 + 1e-6)


def test_cli_writes_aligned_hard_layout(tmp_path):
    out = tmp_path / "glyphs"
    args = ["data", "glyphs", "--out", str(out), "--size", "32", "--length", "4", "--paired",
            "--variant", "hard", "--test-jitters", "1"]  # fmt: skip
    assert ponogan_main(args) == 0
    names = {p.name for p in out.iterdir()} - {".ponogan-data-manifest.jsonl"}
    assert names == {"train", "test", "test_mask"}
    ds = create_dataset("aligned", out, "test", preprocess="none")
    reference = create_dataset("glyphs", None, "test", image_size=32, variant="hard", test_jitters=1)
    item = ds[3]
    assert torch.allclose(item["A"], reference[3]["A"], atol=1 / 127.5 + 1e-6)
    assert torch.allclose(item["B"], reference[3]["B"], atol=1 / 127.5 + 1e-6)
    mask = np.asarray(load_image(out / "test_mask" / Path(item["A_path"]).name, mode="L")) > 127
    assert np.array_equal(mask, reference[3]["B_mask"][0].numpy() > 0.5)
    assert tensor_to_pil(item["B"]).size == (32, 32)


def test_cli_reports_bad_options_without_traceback(tmp_path, capsys):
    assert ponogan_main(["data", "glyphs", "--out", str(tmp_path), "--font-a", "Nope"]) == 1
    assert "unknown or unusable font 'Nope'" in capsys.readouterr().err
    assert ponogan_main(["data", "combine", "--fold-a", "x", "--fold-b", "y", "--out", str(tmp_path)]) == 1
    assert ponogan_main(["data", "glyphs"]) == 1
    assert "--out is required" in capsys.readouterr().err
    assert ponogan_main(["data", "glyphs", "--list-fonts"]) == 0
    assert "DejaVuSerif-Bold" in capsys.readouterr().out


def test_datasets_script_is_a_thin_wrapper(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("datasets_download", REPO / "datasets" / "download.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    monkeypatch.setattr("urllib.request.urlopen", lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))
    assert script.main(["horse2zebra", "--out", str(tmp_path)]) == 1
    solid(tmp_path / "A" / "p.png", (1, 2, 3))
    solid(tmp_path / "B" / "p.png", (4, 5, 6))
    assert script.main(["combine", "--fold-a", str(tmp_path / "A"), "--fold-b", str(tmp_path / "B"),
                        "--out", str(tmp_path / "AB")]) == 0  # fmt: skip
    assert (tmp_path / "AB" / "p.png").is_file()


def test_cli_preview_writes_grid(tmp_path):
    out = tmp_path / "grid.png"
    assert ponogan_main(["data", "preview", "--out", str(out), "--size", "16", "--count", "3"]) == 0
    grid = load_image(out)
    assert grid.size == (3 * 18 + 2, 6 * 18 + 2)
    assert np.asarray(grid)[2 + 5 * 18 : 18 + 5 * 18, 2:18].max() == 255  # the mask row has glyph pixels
