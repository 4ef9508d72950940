"""Issue 12: never lose a user's files; memory bounded by what the model sees.

`ponogan translate` never writes over its inputs nor re-reads its own outputs, walks link loops once,
refuses images too large for the network from their header (before decoding), reports each failing
image and goes on, and leaves no temporary files behind. Folder datasets without a crop step refuse
mixed sizes and skip tiny images with one clear message.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_pipeline import make_run  # tests/ is on sys.path (pytest rootdir-less test modules)

import ponogan.data.image_io as image_io
from ponogan.cli import main
from ponogan.data import BadImageWarning, ImageLoadError, create_dataset, find_images, load_image
from ponogan.data.download import combine_ab
from ponogan.inference.images import ImageTooLargeError, check_processed_size, processed_size
from ponogan.inference.pipeline import TranslationPipeline
from ponogan.metrics.images import list_images

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return str(make_run(tmp_path_factory.mktemp("runs") / "cyclegan", "cyclegan"))


def noise(path: Path, size=(24, 20), seed=0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB").save(path)
    return path


def photos(root: Path, n: int = 4) -> list[Path]:
    """`n` small images, half of them in a sub-folder."""
    return [noise(root / ("sub" if i % 2 else "") / f"img{i}.png", seed=i) for i in range(n)]


def digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def translate(*args: str) -> int:
    return main(["translate", *args, "--device", "cpu"])


def written(out: Path) -> list[str]:
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())


# ---------------------------------------------------------------- never touch the user's files


@pytest.mark.parametrize("extra", [[], ["--overwrite"], ["--format", "jpg"]])
def test_output_equal_to_input_is_refused(ckpt, tmp_path, capsys, extra):
    root = tmp_path / "photos"
    photos(root)
    before = digests(root)
    assert translate("--checkpoint", ckpt, "--input", str(root), "--output", str(root), *extra) == 2
    err = capsys.readouterr().err
    assert "is the input folder" in err and len(err.strip().splitlines()) == 1
    assert digests(root) == before
    link = tmp_path / "alias"
    link.symlink_to(root)  # the same folder under another name
    assert translate("--checkpoint", ckpt, "--input", str(root), "--output", str(link), *extra) == 2
    assert digests(root) == before


def test_an_input_is_never_written_over(ckpt, tmp_path, capsys):
    root = tmp_path / "photos"
    images = photos(root)
    before = digests(root)
    # a single file whose output path is the file itself
    assert (
        translate("--checkpoint", ckpt, "--input", str(images[0]), "--output", str(root), "--overwrite") == 2
    )
    assert "would replace the input image" in capsys.readouterr().err
    # a glob whose folder is the output folder
    assert (
        translate(
            "--checkpoint", ckpt, "--input", str(root / "**" / "*.png"), "--output", str(root), "--overwrite"
        )
        == 2
    )
    # the input folder inside the output folder, holding a folder named like itself
    nested = root / "photos"
    noise(nested / "img0.png", seed=9)
    before = digests(root)
    assert (
        translate("--checkpoint", ckpt, "--input", str(root), "--output", str(tmp_path), "--overwrite") == 2
    )
    assert "would replace the input image" in capsys.readouterr().err
    # --output naming an existing file
    assert translate("--checkpoint", ckpt, "--input", str(root), "--output", str(images[1])) == 2
    assert "is a file" in capsys.readouterr().err
    assert digests(root) == before


@pytest.mark.parametrize("as_glob", [False, True])
def test_output_inside_input_is_left_out_of_the_inputs(ckpt, tmp_path, capsys, as_glob):
    root = tmp_path / "photos"
    photos(root)
    before = digests(root)
    out = root / "out"
    spec = str(root / "**" / "*.png") if as_glob else str(root)
    for run in range(3):
        assert (
            translate(
                "--checkpoint", ckpt, "--input", spec, "--output", str(out), *(["--overwrite"] if run else [])
            )
            == 0
        )
        err = capsys.readouterr().err
        assert "translated 4 image(s)" in err and "not taken as inputs" in err
    assert written(out) == ["img0.png", "img2.png", "sub/img1.png", "sub/img3.png"]
    assert {k: v for k, v in digests(root).items() if not k.startswith("out/")} == before


# ---------------------------------------------------------------- one walker, each file once


def looped_tree(root: Path) -> None:
    """3 images, a link back up the tree (a link loop) and a second link to one image."""
    for seed, rel in enumerate(("a.png", "sub/b.png", "sub/deep/c.png")):
        noise(root / rel, seed=seed)
    (root / "sub" / "deep" / "up").symlink_to(root)  # one loop: without the fix, a copy per level
    (root / "sub" / "b_link.png").symlink_to(root / "sub" / "b.png")


def test_symlink_loop_each_image_once(ckpt, tmp_path, capsys):
    root = tmp_path / "tree"
    looped_tree(root)
    found = find_images(root)
    assert [Path(p).relative_to(root).as_posix() for p in found] == ["a.png", "sub/b.png", "sub/deep/c.png"]
    assert find_images(root, exclude=[root / "sub" / "deep"]) == found[:2]
    assert [p.name for p in list_images(root)] == ["a.png", "b.png", "c.png"]
    assert len(create_dataset("single", root, "test", load_size=16, crop_size=16)) == 3
    for spec in (str(root), str(root / "**" / "*.png")):  # glob's own ** recursion would not end here
        out = tmp_path / f"out{len(spec)}"
        assert translate("--checkpoint", ckpt, "--input", spec, "--output", str(out)) == 0
        assert written(out) == ["a.png", "sub/b.png", "sub/deep/c.png"]
    capsys.readouterr()


def test_one_extension_list(tmp_path):
    for name in ("a.gif", "b.PBM", "c.webp", "d.TIFF", "e.txt"):
        Image.new("L", (4, 4)).save(tmp_path / name, format={"e.txt": "PNG"}.get(name))
    names = ["a.gif", "b.PBM", "c.webp", "d.TIFF"]
    assert [Path(p).name for p in find_images(tmp_path)] == names
    assert [p.name for p in list_images(tmp_path)] == names


def test_combine_never_writes_over_its_inputs(tmp_path):
    fold_a, fold_b = tmp_path / "A", tmp_path / "B"
    for name in ("x.png", "y.png"):
        noise(fold_a / name)
        noise(fold_b / name, seed=1)
    before = digests(tmp_path)
    with pytest.raises(ValueError, match="is an input folder"):
        combine_ab(fold_a, fold_b, fold_a)
    assert digests(tmp_path) == before
    for _ in range(2):  # the output folder inside A is not read back as more A images
        assert combine_ab(fold_a, fold_b, fold_a / "AB") == 2
    assert sorted(p.name for p in (fold_a / "AB").iterdir()) == ["x.png", "y.png"]
    noise(fold_a / "A" / "x.png", seed=2)  # a shared sub-folder A/: its output would be A/x.png, an input
    noise(fold_b / "A" / "x.png", seed=3)
    before = digests(tmp_path)
    with (
        pytest.warns(UserWarning, match="its output .*x.png is an input file"),
        pytest.raises(ValueError, match="no image"),
    ):
        combine_ab(fold_a, fold_b, tmp_path)
    assert digests(tmp_path) == before


# ---------------------------------------------------------------- limits on what the network processes


def test_processed_size_counts_resizing_and_padding():
    assert processed_size((30, 30), None, 4) == (32, 32)
    assert processed_size((3, 300), 256, 4) == (256, 25600)
    assert check_processed_size((30, 30), None, 4, max_pixels=1024) == (32, 32)
    with pytest.raises(ImageTooLargeError, match="32x32 = 1,024 pixels.*max_pixels=1,000") as info:
        check_processed_size((30, 30), None, 4, max_pixels=1000)  # 900 pixels before padding
    assert info.value.option == "max_pixels"
    with pytest.raises(ImageTooLargeError, match="max_pixels") as info:
        check_processed_size((100, 100), 2000, 4)  # small file, but resized to 2000x2000
    with pytest.raises(ImageTooLargeError, match="aspect ratio of 262144:1") as info:
        check_processed_size((262144, 1), None, 4)
    assert info.value.option == "max_aspect"
    with pytest.raises(ImageTooLargeError, match="max_aspect"):
        check_processed_size((3, 300), 256, 4)


def test_pipeline_stride_is_the_largest_padding(tmp_path):
    pipe = TranslationPipeline.from_pretrained(make_run(tmp_path / "munit", "munit"), device="cpu")
    assert pipe.stride() == 16  # MUNIT's style encoder pads to 2**4
    pipe = TranslationPipeline.from_pretrained(make_run(tmp_path / "p2p", "pix2pix"), device="cpu")
    assert pipe.stride() == 16  # the tiny U-Net has 4 downsamplings


def test_limits_after_padding_name_the_flag(ckpt, tmp_path, capsys):
    root = tmp_path / "photos"
    noise(root / "fits.png", (32, 32))
    noise(root / "padded.png", (30, 30))  # 900 px, but 32x32 once padded to the ResNet's stride 4
    noise(root / "strip.png", (3, 300))
    out = tmp_path / "out"
    assert (
        translate(
            "--checkpoint",
            ckpt,
            "--input",
            str(root),
            "--output",
            str(out),
            "--max-pixels",
            "1024",
            "--max-aspect",
            "50",
        )
        == 1
    )
    err = capsys.readouterr().err
    assert written(out) == ["fits.png", "padded.png"]
    assert (
        translate(
            "--checkpoint",
            ckpt,
            "--input",
            str(root),
            "--output",
            str(out),
            "--max-pixels",
            "1000",
            "--overwrite",
        )
        == 1
    )
    err = capsys.readouterr().err
    assert "padded.png: the network would process 32x32 = 1,024 pixels" in err and "--max-pixels" in err
    assert "strip.png: 3x300 has an aspect ratio of 100:1, over max_aspect=32" in err
    assert "--max-aspect" in err
    assert (
        translate(
            "--checkpoint",
            ckpt,
            "--input",
            str(root / "strip.png"),
            "--output",
            str(out),
            "--size",
            "256",
            "--max-aspect",
            "1000",
        )
        == 1
    )  # 256x25600 after resizing
    assert "256x25600 = 6,553,600 pixels" in capsys.readouterr().err


@pytest.mark.skipif(not Path("/proc/self/clear_refs").is_file(), reason="measures peak RSS with Linux /proc")
def test_huge_images_rejected_from_the_header_with_bounded_memory(ckpt, tmp_path):
    root = tmp_path / "photos"
    noise(root / "good.png")
    Image.new("L", (262144, 1)).save(root / "strip.png")  # a few hundred bytes
    Image.new("1", (9000, 9000)).save(root / "square.png")  # 81 MP in ~10 KB: 243 MB once decoded as RGB
    assert (root / "strip.png").stat().st_size < 2000
    script = textwrap.dedent(f"""
        import json, time
        import torch
        from ponogan.cli import main
        torch.set_num_threads(1)

        def status(key):
            with open("/proc/self/status") as lines:
                return next(int(line.split()[1]) for line in lines if line.startswith(key))

        # a first run on the small image alone loads everything a translation needs (torch's meta-device
        # machinery of the size check included); the second run's growth is then what the inputs cost
        main(["translate", "--checkpoint", {ckpt!r}, "--input", {str(root / "good.png")!r},
              "--output", {str(tmp_path / "warm")!r}, "--device", "cpu"])
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")  # reset the peak-RSS mark (VmHWM) to the current RSS
        before, start = status("VmRSS"), time.time()
        code = main(["translate", "--checkpoint", {ckpt!r}, "--input", {str(root)!r},
                     "--output", {str(tmp_path / "out")!r}, "--device", "cpu"])
        growth = status("VmHWM") - before
        print(json.dumps({{"code": code, "growth_kb": growth, "seconds": time.time() - start}}))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["growth_kb"] < 150_000, f"peak RSS grew by {result['growth_kb'] // 1024} MB"
    assert result["code"] == 1 and result["seconds"] < 30
    assert written(tmp_path / "out") == ["good.png"]
    assert "strip.png: 262144x1 has an aspect ratio" in done.stderr
    assert "square.png: the network would process 9000x9000 = 81,000,000 pixels" in done.stderr


