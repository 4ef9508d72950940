"""Shared machinery of the folder datasets: file discovery, bad-file skipping, one warning per file.

Without a crop step (`preprocess` `none` / `scale_width`) items keep each image's size, so the image
headers are checked when the dataset is built: items of different sizes cannot be batched (one clear
`ValueError` instead of a traceback from collate), and tiny images (under `MIN_SIDE` px) are skipped
with a warning instead of failing inside the networks.
"""

from __future__ import annotations

import abc
import os
import warnings
from typing import Any

from torch.utils.data import Dataset

from ponogan.data.image_io import IMG_EXTENSIONS, ImageLoadError, find_images, image_size, load_image
from ponogan.data.options import DataOptions
from ponogan.data.transforms import MIN_SIDE, keeps_image_size, resized_size
from ponogan.settings import MAX_ASPECT, MAX_PROCESSED_PIXELS


class BadImageWarning(UserWarning):
    """A file was skipped because it could not be loaded (the message names it and says why)."""


class FolderDataset(Dataset, abc.ABC):
    """Base of the folder modes: subclasses implement `_load_item(index)`; bad files are replaced.

    When `_load_item` raises `ImageLoadError`, the file is reported once (a `BadImageWarning` naming it)
    and the next index is tried, so a corrupt file never stops an epoch.
    """

    def __init__(self, root: str | os.PathLike, phase: str, options: DataOptions) -> None:
        self.root = str(root)
        self.phase = phase
        self.options = options
        self.train = phase == "train"
        self._reported: set[str] = set()

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} items")
        last_error: ImageLoadError | None = None
        for offset in range(len(self)):
            try:
                return self._load_item((index + offset) % len(self))
            except ImageLoadError as err:
                self._report(err)
                last_error = err
        raise RuntimeError(f"no readable image left in {self.root}; last error: {last_error}")

    @abc.abstractmethod
    def _load_item(self, index: int) -> dict[str, Any]:
        """The item at `index`; raises `ImageLoadError` when one of its files is unusable."""

    def _load(self, path: str, channels: int):
        return load_image(path, "L" if channels == 1 else "RGB", self.options.max_pixels)

    def _report(self, err: ImageLoadError) -> None:
        if err.path not in self._reported:
            self._reported.add(err.path)
            warnings.warn(f"skipping {err.path}: {err.reason}", BadImageWarning, stacklevel=3)

    def _collect(self, folder: str, what: str) -> list[str]:
        """Image paths under `folder`; fails now if none exists or none of them is usable."""
        if not os.path.isdir(folder):
            raise ValueError(f"{what}: folder {folder} does not exist{_how_to_get(folder)}")
        paths = find_images(folder)[: self.options.max_dataset_size]
        if not paths:
            raise ValueError(f"{what}: no image files in {folder} (looked for {', '.join(IMG_EXTENSIONS)})")
        return self._usable(paths, f"{what} ({folder})")

    def _item_size(self, width: int, height: int) -> tuple[int, int]:
        """Size of the image an item is cut from, for a file of `width x height` (aligned: one half)."""
        return width, height

    def _usable(self, paths: list[str], what: str) -> list[str]:
        """`paths` less tiny images when sizes are kept; `ValueError` if none is usable or sizes differ."""
        total, reasons = len(paths), []
        if keeps_image_size(self.options):
            paths = self._check_sizes(paths, what, reasons)
        for path in paths:
            try:
                load_image(path, "RGB", self.options.max_pixels)
                return paths
            except ImageLoadError as err:
                self._report(err)
                reasons.append(f"{err.path}: {err.reason}")
        shown = "; ".join(reasons[:3]) + (f"; ... ({len(reasons) - 3} more)" if len(reasons) > 3 else "")
        raise ValueError(f"{what}: none of the {total} image files is usable: {shown}")

    def _check_sizes(self, paths: list[str], what: str, reasons: list[str]) -> list[str]:
        """Item sizes from the headers: skip (warn, add to `reasons`) items under `MIN_SIDE`; refuse mixed
        sizes. Files whose header cannot be read stay in the list: loading them reports why and skips them.
        """
        kept, first_of_size = [], {}
        preprocess = self.options.preprocess
        for path in paths:
            try:
                width, height = self._item_size(*image_size(path, self.options.max_pixels))
            except ImageLoadError:
                kept.append(path)
                continue
            size = resized_size(self.options, width, height)
            problem = None
            if min(size) < MIN_SIDE:
                problem = f"too small: {size[0]}x{size[1]} px items with preprocess={preprocess!r}"
                problem += f" (minimum {MIN_SIDE})"
            elif size[0] * size[1] > MAX_PROCESSED_PIXELS or max(size) > MAX_ASPECT * min(size):
                # what the networks would process: bounded like `ponogan translate` bounds it
                problem = (
                    f"too large to train on: {size[0]}x{size[1]} px items with preprocess={preprocess!r} "
                    f"(limits: {MAX_PROCESSED_PIXELS} pixels, aspect {MAX_ASPECT}; use a crop)"
                )
            if problem is not None:
                err = ImageLoadError(path, problem)
                self._report(err)
                reasons.append(f"{err.path}: {err.reason}")
                continue
            first_of_size.setdefault(size, path)
            kept.append(path)
        if len(first_of_size) > 1:
            (size_a, path_a), (size_b, path_b) = list(first_of_size.items())[:2]
            raise ValueError(
                f"{what}: preprocess={preprocess!r} keeps each image's size, but {path_a} gives "
                f"{size_a[0]}x{size_a[1]} items and {path_b} {size_b[0]}x{size_b[1]} "
                f"({len(first_of_size)} sizes in all) and a batch needs one size: use preprocess "
                "'resize_and_crop' or 'scale_width_and_crop', or resize the images to one size"
            )
        return kept


def _how_to_get(folder: str) -> str:
    """A hint for a missing public dataset: ``datasets/horse2zebra/trainA`` -> the download command."""
    from ponogan.data.download import KINDS

    root = os.path.dirname(os.path.normpath(folder))
    name = os.path.basename(root)
    known = {n for _, names in KINDS.values() for n in names}
    if name in known:
        return f"; get it with: ponogan data download {name} --out {os.path.dirname(root) or '.'}"
    examples = ", ".join(sorted(known)[:6])
    return f"; for a public dataset see `ponogan data download --help` (known: {examples}, ...)"
