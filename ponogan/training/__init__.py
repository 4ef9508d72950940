"""Training: typed configs, one accelerate loop for every family (their trainers: ``ponogan.families``).

``train(load_config("configs/pix2pix_pono_ms_glyphs.yaml"))`` runs a preset; ``python train.py`` and
``ponogan train`` do the same from the command line (``ponogan.cli.train``).
"""

from ponogan.core.lazy import lazy_exports

_EXPORTS = {
    "ConfigError": "config",
    "DataConfig": "config",
    "LoopConfig": "config",
    "ModelConfig": "config",
    "NonFiniteLossError": "errors",
    "OptimConfig": "config",
    "RunResult": "loop",
    "TrainConfig": "config",
    "TrainingError": "errors",
    "UsageError": "errors",
    "apply_overrides": "config",
    "create_trainer": "loop",  # ponogan.families.base.create_trainer, as the loop uses it
    "from_dict": "config",
    "latest_state": "state",
    "list_states": "state",
    "load_config": "config",
    "train": "loop",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
