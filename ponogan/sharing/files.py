"""The files of a run folder that travel to and from the Hub (names only, no torch).

The names match ``ponogan.models.hub`` (``config.json``, ``model.safetensors``), ``ponogan.training.state``
(``metrics.json``, ``samples/``, ``state/``) and ``ponogan.training.plots`` (``losses.png``); the tests
check that they stay equal. Downloads are limited to ``DOWNLOAD_PATTERNS``, so a repo's pickles
(``*.pt``, ``*.bin``, ``*.pkl``) never reach the disk.
"""

from __future__ import annotations

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
METRICS_JSON = "metrics.json"
SAMPLES_DIR = "samples"
SAMPLE_NAME = "sample.png"  # a shipped demo's single sample grid
LOSSES_NAME = "losses.png"
METRICS_PLOT_NAME = "metrics.png"
STATE_DIR = "state"

# what resolve_run downloads: the inference files, the card, metrics and pictures
DOWNLOAD_PATTERNS = (CONFIG_NAME, WEIGHTS_NAME, CARD_NAME, METRICS_JSON, "*.png", f"{SAMPLES_DIR}/*.png")
