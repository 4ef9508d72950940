"""Write the built-in glyph data to disk in the standard folder layouts.

`paired=False` -> unaligned layout `trainA/ trainB/ testA/ testB/` (+ `testB_mask/`);
`paired=True`  -> aligned layout `train/ test/` of `A|B` images (+ `test_mask/`).
The test split is paired either way; file names of one test item match across folders.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from PIL import Image
from torchvision.utils import make_grid

from ponogan.data.glyphs import GlyphDataset
from ponogan.data.image_io import tensor_to_pil
from ponogan.data.options import DataOptions


def export_glyphs(
    out_dir: str | os.PathLike, options: DataOptions, *, progress: bool = True
) -> dict[str, int]:
    """Render both splits of the glyph data under `out_dir`, with a progress bar per split (on stderr);
    returns the number of items per split."""
    from tqdm import tqdm

    out_dir = Path(out_dir)
    counts = {}
    for phase in ("train", "test"):
        dataset = GlyphDataset(None, phase, options)
        for index in tqdm(range(len(dataset)), desc=f"glyphs {phase}", unit="img", disable=not progress):
            _write_item(out_dir, phase, index, dataset[index], options.paired)
        counts[phase] = len(dataset)
    return counts


def _write_item(out_dir: Path, phase: str, index: int, item: dict, paired: bool) -> None:
    char = item["A_path"].rsplit("/", 1)[-1].replace("+", "")
    name = f"{index:05d}_{char}.png"
    mask = item.get("B_mask")
    if paired:
        _save(tensor_to_pil(torch.cat([_rgb(item["A"]), _rgb(item["B"])], dim=2)), out_dir / phase / name)
        if mask is not None:
            _save(_mask_image(mask), out_dir / f"{phase}_mask" / name)
        return
    _save(tensor_to_pil(item["A"]), out_dir / f"{phase}A" / name)
    b_char = item["B_path"].rsplit("/", 1)[-1].replace("+", "")
    _save(tensor_to_pil(item["B"]), out_dir / f"{phase}B" / f"{index:05d}_{b_char}.png")
    if mask is not None:
        _save(_mask_image(mask), out_dir / f"{phase}B_mask" / f"{index:05d}_{b_char}.png")


def _rgb(image: torch.Tensor) -> torch.Tensor:
    return image.expand(3, -1, -1) if image.shape[0] == 1 else image


def _mask_image(mask: torch.Tensor) -> Image.Image:
    return tensor_to_pil(mask * 2 - 1)


def _save(img: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


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
