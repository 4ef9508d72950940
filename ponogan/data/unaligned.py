"""`unaligned` mode (CycleGAN/MUNIT): two independent folders `<root>/<phase>A` and `<root>/<phase>B`."""

from __future__ import annotations

import os
from typing import Any

import torch

from ponogan.data.base import FolderDataset
from ponogan.data.options import DataOptions
from ponogan.data.transforms import apply_transform, get_params


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

    def _side(self, path: str, channels: int) -> torch.Tensor:
        img = self._load(path, channels)
        params = get_params(self.options, img.size, self.train)
        return apply_transform(img, self.options, params, channels)
