"""Train a translator: ``python train.py [--config configs/<preset>.yaml] [--section.key value ...]``.

With no arguments: pix2pix with PONO-MS on the built-in glyph data (configs/pix2pix_pono_ms_glyphs.yaml),
a few minutes on a CPU. Same code as ``ponogan train``; see docs/training.md.
"""

import sys

from ponogan.cli.train import main

if __name__ == "__main__":
    sys.exit(main())
