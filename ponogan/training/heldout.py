"""Evaluation during training: paired metrics on the test split and the items for sample grids.

Only modes whose test split pairs every input with its ground truth (``PAIRED_TEST_MODES``: the
built-in glyphs and ``aligned`` folders) get metrics; the others still get sample grids. Evaluation
never moves the training RNG (``preserved_rng``), so evaluating more or less often cannot change the
weights a run ends with.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from accelerate import Accelerator
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from ponogan.families.base import FamilyTrainer
from ponogan.metrics import paired_metrics
from ponogan.training.state import preserved_rng

PAIRED_TEST_MODES = {"glyphs", "aligned"}


class IndexedDataset(Dataset):
    """Adds ``"index"`` (the position in the wrapped dataset) to each item; drops non-tensor fields."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        item = self.dataset[index]
        out = {k: v for k, v in item.items() if isinstance(v, torch.Tensor)}
        out["index"] = torch.tensor(index)
        return out


@contextlib.contextmanager
def eval_mode(nets: dict[str, nn.Module]) -> Iterator[None]:
    """Nets in eval mode, no gradients, RNG untouched; each net's previous mode restored after."""
    modes = {name: net.training for name, net in nets.items()}
    try:
        with preserved_rng(), torch.no_grad():
            for net in nets.values():
                net.eval()
            yield
    finally:
        for name, net in nets.items():
            net.train(modes[name])


class Evaluator:
    """Paired metrics of ``trainer.translate(A)`` vs ``B`` over the (capped) test split, all processes."""

    def __init__(
        self,
        accelerator: Accelerator,
        test_set: Dataset | None,
        *,
        mode: str,
        batch_size: int,
        max_items: int | None,
    ):
        self.accelerator = accelerator
        self.test_set = test_set
        self.paired = test_set is not None and mode in PAIRED_TEST_MODES
        self.loader = None
        if self.paired:
            subset = test_set if max_items is None else Subset(test_set, range(min(max_items, len(test_set))))
            loader = DataLoader(IndexedDataset(subset), batch_size=batch_size, shuffle=False)
            self.loader = accelerator.prepare(loader)

    def evaluate(self, trainer: FamilyTrainer) -> dict[str, float]:
        """``{"l1", "psnr", "ssim"}`` averaged over test images (``{}`` without a paired test split)."""
        if self.loader is None:
            return {}
        totals: dict[str, float] = {}
        count = 0
        with eval_mode(trainer.nets):
            for batch in self.loader:
                fake = trainer.translate(batch["A"], batch["index"])
                fake, real = self.accelerator.gather_for_metrics((fake.float(), batch["B"].float()))
                if fake.shape[0] == 0:
                    continue
                for name, value in paired_metrics(fake, real).items():
                    totals[name] = totals.get(name, 0.0) + value * fake.shape[0]
                count += fake.shape[0]
        return {name: total / count for name, total in totals.items()}

    def sample_items(self, fallback: Dataset, n: int) -> dict[str, torch.Tensor]:
        """``n`` fixed items spread over the test split (or ``fallback``): ``A``, ``B`` and ``index``."""
        source = self.test_set if self.test_set is not None and len(self.test_set) else fallback
        n = min(n, len(source))
        picks = torch.linspace(0, len(source) - 1, n).round().long().unique().tolist()
        items = [IndexedDataset(source)[i] for i in picks]
        return {key: torch.stack([it[key] for it in items]) for key in ("A", "B", "index") if key in items[0]}
