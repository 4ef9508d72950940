"""The built-in glyph data: determinism, held-out split, pairing, jitter math, the hard variant."""

import numpy as np
import pytest
import torch

from ponogan.data import TEST_CHARS, TRAIN_CHARS, DataOptions, GlyphDataset, create_dataset, glyph_mask
from ponogan.data.fonts import font_dir, render_glyph, resolve_font
from ponogan.data.glyphs import Jitter

SIZE = 32


def glyphs(phase="train", **kw):
    kw.setdefault("image_size", SIZE)
    kw.setdefault("length", 64)
    return create_dataset("glyphs", None, phase, **kw)


def char_of(path: str) -> str:
    return chr(int(path.rsplit("U+", 1)[1], 16))


def centroid(mask: torch.Tensor) -> torch.Tensor:
    """(1, H, W) weights -> (y, x) centre of mass."""
    h, w = mask.shape[-2:]
    ys, xs = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    total = mask.sum()
    return torch.stack([(mask[0] * ys).sum() / total, (mask[0] * xs).sum() / total])


def iou(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a * b).sum() / ((a + b) > 0).sum())


def test_items_are_deterministic_given_seed_and_index():
    first, again, other = glyphs(seed=3), glyphs(seed=3), glyphs(seed=4)
    for index in (0, 17, 63):
        a, b = first[index], again[index]
        assert torch.equal(a["A"], b["A"]) and torch.equal(a["B"], b["B"]) and a["A_path"] == b["A_path"]
    assert any(not torch.equal(first[i]["A"], other[i]["A"]) for i in range(8))
    assert first[5]["A"].dtype == torch.float32 and first[5]["A"].shape == (3, SIZE, SIZE)
    assert first[5]["A"].min() >= -1 and first[5]["A"].max() <= 1


def test_held_out_characters_never_in_train():
    assert not set(TRAIN_CHARS) & set(TEST_CHARS)
    train = glyphs(length=300, paired=False)
    seen = {char_of(train[i][key]) for i in range(len(train)) for key in ("A_path", "B_path")}
    assert seen <= set(TRAIN_CHARS) and len(seen) > 40
    test = glyphs("test", test_jitters=2, seed=99)
    assert len(test) == 2 * len(TEST_CHARS)
    assert {char_of(test[i]["A_path"]) for i in range(len(test))} == set(TEST_CHARS)


def test_test_split_is_paired_and_independent_of_seed():
    one, two = glyphs("test", seed=1, paired=False), glyphs("test", seed=2, paired=False)
    for index in (0, 9, 40):
        assert torch.equal(one[index]["B"], two[index]["B"])
        assert char_of(one[index]["A_path"]) == char_of(one[index]["B_path"])


def test_paired_items_share_glyph_and_jitter():
    same_font = glyphs(font_b="DejaVuSans")
    for index in range(10):
        assert torch.equal(same_font[index]["A"], same_font[index]["B"])
    two_fonts = glyphs()
    for index in range(10):
        item = two_fonts[index]
        assert char_of(item["A_path"]) == char_of(item["B_path"])
        offset = centroid(glyph_mask(item["A"])) - centroid(glyph_mask(item["B"]))
        assert offset.abs().max() < 0.15 * SIZE


def test_unpaired_items_are_drawn_independently():
    ds = glyphs(paired=False, font_b="DejaVuSans")
    differ = sum(not torch.equal(ds[i]["A"], ds[i]["B"]) for i in range(20))
    chars = sum(char_of(ds[i]["A_path"]) != char_of(ds[i]["B_path"]) for i in range(20))
    assert differ == 20 and chars >= 15


def test_jitter_is_the_documented_affine():
    mask = np.zeros((SIZE, SIZE), np.float32)
    mask[14:18, 14:18] = 1.0
    identity = Jitter(1.0, (0.0, 0.0), 0.0).apply(mask)
    assert np.allclose(identity, mask, atol=1e-5)
    moved = torch.from_numpy(Jitter(1.0, (0.25, -0.125), 0.0).apply(mask))[None]
    assert torch.allclose(centroid(moved) - centroid(torch.from_numpy(mask)[None]), torch.tensor([-4.0, 8.0]))
    scaled = Jitter(2.0, (0.0, 0.0), 0.0).apply(mask)
    assert scaled.sum() == pytest.approx(4 * mask.sum(), rel=0.1)
    bar = np.zeros((SIZE, SIZE), np.float32)
    bar[15:17, 4:28] = 1.0
    turned = Jitter(1.0, (0.0, 0.0), 90.0).apply(bar)
    assert np.allclose(turned, bar.T, atol=1e-4)


