"""The folder dataset modes and their shared machinery: file discovery, bad-file skipping (one warning
per file).

- `unaligned` (CycleGAN/MUNIT): two independent folders `<root>/<phase>A` and `<root>/<phase>B`;
- `aligned` (pix2pix): each file in `<root>/<phase>` holds A and B side by side (A | B);
- `single` (inference): every image under one folder, A only;
- `list` (MUNIT image lists): text files of paths relative to `root`, one per line, per domain.

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

import torch
from torch.utils.data import Dataset

from ponogan.core.settings import MAX_ASPECT, MAX_PROCESSED_PIXELS
from ponogan.data.image_io import IMG_EXTENSIONS, ImageLoadError, find_images, image_size, load_image
from ponogan.data.options import DataOptions
from ponogan.data.transforms import (
    MIN_SIDE,
    apply_transform,
    decay_options,
    get_params,
    keeps_image_size,
    resized_size,
)


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
        self.item_options = options  # what the items' transforms follow (`set_decay`)
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

    def set_decay(self, active: bool) -> None:
        """Draw the next items as in the learning-rate decay epochs (`active`) or as before them
        (`DataOptions.crop_in_decay`, `transforms.decay_options`); the training loop sets it before
        each epoch."""
        self.item_options = decay_options(self.options) if active else self.options

    def _side(self, path: str, channels: int) -> torch.Tensor:
        """One image as an item tensor `(channels, H, W)`, with its own random crop and flip."""
        img = self._load(path, channels)
        opts = self.item_options
        return apply_transform(img, opts, get_params(opts, img.size, self.train), channels)

    def _report(self, err: ImageLoadError) -> None:
        if err.path not in self._reported:
            self._reported.add(err.path)
            warnings.warn(f"skipping {err.path}: {err.reason}", BadImageWarning, stacklevel=3)

    def _reject(self, err: ImageLoadError, reasons: list[str]) -> None:
        """Report an unusable file once and add it to `reasons` (the error when none is usable)."""
        self._report(err)
        reasons.append(f"{err.path}: {err.reason}")

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
                self._reject(err, reasons)
        shown = "; ".join(reasons[:3]) + (f"; ... ({len(reasons) - 3} more)" if len(reasons) > 3 else "")
        raise ValueError(f"{what}: none of the {total} image files is usable: {shown}")

    def _check_sizes(self, paths: list[str], what: str, reasons: list[str]) -> list[str]:
        """Item sizes from the headers: skip (warn, add to `reasons`) items under `MIN_SIDE`; refuse mixed
        sizes. Files whose header cannot be read stay in the list: loading them reports why and skips them.
        """
        kept, first_of_size = [], {}
        opts = self.options
        for path in paths:
            try:
                size = resized_size(opts, *self._item_size(*image_size(path, opts.max_pixels)))
            except ImageLoadError:
                kept.append(path)
                continue
            items = f"{size[0]}x{size[1]} px items with preprocess={opts.preprocess!r}"
            if min(size) < MIN_SIDE:
                self._reject(ImageLoadError(path, f"too small: {items} (minimum {MIN_SIDE})"), reasons)
            elif size[0] * size[1] > MAX_PROCESSED_PIXELS or max(size) > MAX_ASPECT * min(size):
                # what the networks would process: bounded like `ponogan translate` bounds it
                limits = f"limits: {MAX_PROCESSED_PIXELS} pixels, aspect {MAX_ASPECT}; use a crop"
                self._reject(ImageLoadError(path, f"too large to train on: {items} ({limits})"), reasons)
            else:
                first_of_size.setdefault(size, path)
                kept.append(path)
        if len(first_of_size) > 1:
            (size_a, path_a), (size_b, path_b) = list(first_of_size.items())[:2]
            raise ValueError(
                f"{what}: preprocess={opts.preprocess!r} keeps each image's size, but {path_a} gives "
                f"{size_a[0]}x{size_a[1]} items and {path_b} {size_b[0]}x{size_b[1]} "
                f"({len(first_of_size)} sizes in all) and a batch needs one size: use preprocess "
                "'resize_and_crop' or 'scale_width_and_crop', or resize the images to one size"
            )
        return kept


class UnalignedDataset(FolderDataset):
    """Unpaired images; an epoch spans max(|A|, |B|) items.

    Item i takes A file `i mod |A|` and B file `i mod |B|` when `serial`, otherwise a random B file (the
    pairing carries no meaning). Each side gets its own random crop/flip. With `direction="BtoA"` the
    folders swap roles, so item `A` is always the model input (`input_nc` channels).
    """

    def __init__(self, root: str | os.PathLike, phase: str, options: DataOptions) -> None:
        super().__init__(root, phase, options)
        self.paths_a, self.paths_b = self._domain_paths()
        if options.direction == "BtoA":
            self.paths_a, self.paths_b = self.paths_b, self.paths_a

    def _domain_paths(self) -> tuple[list[str], list[str]]:
        return (
            self._collect(os.path.join(self.root, f"{self.phase}A"), "unaligned dataset, domain A"),
            self._collect(os.path.join(self.root, f"{self.phase}B"), "unaligned dataset, domain B"),
        )

    def __len__(self) -> int:
        return max(len(self.paths_a), len(self.paths_b))

    def _load_item(self, index: int) -> dict[str, Any]:
        path_a = self.paths_a[index % len(self.paths_a)]
        if self.options.serial or not self.train:
            path_b = self.paths_b[index % len(self.paths_b)]
        else:
            path_b = self.paths_b[int(torch.randint(len(self.paths_b), ()).item())]
        return {
            "A": self._side(path_a, self.options.input_nc),
            "B": self._side(path_b, self.options.output_nc),
            "A_path": path_a,
            "B_path": path_b,
        }


class AlignedDataset(FolderDataset):
    """Paired images stored as one `A|B` file (width 2W); both halves get the same crop and flip.

    `direction="BtoA"` swaps the halves, so item `A` is always the model input.
    """

    def __init__(self, root: str | os.PathLike, phase: str, options: DataOptions) -> None:
        super().__init__(root, phase, options)
        self.paths = self._collect(os.path.join(self.root, phase), "aligned dataset")

    def _item_size(self, width: int, height: int) -> tuple[int, int]:
        return width // 2, height

    def __len__(self) -> int:
        return len(self.paths)

    def _load_item(self, index: int) -> dict[str, Any]:
        path = self.paths[index]
        img = self._load(path, 3)
        half = img.width // 2
        left, right = img.crop((0, 0, half, img.height)), img.crop((half, 0, 2 * half, img.height))
        a_img, b_img = (right, left) if self.options.direction == "BtoA" else (left, right)
        opts = self.item_options
        params = get_params(opts, a_img.size, self.train)
        return {
            "A": apply_transform(a_img, opts, params, opts.input_nc),
            "B": apply_transform(b_img, opts, params, opts.output_nc),
            "A_path": path,
            "B_path": path,
        }


class SingleDataset(FolderDataset):
    """Images under `root` (recursive). `phase` only picks random (train) or deterministic transforms."""

    def __init__(self, root: str | os.PathLike, phase: str, options: DataOptions) -> None:
        super().__init__(root, phase, options)
        self.paths = self._collect(self.root, "single dataset")

    def __len__(self) -> int:
        return len(self.paths)

    def _load_item(self, index: int) -> dict[str, Any]:
        path = self.paths[index]
        return {"A": self._side(path, self.options.input_nc), "A_path": path}


class ListDataset(UnalignedDataset):
    """Like `unaligned`, but the files of each domain come from a list file.

    Lists default to `<root>/<phase>A.txt` and `<root>/<phase>B.txt` (options `list_a`, `list_b`
    override; relative list paths are taken from `root`). Blank lines and lines starting with `#` are
    ignored; a listed file that is missing or unreadable is skipped with a warning like any bad file.
    """

    def _domain_paths(self) -> tuple[list[str], list[str]]:
        list_a = self.options.list_a or f"{self.phase}A.txt"
        list_b = self.options.list_b or f"{self.phase}B.txt"
        return self._read_list(list_a, "A"), self._read_list(list_b, "B")

    def _read_list(self, list_file: str, domain: str) -> list[str]:
        list_path = list_file if os.path.isabs(list_file) else os.path.join(self.root, list_file)
        what = f"list dataset, domain {domain} ({list_path})"
        try:
            with open(list_path, encoding="utf-8") as handle:
                lines = [line.strip() for line in handle]
        except OSError as err:
            raise ValueError(f"{what}: cannot read the list file: {err.strerror}") from None
        entries = [line for line in lines if line and not line.startswith("#")]
        paths = [e if os.path.isabs(e) else os.path.join(self.root, e) for e in entries]
        paths = paths[: self.options.max_dataset_size]
        if not paths:
            raise ValueError(f"{what}: the list names no files")
        return self._usable(paths, what)


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
