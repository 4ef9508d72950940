"""The files of a run folder that travel to and from the Hub (names only, no torch).

Every name comes from the run-folder contract, ``ponogan.core.run_folder``. Downloads are limited to
``DOWNLOAD_PATTERNS``, so a repo's pickles (``*.pt``, ``*.bin``, ``*.pkl``) never reach the disk.
"""

from __future__ import annotations

from ponogan.core.run_folder import CONFIG as CONFIG_NAME
from ponogan.core.run_folder import LOSSES_PLOT as LOSSES_NAME
from ponogan.core.run_folder import METRICS as METRICS_JSON
from ponogan.core.run_folder import METRICS_PLOT as METRICS_PLOT_NAME
from ponogan.core.run_folder import MODEL as WEIGHTS_NAME
from ponogan.core.run_folder import SAMPLES_DIR, STATE_DIR

CARD_NAME = "README.md"  # the model card on the Hub (a shipped demo's card in its folder)
SAMPLE_NAME = "sample.png"  # a shipped demo's single sample grid

# what resolve_run downloads: the inference files, the card, metrics and pictures
DOWNLOAD_PATTERNS = (CONFIG_NAME, WEIGHTS_NAME, CARD_NAME, METRICS_JSON, "*.png", f"{SAMPLES_DIR}/*.png")

__all__ = [
    "CARD_NAME",
    "CONFIG_NAME",
    "DOWNLOAD_PATTERNS",
    "LOSSES_NAME",
    "METRICS_JSON",
    "METRICS_PLOT_NAME",
    "SAMPLES_DIR",
    "SAMPLE_NAME",
    "STATE_DIR",
    "WEIGHTS_NAME",
]