# ---------------------------------------------------------------- one failure never stops the run


def test_bad_images_are_reported_and_the_others_written(ckpt, tmp_path, capsys, monkeypatch):
    root = tmp_path / "photos"
    good = [noise(root / f"good{i}.png", seed=i) for i in range(6)]
    noise(root / "oom_decode.png", seed=7)
    noise(root / "oom_forward.png", seed=8)  # same size as the good ones: shares their batch
    (root / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    real_load, real_call = image_io.load_image, TranslationPipeline.__call__
    marker = np.asarray(Image.open(root / "oom_forward.png")).tobytes()

    def load(path, *args, **kwargs):
        if Path(path).name == "oom_decode.png":
            raise MemoryError
        return real_load(path, *args, **kwargs)

    def call(self, images, *args, **kwargs):
        if any(np.asarray(img).tobytes() == marker for img in images):
            raise MemoryError
        return real_call(self, images, *args, **kwargs)

    monkeypatch.setattr("ponogan.inference.translate.load_image", load)
    monkeypatch.setattr(TranslationPipeline, "__call__", call)
    out = tmp_path / "out"
    assert (
        translate("--checkpoint", ckpt, "--input", str(root), "--output", str(out), "--batch-size", "4") == 1
    )
    err = capsys.readouterr().err
    assert written(out) == sorted(p.name for p in good)
    assert "3 input(s) could not be translated" in err
    assert "oom_decode.png: not enough memory" in err
    assert "oom_forward.png: translation failed: MemoryError" in err
    assert "corrupt.png: corrupt or truncated" in err


def test_permission_denied_is_reported_as_such(ckpt, tmp_path, capsys, monkeypatch):
    root = tmp_path / "photos"
    noise(root / "ok.png")
    locked = noise(root / "locked.png", seed=1)
    real_open = open

    def fake_open(path, *args, **kwargs):  # what a chmod-000 file does for a user other than root
        if Path(path) == locked:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(image_io, "open", fake_open, raising=False)
    with pytest.raises(ImageLoadError, match="permission denied"):
        load_image(locked)
    out = tmp_path / "out"
    assert translate("--checkpoint", ckpt, "--input", str(root), "--output", str(out)) == 1
    assert "locked.png: permission denied" in capsys.readouterr().err
    assert written(out) == ["ok.png"]


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads chmod-000 files")
def test_chmod_000_file_is_permission_denied(ckpt, tmp_path, capsys):
    root = tmp_path / "photos"
    noise(root / "ok.png")
    locked = noise(root / "locked.png", seed=1)
    locked.chmod(0)
    try:
        assert translate("--checkpoint", ckpt, "--input", str(root), "--output", str(tmp_path / "out")) == 1
        assert "locked.png: permission denied" in capsys.readouterr().err
    finally:
        locked.chmod(0o644)


# ---------------------------------------------------------------- temporary files


def test_failed_writes_leave_no_temp_files_and_stale_ones_are_swept(ckpt, tmp_path, capsys, monkeypatch):
    root = tmp_path / "photos"
    photos(root)
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    stale = [out / ".img0.png.partial", out / "sub" / ".img1.png.partial"]
    for path in stale:
        path.write_bytes(b"half an image from a killed run")
    mine = [out / "notes.partial", out / ".other.png.partial", out / "img0.png.partial"]
    for path in mine:  # not the temp name of one of this run's outputs: left alone
        path.write_text("user file")
    real_save = Image.Image.save

    def disk_full(self, fp, *args, **kwargs):
        Path(fp).write_bytes(b"\x89PNG partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", disk_full)
    assert translate("--checkpoint", ckpt, "--input", str(root), "--output", str(out)) == 1
    err = capsys.readouterr().err
    assert "removed 2 temporary file(s)" in err and "No space left on device" in err
    assert written(out) == sorted(p.relative_to(out).as_posix() for p in mine)
    monkeypatch.setattr(Image.Image, "save", real_save)
    assert translate("--checkpoint", ckpt, "--input", str(root), "--output", str(out)) == 0
    assert not list(out.rglob(".img*.partial")) and all(p.read_text() == "user file" for p in mine)


# ---------------------------------------------------------------- datasets that keep image sizes


def test_preprocess_none_refuses_mixed_sizes_and_skips_tiny_images(tmp_path):
    root = tmp_path / "data"
    noise(root / "a.png", (32, 24))
    noise(root / "b.png", (32, 24), seed=1)
    Image.new("RGB", (1, 1)).save(root / "tiny.png")
    with pytest.warns(BadImageWarning, match=r"tiny.png: too small: 1x1 px items"):
        ds = create_dataset("single", root, "test", preprocess="none")
    assert len(ds) == 2
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=2)))
    assert batch["A"].shape == (2, 3, 24, 32)

    noise(root / "c.png", (40, 24), seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BadImageWarning)
        with pytest.raises(ValueError, match=r"a.png gives 32x24 items and .*c.png 40x24 .*needs one size"):
            create_dataset("single", root, "test", preprocess="none")
        with pytest.raises(ValueError, match="32x24 items and .*c.png 32x19"):  # differing aspect ratios
            create_dataset("single", root, "test", preprocess="scale_width", load_size=32)
        assert (
            len(
                create_dataset(
                    "single", root, "test", preprocess="resize_and_crop", load_size=16, crop_size=16
                )
            )
            == 4
        )  # a crop fixes the size: the tiny image is upscaled

    only_tiny = tmp_path / "tiny"
    only_tiny.mkdir()
    Image.new("RGB", (1, 1)).save(only_tiny / "x.png")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BadImageWarning)
        with pytest.raises(ValueError, match="none of the 1 image files is usable: .*too small"):
            create_dataset("single", only_tiny, "test", preprocess="none")


def test_dataset_without_a_crop_skips_images_too_large_to_process(tmp_path):
    """preprocess=none trains on whole images: one the networks could not process in memory is skipped
    with a warning naming the limit (the same limit as `ponogan translate`), the others are kept."""
    import warnings

    from ponogan.data import create_dataset

    folder = tmp_path / "single"
    folder.mkdir()
    Image.new("RGB", (32, 32)).save(folder / "ok.png")
    Image.new("L", (4000, 4000)).save(folder / "big.png")  # 16 MP: over the 2 MP processing limit
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = create_dataset("single", str(folder), preprocess="none")
    assert len(ds) == 1 and any("too large to train on" in str(w.message) for w in caught)
