"""Robust image loading, mode conversion, transforms and the folder dataset modes."""

import io
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ponogan.data import (
    BadImageWarning,
    DataOptions,
    ImageLoadError,
    create_dataset,
    find_images,
    load_image,
    pil_to_tensor,
    tensor_to_pil,
)
from ponogan.data.transforms import apply_transform, get_params

SMALL = {"load_size": 20, "crop_size": 16}


def noise_image(size=(24, 24), seed=0, mode="RGB"):
    rng = np.random.default_rng(seed)
    channels = 3 if mode == "RGB" else 1
    data = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    return Image.fromarray(data if channels == 3 else data[..., 0], mode)


def write_bad_files(folder: Path) -> list[Path]:
    """A truncated JPEG, a zero-byte file, text named .png, and a 'bomb' (over max_pixels=10_000)."""
    folder.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    noise_image((64, 64), seed=5).save(buffer, "JPEG", quality=95)
    truncated = folder / "truncated.jpg"
    truncated.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    empty = folder / "empty.png"
    empty.write_bytes(b"")
    text = folder / "notes.png"
    text.write_text("this is not an image\n")
    bomb = folder / "bomb.png"
    Image.new("L", (200, 100), 0).save(bomb)
    return [truncated, empty, text, bomb]


# ---------------------------------------------------------------- load_image


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("truncated.jpg", "truncated"),
        ("empty.png", "empty"),
        ("notes.png", "not an image"),
        ("bomb.png", "max_pixels"),
    ],
)
def test_load_image_bad_files_raise_clear_error(tmp_path, name, reason):
    write_bad_files(tmp_path)
    with pytest.raises(ImageLoadError) as info:
        load_image(tmp_path / name, max_pixels=10_000)
    assert name in str(info.value) and reason in str(info.value)
    assert isinstance(info.value, ValueError) and info.value.path.endswith(name)


def test_load_image_missing_file_and_bad_mode(tmp_path):
    with pytest.raises(ImageLoadError, match="no such file"):
        load_image(tmp_path / "nope.png")
    noise_image().save(tmp_path / "ok.png")
    with pytest.raises(ValueError, match="mode must be one of"):
        load_image(tmp_path / "ok.png", mode="CMYK")


def test_bomb_limit_is_an_option(tmp_path):
    write_bad_files(tmp_path)
    assert load_image(tmp_path / "bomb.png", max_pixels=None).size == (200, 100)


