"""Training: typed configs, one accelerate loop, one trainer per family (pix2pix, CycleGAN, MUNIT).

``train(load_config("configs/pix2pix_pono_ms_glyphs.yaml"))`` runs a preset; ``python train.py`` and
``ponogan train`` do the same from the command line (``ponogan.training.cli``).
"""

from .checkpoint import latest_state, list_states
from .config import (
    ConfigError,
    DataConfig,
    LoopConfig,
    ModelConfig,
    OptimConfig,
    TrainConfig,
    apply_overrides,
    from_dict,
    load_config,
)
from .families import TRAINERS, create_trainer
from .loop import NonFiniteLossError, RunResult, TrainingError, UsageError, train

__all__ = [
    "TRAINERS",
    "ConfigError",
    "DataConfig",
    "LoopConfig",
    "ModelConfig",
    "NonFiniteLossError",
    "OptimConfig",
    "RunResult",
    "TrainConfig",
    "TrainingError",
    "UsageError",
    "apply_overrides",
    "create_trainer",
    "from_dict",
    "latest_state",
    "list_states",
    "load_config",
    "train",
]
