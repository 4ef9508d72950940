"""Shared machinery of the folder datasets: file discovery, bad-file skipping, one warning per file."""

from __future__ import annotations

import abc
import os
import warnings
from typing import Any

from torch.utils.data import Dataset

from ponogan.data.image_io import IMG_EXTENSIONS, ImageLoadError, find_images, load_image
from ponogan.data.options import DataOptions


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
        """Image paths under `folder`; fails now if none exists or none of them is readable."""
        if not os.path.isdir(folder):
            raise ValueError(f"{what}: folder {folder} does not exist")
        paths = find_images(folder)[: self.options.max_dataset_size]
        if not paths:
            raise ValueError(f"{what}: no image files in {folder} (looked for {', '.join(IMG_EXTENSIONS)})")
        self._require_readable(paths, f"{what} ({folder})")
        return paths

    def _require_readable(self, paths: list[str], what: str) -> None:
        reasons = []
        for path in paths:
            try:
                load_image(path, "RGB", self.options.max_pixels)
                return
            except ImageLoadError as err:
                self._report(err)
                reasons.append(f"{err.path}: {err.reason}")
        shown = "; ".join(reasons[:3]) + (f"; ... ({len(reasons) - 3} more)" if len(reasons) > 3 else "")
        raise ValueError(f"{what}: none of the {len(paths)} image files is readable: {shown}")
