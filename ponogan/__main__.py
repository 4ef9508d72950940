"""``python -m ponogan ...``: the ``ponogan`` command, for launchers that start a module
(``torchrun -m ponogan translate ...``, ``accelerate launch -m ponogan eval ...``)."""

import sys

from ponogan.cli import main

sys.exit(main())
