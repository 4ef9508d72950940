"""Write the built-in glyph data to disk in the standard folder layouts.

`paired=False` -> unaligned layout `trainA/ trainB/ testA/ testB/` (+ `testB_mask/`);
`paired=True`  -> aligned layout `train/ test/` of `A|B` images (+ `test_mask/`).
The test split is paired either way; file names of one test item match across folders.

`--out` may hold a user's files: every file and folder written is listed in
`.ponogan-data-manifest.jsonl` there (`GlyphOutput`, the manifest `ponogan eval` keeps), so a second
run with `overwrite` replaces and removes only files an earlier run wrote, and nothing is written into
a non-empty folder without it.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import torch
from PIL import Image
from torchvision.utils import make_grid

from ponogan.core.atomic import atomic_write
from ponogan.core.messages import UsageError
from ponogan.data.glyphs import GlyphDataset
from ponogan.data.image_io import tensor_to_pil
from ponogan.data.options import DataOptions
from ponogan.metrics.report import EvalOutput

# The folders each layout writes into: {paired: names}
LAYOUT_FOLDERS = {
    True: ("train", "train_mask", "test", "test_mask"),
    False: ("trainA", "trainB", "trainB_mask", "testA", "testB", "testB_mask"),
}


class GlyphOutput(EvalOutput):
    """The output folder of `ponogan data glyphs` and the manifest of what it wrote there."""

    WRITER = "ponogan data glyphs"
    MANIFEST_NAME = ".ponogan-data-manifest.jsonl"


def prepare_output(out_dir: str | os.PathLike, paired: bool, *, overwrite: bool = False) -> GlyphOutput:
    """Check `out_dir` before anything is written; `UsageError` (one line, exit 2) when it is a file,
    when it is not empty and `overwrite` is off, or, with `overwrite`, when a folder this layout
    writes into holds a file no earlier run of this command wrote (it would be replaced or mixed in).
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {out_dir} is a file; give a new or empty folder for the dataset")
    try:
        output = GlyphOutput(out_dir)
    except FileExistsError as err:
        raise UsageError(
            f"--out {out_dir} holds a manifest ponogan cannot read ({err.__cause__ or 'damaged'}); "
            "choose a new or empty folder"
        ) from None
    entries = sorted(os.listdir(out_dir)) if out_dir.is_dir() else []
    if entries and not overwrite:
        raise UsageError(
            f"--out {out_dir} is not empty (it holds {entries[0]!r}"
            f"{f' and {len(entries) - 1} more' if len(entries) > 1 else ''}); choose a new or empty "
            "folder, or pass --overwrite to replace what an earlier `ponogan data glyphs` wrote there "
            "(other files are never touched)"
        )
    try:
        output.check_free(trees=LAYOUT_FOLDERS[paired])
    except FileExistsError as err:
        raise UsageError(str(err)) from None
    return output


def export_glyphs(
    out_dir: str | os.PathLike, options: DataOptions, *, progress: bool = True, overwrite: bool = False
) -> dict[str, int]:
    """Render both splits of the glyph data under `out_dir`, with a progress bar per split (on stderr);
    returns the number of items per split.

    The folder is checked first (`prepare_output`); each file is listed in the manifest before it is
    written, atomically. With `overwrite`, files an earlier run wrote and this one did not (a longer
    `--length`, the other layout) are removed, so the folder never mixes two datasets.
    """
    from tqdm import tqdm

    datasets = {phase: GlyphDataset(None, phase, options) for phase in ("train", "test")}  # fonts checked
    output = prepare_output(out_dir, options.paired, overwrite=overwrite)
    written: set[Path] = set()
    counts = {}
    for phase, dataset in datasets.items():
        for index in tqdm(range(len(dataset)), desc=f"glyphs {phase}", unit="img", disable=not progress):
            for path, image in _item_files(phase, index, dataset[index], options.paired):
                output.mkdir(path.parent.as_posix())
                output.claim([output.root / path])
                atomic_write(output.root / path, functools.partial(image.save, format="PNG"))
                written.add(output.root / path)
        counts[phase] = len(dataset)
    stale = [
        p
        for p in output.own_files(trees=sorted({*LAYOUT_FOLDERS[True], *LAYOUT_FOLDERS[False]}))
        if p not in written
    ]
    output.remove(stale)
    return counts


def _item_files(phase: str, index: int, item: dict, paired: bool) -> list[tuple[Path, Image.Image]]:
    """The `(relative path, image)` files of one dataset item in the chosen layout."""
    char = item["A_path"].rsplit("/", 1)[-1].replace("+", "")
    name = f"{index:05d}_{char}.png"
    mask = item.get("B_mask")
    if paired:
        files = [(Path(phase, name), tensor_to_pil(torch.cat([_rgb(item["A"]), _rgb(item["B"])], dim=2)))]
        if mask is not None:
            files.append((Path(f"{phase}_mask", name), _mask_image(mask)))
        return files
    b_name = f"{index:05d}_{item['B_path'].rsplit('/', 1)[-1].replace('+', '')}.png"
    files = [
        (Path(f"{phase}A", name), tensor_to_pil(item["A"])),
        (Path(f"{phase}B", b_name), tensor_to_pil(item["B"])),
    ]
    if mask is not None:
        files.append((Path(f"{phase}B_mask", b_name), _mask_image(mask)))
    return files


def _rgb(image: torch.Tensor) -> torch.Tensor:
    return image.expand(3, -1, -1) if image.shape[0] == 1 else image


def _mask_image(mask: torch.Tensor) -> Image.Image:
    return tensor_to_pil(mask * 2 - 1)


def glyph_preview(options: DataOptions, count: int = 8) -> Image.Image:
    """A sample grid: rows plain train A / B, hard train B, hard test A / B / B_mask (`count` columns)."""
    plain = GlyphDataset(None, "train", options.replace(variant="plain"))
    hard = GlyphDataset(None, "train", options.replace(variant="hard"))
    hard_test = GlyphDataset(None, "test", options.replace(variant="hard"))
    step = max(1, len(hard_test) // count)
    test_items = [hard_test[i * step] for i in range(count)]
    tiles = [
        *(_rgb(plain[i]["A"]) for i in range(count)),
        *(_rgb(plain[i]["B"]) for i in range(count)),
        *(_rgb(hard[i]["B"]) for i in range(count)),
        *(_rgb(item["A"]) for item in test_items),
        *(_rgb(item["B"]) for item in test_items),
        *(_rgb(item["B_mask"] * 2 - 1) for item in test_items),
    ]
    return tensor_to_pil(make_grid(tiles, nrow=count, padding=2, pad_value=0.0))  # 0.0: grey 128
