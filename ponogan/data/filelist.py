"""`list` mode (MUNIT image lists): text files of paths relative to `root`, one per line, per domain."""

from __future__ import annotations

import os

from ponogan.data.unaligned import UnalignedDataset


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
