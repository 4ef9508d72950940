"""`single` mode (inference): every image under one folder, A only."""

from __future__ import annotations

import os
from typing import Any

from ponogan.data.base import FolderDataset
from ponogan.data.options import DataOptions
from ponogan.data.transforms import apply_transform, get_params


class SingleDataset(FolderDataset):
    """Images under `root` (recursive). `phase` only picks random (train) or deterministic transforms."""

    def __init__(self, root: str | os.PathLike, phase: str, options: DataOptions) -> None:
        super().__init__(root, phase, options)
        self.paths = self._collect(self.root, "single dataset")

    def __len__(self) -> int:
        return len(self.paths)

    def _load_item(self, index: int) -> dict[str, Any]:
        path = self.paths[index]
        img = self._load(path, self.options.input_nc)
        params = get_params(self.options, img.size, self.train)
        return {"A": apply_transform(img, self.options, params, self.options.input_nc), "A_path": path}
