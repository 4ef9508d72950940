"""One trainer class per family, looked up by ``TrainConfig.family``."""

from __future__ import annotations

from accelerate import Accelerator

from ponogan.training.config import TrainConfig
from ponogan.training.families.base import FamilyTrainer
from ponogan.training.families.cyclegan import CycleGANTrainer
from ponogan.training.families.munit import MunitTrainer
from ponogan.training.families.pix2pix import Pix2PixTrainer

TRAINERS: dict[str, type[FamilyTrainer]] = {
    "pix2pix": Pix2PixTrainer,
    "cyclegan": CycleGANTrainer,
    "munit": MunitTrainer,
}


def create_trainer(cfg: TrainConfig, accelerator: Accelerator) -> FamilyTrainer:
    """Build the family's nets, optimizers and schedulers (not yet prepared)."""
    if cfg.family not in TRAINERS:
        raise ValueError(f"unknown family {cfg.family!r}; valid families: {', '.join(TRAINERS)}")
    return TRAINERS[cfg.family](cfg, accelerator)


__all__ = ["TRAINERS", "FamilyTrainer", "create_trainer"]