def test_sixteen_bit_scaled_to_eight_bit(tmp_path):
    values = np.array([[0, 257 * 128, 65535, 257 * 10]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    img = load_image(tmp_path / "deep.png", mode="L")
    assert np.asarray(img).tolist() == [[0, 128, 255, 10]]


def test_rgba_composited_on_white(tmp_path):
    data = np.array([[[255, 0, 0, 0], [0, 0, 255, 255], [0, 0, 0, 128]]], dtype=np.uint8)
    Image.fromarray(data, "RGBA").save(tmp_path / "alpha.png")
    pixels = np.asarray(load_image(tmp_path / "alpha.png")).astype(int)
    assert pixels[0, 0].tolist() == [255, 255, 255]
    assert pixels[0, 1].tolist() == [0, 0, 255]
    assert np.all(np.abs(pixels[0, 2] - 127) <= 1)


def test_palette_with_transparency_and_grayscale(tmp_path):
    pal = Image.new("P", (2, 1))
    pal.putpalette([0, 255, 0, 10, 20, 30] + [0] * 762)
    pal.putpixel((0, 0), 0)
    pal.putpixel((1, 0), 1)
    pal.save(tmp_path / "pal.png", transparency=0)
    assert np.asarray(load_image(tmp_path / "pal.png")).tolist() == [[[255, 255, 255], [10, 20, 30]]]
    noise_image(mode="L").save(tmp_path / "gray.png")
    rgb = np.asarray(load_image(tmp_path / "gray.png"))
    assert rgb.shape == (24, 24, 3) and np.array_equal(rgb[..., 0], rgb[..., 2])


def test_cmyk_converted(tmp_path):
    Image.new("CMYK", (3, 2), (0, 0, 0, 0)).save(tmp_path / "cmyk.tif")
    Image.new("CMYK", (3, 2), (0, 0, 0, 255)).save(tmp_path / "black.jpg")
    assert np.asarray(load_image(tmp_path / "cmyk.tif")).min() == 255
    assert np.asarray(load_image(tmp_path / "black.jpg")).max() < 10


def test_exif_orientation_applied(tmp_path):
    img = Image.new("L", (4, 2), 255)
    img.paste(0, (0, 0, 2, 2))  # left half black
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    img.save(tmp_path / "rot.png", exif=exif)
    out = np.asarray(load_image(tmp_path / "rot.png", mode="L"))
    assert out.shape == (4, 2)
    assert out[:2].max() == 0 and out[2:].min() == 255


def test_tensor_pil_round_trip_and_range():
    img = noise_image((5, 7))
    tensor = pil_to_tensor(img)
    assert tensor.shape == (3, 7, 5) and tensor.dtype == torch.float32
    assert tensor.min() >= -1 and tensor.max() <= 1
    assert float(pil_to_tensor(Image.new("L", (1, 1), 255))) == 1.0
    assert float(pil_to_tensor(Image.new("L", (1, 1), 0))) == -1.0
    assert np.array_equal(np.asarray(tensor_to_pil(tensor)), np.asarray(img))
    assert tensor_to_pil(tensor[None, :1]).mode == "L"
    with pytest.raises(ValueError, match="one image"):
        tensor_to_pil(torch.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError, match="C = 1 or 3"):
        tensor_to_pil(torch.zeros(4, 4, 4))


def test_find_images_nested_and_uppercase(tmp_path):
    (tmp_path / "deep" / "er").mkdir(parents=True)
    noise_image().save(tmp_path / "deep" / "er" / "X.PNG")
    noise_image().save(tmp_path / "a.JPEG", "JPEG")
    (tmp_path / "readme.txt").write_text("no")
    assert [Path(p).name for p in find_images(tmp_path)] == ["a.JPEG", "X.PNG"]


# ---------------------------------------------------------------- transforms


def test_test_phase_crop_is_centred_and_unflipped():
    opts = DataOptions(load_size=286, crop_size=256)
    params = get_params(opts, (500, 300), train=False)
    assert params.crop_pos == (15, 15) and not params.flip


def test_scale_width_keeps_aspect():
    opts = DataOptions(preprocess="scale_width", load_size=32)
    out = apply_transform(noise_image((64, 48)), opts, get_params(opts, (64, 48), True), 3)
    assert out.shape == (3, 24, 32)
    opts = DataOptions(preprocess="none")
    assert apply_transform(noise_image((13, 9)), opts, get_params(opts, (13, 9), True), 1).shape == (1, 9, 13)


def test_flip_mirrors_image():
    opts = DataOptions(preprocess="none")
    img = noise_image((6, 4))
    params = get_params(opts, img.size, train=False)
    flipped = apply_transform(img, opts, type(params)(params.crop_pos, True), 3)
    assert torch.equal(flipped, pil_to_tensor(img).flip(-1))


# ---------------------------------------------------------------- folder datasets


def make_unaligned(root: Path, n_a=3, n_b=2, phase="train", bad=True):
    (root / f"{phase}A").mkdir(parents=True, exist_ok=True)
    for i in range(n_a):
        noise_image(seed=i).save(root / f"{phase}A" / f"a{i}.png")
    nested = root / f"{phase}A" / "nested"
    nested.mkdir(parents=True, exist_ok=True)
    noise_image(seed=9).save(nested / "UPPER.PNG")
    (root / f"{phase}B").mkdir(parents=True, exist_ok=True)
    for i in range(n_b):
        noise_image(seed=10 + i).save(root / f"{phase}B" / f"b{i}.jpg", "JPEG")
    if bad:
        write_bad_files(root / f"{phase}A")


def test_unaligned_skips_bad_files_with_one_warning_each(tmp_path):
    make_unaligned(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = create_dataset("unaligned", tmp_path, "train", max_pixels=10_000, **SMALL)
        assert len(ds) == 8  # 4 good + 4 bad files in A, 2 in B
        for _ in range(2):
            items = [ds[i] for i in range(len(ds))]
    skipped = [str(w.message) for w in caught if issubclass(w.category, BadImageWarning)]
    assert len(skipped) == 4 and len(set(skipped)) == 4
    for name in ("truncated.jpg", "empty.png", "notes.png", "bomb.png"):
        assert any(name in message for message in skipped)
    assert all(Path(item["A_path"]).name not in {"empty.png", "notes.png"} for item in items)
    assert any(item["A_path"].endswith("UPPER.PNG") for item in items)
    assert items[0]["A"].shape == (3, 16, 16) and items[0]["B"].shape == (3, 16, 16)
    assert all(item["A"].min() >= -1 and item["A"].max() <= 1 for item in items)


def test_unaligned_serial_pairing_and_batches(tmp_path):
    make_unaligned(tmp_path, bad=False)
    ds = create_dataset("unaligned", tmp_path, serial=True, output_nc=1, **SMALL)
    assert [Path(ds[i]["B_path"]).name for i in range(4)] == ["b0.jpg", "b1.jpg", "b0.jpg", "b1.jpg"]
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=2)))
    assert batch["A"].shape == (2, 3, 16, 16) and batch["B"].shape == (2, 1, 16, 16)
    swapped = create_dataset("unaligned", tmp_path, direction="BtoA", serial=True, **SMALL)
    assert Path(swapped[0]["A_path"]).parent.name == "trainB"


