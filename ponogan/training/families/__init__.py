"""One trainer class per family, looked up by ``TrainConfig.family``."""

from __future__ import annotations

from accelerate import Accelerator

from ..config import TrainConfig
from .base import FamilyTrainer
from .cyclegan import CycleGANTrainer
from .munit import MunitTrainer
from .pix2pix import Pix2PixTrainer

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
