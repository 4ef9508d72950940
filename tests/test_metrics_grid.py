"""The eval grid (issue 14): `ponogan eval --checkpoint RUN --data glyphs` shows every held-out character
once (not the first eight placements of "a"), with column and row labels."""

import json

import numpy as np
import pytest
from PIL import Image
from test_metrics_cli import _eval, label_pixels
from torch.utils.data import Subset

from ponogan.data.glyphs import TEST_CHARS
from ponogan.metrics import EvalConfig, evaluate_folders
from ponogan.metrics.report import save_grid
from ponogan.metrics.run_eval import dataset_for_run, glyph_character, translate_split

CELL, PAD = 32, 2


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny pix2pix U-Net on 32 px glyphs with 2 placements per held-out character (22 test items)."""
    from ponogan.models import create_generator, save_pretrained

    net = create_generator("unet_128", ngf=4, num_downs=4, shortcut="ms", in_channels=1, out_channels=1)
    data = {"mode": "glyphs", "image_size": CELL, "input_nc": 1, "output_nc": 1, "test_jitters": 2}
    return save_pretrained(
        tmp_path_factory.mktemp("run") / "run", {"G": net}, {"family": "pix2pix", "data": data}
    )


def _row_bands(grid: Image.Image, rows: int) -> list[Image.Image]:
    """The label strip (left of the 3 image columns) of each row, bottom-aligned like save_grid."""
    columns_width = 3 * CELL + 4 * PAD  # at least: columns widen to fit their labels
    strip = grid.crop((0, 0, grid.width - columns_width, grid.height))
    tops = [grid.height - (rows - r) * (CELL + PAD) for r in range(rows)]
    return [strip.crop((0, top, strip.width, top + CELL)) for top in tops]


def test_glyph_character_from_item_paths():
    assert glyph_character("glyphs:test/00003/DejaVuSans/U+0061") == "a"
    assert glyph_character("glyphs:test/00087/DejaVuSerif/U+0026") == "&"
    assert glyph_character("datasets/facades/testA/1.jpg") is None


@pytest.mark.slow
def test_checkpoint_grid_shows_each_character_once_with_labels(run, tmp_path, capsys):
    out = tmp_path / "eval"
    assert (
        _eval("--checkpoint", run, "--data", "glyphs", "--out", out, "--metrics", "l1", "--device", "cpu")
        == 0
    )
    capsys.readouterr()
    assert len(list((out / "fake").glob("*.png"))) == 2 * len(TEST_CHARS)  # every placement is scored
    grid = Image.open(out / "grid.png").convert("RGB")
    rows = len(TEST_CHARS)  # one row per character, not per placement
    assert label_pixels(grid.crop((0, 0, grid.width, grid.height - rows * (CELL + PAD) - PAD))) > 20  # header
    for band in _row_bands(grid, rows):
        assert label_pixels(band) > 5  # each row's character is written
    assert json.loads((out / "metrics.json").read_text())["l1"] > 0

    # the grid grows with the number of distinct characters: 3 characters (x 2 placements) -> 3 rows
    config = json.loads((run / "config.json").read_text())
    dataset, _ = dataset_for_run(config, "glyphs", "test")
    from ponogan.inference.pipeline import TranslationPipeline

    pipe = TranslationPipeline.from_pretrained(run, device="cpu")
    split = translate_split(pipe, Subset(dataset, range(6)), tmp_path / "three", paired=True, progress=False)
    assert split.grid_labels == {"00000_U+0061": "a", "00002_U+0065": "e", "00004_U+006B": "k"}
    result = evaluate_folders(
        EvalConfig(real=split.real, fake=split.fake, out=tmp_path / "three", input=split.input,
                   metrics=("l1",), progress=False, grid_labels=split.grid_labels)
    )  # fmt: skip
    small = Image.open(result.files["grid"])
    assert grid.height - small.height == (rows - 3) * (CELL + PAD)
    assert small.width <= grid.width  # same columns; the label strip fits the widest character


def test_save_grid_geometry_and_labels(tmp_path):
    cells = [[Image.new("L", (CELL, CELL), 128)] * 3 for _ in range(4)]
    plain = Image.open(save_grid(tmp_path / "plain.png", cells))
    assert plain.size == (3 * CELL + 4 * PAD, 4 * CELL + 5 * PAD)  # no labels: cells and padding only
    assert label_pixels(plain) == 0
    heights = []
    for n in (2, 4):
        path = save_grid(tmp_path / f"l{n}.png", cells[:n], column_labels=["input", "output", "target"],
                         row_labels=list("ab")[:n] + ["c", "d"][: n - 2])  # fmt: skip
        labelled = Image.open(path).convert("RGB")
        heights.append(labelled.height)
        assert labelled.width > plain.width
        assert label_pixels(labelled) > 20
    assert heights[1] - heights[0] == 2 * (CELL + PAD)
    # a missing cell (an unreadable input) stays white and keeps the columns aligned
    holes = Image.open(save_grid(tmp_path / "holes.png", [[None, cells[0][1], cells[0][2]]])).convert("L")
    assert np.asarray(holes)[PAD + CELL // 2, PAD + CELL // 2] == 255
    assert np.asarray(holes)[PAD + CELL // 2, 2 * PAD + CELL + CELL // 2] == 128
