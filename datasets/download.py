"""Download a public CycleGAN/pix2pix dataset, or combine two folders into aligned A|B images.

Thin wrapper over `ponogan data download` / `ponogan data combine` (code in ponogan/data/download.py):

    python datasets/download.py horse2zebra                      # -> datasets/horse2zebra/trainA ...
    python datasets/download.py facades --kind pix2pix           # -> datasets/facades/train, val, test
    python datasets/download.py combine --fold-a A --fold-b B --out datasets/mine
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ponogan.cli import data as cli


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] not in ("combine", "download", "-h", "--help"):
        argv = ["download", *argv]
        if "--out" not in argv:
            argv += ["--out", str(Path(__file__).resolve().parent)]
    parser = argparse.ArgumentParser(prog="datasets/download.py", description=__doc__.splitlines()[0])
    cli.add_arguments(parser)
    return cli.run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
