"""``ponogan export``: the command line of ``ponogan.inference.export`` (apart from it, so ``--help``
needs no torch)."""

from __future__ import annotations

import argparse

from ponogan.core.settings import EXPORT_FORMATS as FORMATS
from ponogan.core.settings import EXPORT_STYLES as STYLES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="run folder (model.safetensors + config.json)")
    parser.add_argument("--out", required=True, help="file to write (.onnx or .pt2)")
    parser.add_argument("--format", default="onnx", choices=FORMATS, help="default: onnx")
    parser.add_argument("--direction", default="AtoB", choices=("AtoB", "BtoA"), help="default: AtoB")
    parser.add_argument(
        "--style", default="fixed", choices=STYLES, help="MUNIT: style baked in (fixed) or a second input"
    )
    parser.add_argument("--seed", type=int, default=0, help="MUNIT: seed of the fixed style (default 0)")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")


def run(args: argparse.Namespace) -> int:
    """Export as asked; a bad ``--out``, option or run folder raises ``ExportError`` (a ``UsageError``,
    exit 2, nothing written) and a failed write a ``CommandError`` (exit 1), which
    ``ponogan.cli.run_command`` prints as one ``error:`` line."""
    from ponogan.inference.export import export

    out = export(
        args.run,
        args.out,
        format=args.format,
        direction=args.direction,
        style=args.style,
        seed=args.seed,
        overwrite=args.overwrite,
    )
    print(f"wrote {out}")
    return 0
