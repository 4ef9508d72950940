"""Dataset modes: mode name -> dataset class, `create_dataset`, and `register_dataset` for your own."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from torch.utils.data import Dataset

from ponogan.data.folders import AlignedDataset, ListDataset, SingleDataset, UnalignedDataset
from ponogan.data.glyphs import GlyphDataset
from ponogan.data.options import DataOptions

DatasetFactory = Callable[[Any, str, DataOptions], Dataset]

DATASETS: dict[str, DatasetFactory] = {
    "unaligned": UnalignedDataset,
    "aligned": AlignedDataset,
    "single": SingleDataset,
    "list": ListDataset,
    "glyphs": GlyphDataset,
}
ROOTLESS = {"glyphs"}


def register_dataset(name: str, factory: DatasetFactory, *, needs_root: bool = True) -> None:
    """Add a dataset mode of your own: `factory(root, phase, options: DataOptions) -> Dataset` whose
    items are dicts like the built-in ones (`A`, `B` `(C, H, W)` in [-1, 1], `A_path`, `B_path`).
    `create_dataset`, `build_dataset` and a training config's `data.mode` then accept `name` (matched
    case-insensitively); `needs_root=False` lets `root` be None."""
    key = name.lower().strip() if isinstance(name, str) else ""
    if not key:
        raise ValueError(f"a dataset mode name must be a non-empty string, got {name!r}")
    if key in DATASETS:
        raise ValueError(f"dataset mode {key!r} is already registered; valid modes: {', '.join(DATASETS)}")
    DATASETS[key] = factory
    if not needs_root:
        ROOTLESS.add(key)


def create_dataset(mode: str, root: str | os.PathLike | None = None, phase: str = "train", **options: Any):
    """Build the dataset of `mode` (`unaligned`, `aligned`, `single`, `list`, `glyphs`, or one added
    with `register_dataset`).

    `options` are `DataOptions` fields (unknown names raise `ValueError`); pass `options=DataOptions(...)`
    instead to use a prepared dataclass. Items are dicts with `A`/`B` `(C, H, W)` tensors in [-1, 1]
    and `A_path`/`B_path`.
    """
    if "options" in options:
        prepared = options.pop("options")
        if not isinstance(prepared, DataOptions):
            raise TypeError(f"options= must be a DataOptions, got {type(prepared).__name__}")
        opts = prepared.replace(**options) if options else prepared
    else:
        opts = DataOptions.from_dict(options)
    return build_dataset(mode, root, phase, opts)


def build_dataset(mode: str, root: str | os.PathLike | None, phase: str, options: DataOptions):
    """`create_dataset` for a ready `DataOptions` (the form the training config uses)."""
    key = mode.lower().strip() if isinstance(mode, str) else mode
    if key not in DATASETS:
        raise ValueError(f"unknown dataset mode {mode!r}; valid modes: {', '.join(DATASETS)}")
    if root is None and key not in ROOTLESS:
        raise ValueError(f"dataset mode {key!r} needs a root folder")
    return DATASETS[key](root, phase, options)