def test_hard_variant_restyles_b_only_and_exposes_masks():
    ds = glyphs("test", variant="hard", test_jitters=2)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=8)))
    a, b, mask = batch["A"], batch["B"], batch["B_mask"]
    assert mask.shape == (8, 1, SIZE, SIZE) and set(mask.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(a[:, 0], a[:, 1]) and torch.equal(a[:, 1], a[:, 2])
    assert (b[:, 0] - b[:, 1]).abs().mean() > 0.05
    assert (b * (1 - mask)).std() > 0.05
    scores = [iou(glyph_mask(b[i]), mask[i]) for i in range(8)]
    assert min(scores) > 0.7 and sum(scores) / 8 > 0.85
    same_font = glyphs("test", variant="hard", font_b="DejaVuSans", test_jitters=2)
    for i in range(0, 22, 5):
        item = same_font[i]
        assert iou(glyph_mask(item["A"]), item["B_mask"]) > 0.99


def test_hard_train_variant_is_unpaired_and_swappable():
    ds = glyphs(variant="hard", direction="BtoA", output_nc=1)
    item = ds[3]
    assert item["B"].shape == (1, SIZE, SIZE) and "B_mask" not in item
    assert (item["A"][0] - item["A"][1]).abs().mean() > 0.05
    assert "DejaVuSerif-Bold" in item["A_path"]


def test_glyph_mask_of_plain_render_matches_coverage():
    coverage = torch.from_numpy(render_glyph(resolve_font("DejaVuSans"), "H", SIZE).copy())
    image = (1 - coverage) * 2 - 1
    assert torch.equal(glyph_mask(image[None]), (1 - coverage < 0.5)[None])


def test_glyph_mask_thresholds_rec601_luminance():
    """Pixels of known luminance either side of 0.5: pure green (0.587) is page, pure red (0.299) and
    blue (0.114) are ink; one channel is its own luminance; ``dark_on_light=False`` flips the side."""
    rgb = torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 0.0, 1.0], [0.0, 0.0, 1.0, 1.0]]) * 2 - 1
    image = rgb.view(3, 1, 4)  # (C, H, W), pixels: red, green, blue, white
    assert glyph_mask(image).tolist() == [[[True, False, True, False]]]
    assert glyph_mask(image[None], dark_on_light=False).tolist() == [[[[False, True, False, True]]]]
    assert glyph_mask(image, threshold=0.1).tolist() == [[[False, False, False, False]]]
    gray = torch.tensor([[[-0.1, 0.1]]])  # luminance 0.45, 0.55
    assert glyph_mask(gray).tolist() == [[[True, False]]] and glyph_mask(gray).dtype == torch.bool
    for bad in (torch.zeros(2, SIZE, SIZE), torch.zeros(1, 2, 4, 4), torch.zeros(SIZE, SIZE)):
        with pytest.raises(ValueError, match="1- or 3-channel images"):
            glyph_mask(bad)


def test_font_errors_are_clear():
    with pytest.raises(ValueError, match="unknown or unusable font 'Comic'.*DejaVuSans"):
        glyphs(font_a="Comic")
    with pytest.raises(ValueError, match="unknown or unusable font"):
        glyphs(font_b="DejaVuSansDisplay")
    with pytest.raises(ValueError, match="does not render"):
        GlyphDataset(None, "train", DataOptions(font_a=str(font_dir() / "DejaVuSansDisplay.ttf")))
    with pytest.raises(ValueError, match="phase must be one of"):
        glyphs("val")
    with pytest.raises(IndexError):
        glyphs()[64]
    assert glyphs(font_a="pil-default")[0]["A"].shape == (3, SIZE, SIZE)


def _glyphs_cli(out, *extra: str) -> int:
    from ponogan.cli import main

    return main(["data", "glyphs", "--out", str(out), "--size", "16", "--test-jitters", "1", *extra])


def _files(root) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_glyphs_out_a_file_or_non_empty_is_one_usage_line(tmp_path, capsys):
    a_file = tmp_path / "data.png"
    a_file.write_bytes(b"user's")
    assert _glyphs_cli(a_file, "--length", "2") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a file" in err[0] and a_file.read_bytes() == b"user's"
    out = tmp_path / "mine"
    (out / "trainA").mkdir(parents=True)
    (out / "notes.txt").write_text("keep me")
    before = _files(out)
    assert _glyphs_cli(out, "--length", "2") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not empty" in err[0] and "--overwrite" in err[0]
    assert _files(out) == before and sorted(p.name for p in out.iterdir()) == ["notes.txt", "trainA"]


def test_glyphs_overwrite_replaces_only_its_own_files(tmp_path, capsys):
    out = tmp_path / "glyphs"
    assert _glyphs_cli(out, "--length", "4") == 0
    first = _files(out)
    assert len([name for name in first if name.startswith("trainA/")]) == 4
    (out / "notes.txt").write_text("the user's notes")
    assert _glyphs_cli(out, "--length", "4") == 2  # non-empty without --overwrite
    assert "not empty" in capsys.readouterr().err
    # a smaller dataset over the first: the extra train items of the first run go, the user's file stays
    assert _glyphs_cli(out, "--length", "2", "--overwrite") == 0
    second = _files(out)
    assert len([name for name in second if name.startswith("trainA/")]) == 2
    assert second["notes.txt"] == b"the user's notes"
    assert {name for name in second if name.startswith("testB/")} == {
        name for name in first if name.startswith("testB/")
    }
    # the user's file where the dataset goes is never replaced, even with --overwrite
    own = next(name for name in second if name.startswith("trainA/"))
    user = out / "trainA" / "00099_mine.png"
    user.write_bytes(b"user's image")
    capsys.readouterr()
    assert _glyphs_cli(out, "--length", "2", "--overwrite") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "did not write" in err[0] and "00099_mine.png" in err[0]
    assert user.read_bytes() == b"user's image" and (out / own).read_bytes() == second[own]


def test_glyphs_switching_layout_with_overwrite_leaves_one_dataset(tmp_path):
    out = tmp_path / "glyphs"
    assert _glyphs_cli(out, "--length", "2") == 0
    assert _glyphs_cli(out, "--length", "2", "--paired", "--overwrite") == 0
    assert sorted(p.name for p in out.iterdir()) == [
        ".ponogan-data-manifest.jsonl",
        "test",
        "test_mask",
        "train",
    ]
