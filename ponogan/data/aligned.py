"""`aligned` mode (pix2pix): each file in `<root>/<phase>` holds A and B side by side (A | B)."""

from __future__ import annotations

import os
from typing import Any

from ponogan.data.base import FolderDataset
from ponogan.data.options import DataOptions
from ponogan.data.transforms import apply_transform, get_params


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
        params = get_params(self.options, a_img.size, self.train)
        return {
            "A": apply_transform(a_img, self.options, params, self.options.input_nc),
            "B": apply_transform(b_img, self.options, params, self.options.output_nc),
            "A_path": path,
            "B_path": path,
        }