def test_folder_without_readable_image_fails_at_construction(tmp_path):
    make_unaligned(tmp_path, bad=False)
    for f in (tmp_path / "trainB").iterdir():
        f.unlink()
    with pytest.raises(ValueError, match="no image files"):
        create_dataset("unaligned", tmp_path)
    write_bad_files(tmp_path / "trainB")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="none of the 4 image files is usable"):
            create_dataset("unaligned", tmp_path, max_pixels=10_000)
    with pytest.raises(ValueError, match="does not exist"):
        create_dataset("aligned", tmp_path / "missing")


def test_aligned_pairs_stay_aligned_under_random_crop_and_flip(tmp_path):
    (tmp_path / "train").mkdir()
    for i in range(3):
        half = np.asarray(noise_image((20, 16), seed=i))
        Image.fromarray(np.concatenate([half, half], axis=1)).save(tmp_path / "train" / f"{i}.png")
    for preprocess in ("resize_and_crop", "crop", "scale_width_and_crop"):
        ds = create_dataset("aligned", tmp_path, preprocess=preprocess, load_size=24, crop_size=12)
        seen = set()
        for _ in range(10):
            item = ds[1]
            assert item["A"].shape == (3, 12, 12)
            assert torch.equal(item["A"], item["B"])
            seen.add(item["A"].numpy().tobytes())
        assert len(seen) > 1, f"{preprocess}: crop/flip never varied"


def test_aligned_direction_and_channels(tmp_path):
    (tmp_path / "test").mkdir()
    pair = Image.new("RGB", (8, 4), (255, 0, 0))
    pair.paste((0, 0, 255), (4, 0, 8, 4))
    pair.save(tmp_path / "test" / "p.png")
    item = create_dataset("aligned", tmp_path, "test", preprocess="none")[0]
    assert item["A"][0].min() == 1 and item["B"][2].min() == 1 and item["A"].shape == (3, 4, 4)
    item = create_dataset("aligned", tmp_path, "test", preprocess="none", direction="BtoA", output_nc=1)[0]
    assert item["A"][2].min() == 1 and item["A"][0].max() == -1 and item["B"].shape == (1, 4, 4)


def test_single_mode(tmp_path):
    noise_image((64, 64)).save(tmp_path / "x.png")  # the size of the truncated JPEG's header
    write_bad_files(tmp_path / "sub")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = create_dataset("single", tmp_path, "test", preprocess="none", input_nc=1, max_pixels=10_000)
        items = [ds[i] for i in range(len(ds))]
    assert set(items[0]) == {"A", "A_path"} and items[0]["A"].shape == (1, 64, 64)
    assert all(item["A_path"].endswith("x.png") for item in items)


def test_list_mode_reads_relative_paths_and_skips_missing(tmp_path):
    make_unaligned(tmp_path, bad=False)
    lines = ["# domain A", "trainA/a0.png", "", "trainA/gone.png", "trainA/nested/UPPER.PNG"]
    (tmp_path / "trainA.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "b.txt").write_text("trainB/b1.jpg\n")
    ds = create_dataset("list", tmp_path, list_b="lists/b.txt", **SMALL)
    assert len(ds) == 3
    with pytest.warns(BadImageWarning, match="gone.png"):
        names = [Path(ds[i]["A_path"]).name for i in range(3)]
    assert names == ["a0.png", "UPPER.PNG", "UPPER.PNG"]
    assert Path(ds[0]["B_path"]).name == "b1.jpg"
    with pytest.raises(ValueError, match="cannot read the list file"):
        create_dataset("list", tmp_path, "test")


def test_unknown_mode_and_option_errors(tmp_path):
    with pytest.raises(ValueError, match="valid modes: unaligned, aligned, single, list, glyphs"):
        create_dataset("paired", tmp_path)
    with pytest.raises(ValueError, match="unknown data option.*crop"):
        create_dataset("single", tmp_path, crop=3)
    with pytest.raises(ValueError, match="preprocess must be one of"):
        DataOptions(preprocess="zoom")
    with pytest.raises(ValueError, match="input_nc"):
        DataOptions(input_nc=4)
    with pytest.raises(ValueError, match="needs a root"):
        create_dataset("aligned", None)
    opts = DataOptions(crop_size=8, preprocess="none")
    noise_image().save(tmp_path / "x.png")
    assert create_dataset("single", tmp_path, options=opts, input_nc=1)[0]["A"].shape == (1, 24, 24)
