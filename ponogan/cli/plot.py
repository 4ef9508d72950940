"""``ponogan plot RUN [RUN...]``: compare runs in one picture (loss curves and evaluation metrics).

Each run's ``log.jsonl`` is read (tolerantly: a line cut short by a kill is skipped); every loss name
gets a panel with each run's smoothed curve (raw values faint behind), every metric a panel with each
run's evaluations, one colour per run, labelled by run folder name. The picture goes to ``--out``
(default ``plot.png`` in the current folder) and never replaces an existing file without
``--overwrite``. Errors a user can hit are one ``error: ...`` line (exit 2; 1 when writing fails).

Only the standard library is imported at the top: ``ponogan plot --help`` stays instant. The drawing
(``ponogan.training.plots``, matplotlib) is imported once the arguments have been checked.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ponogan.core.run_folder import RunFolder

FORMATS = (".png", ".svg", ".pdf")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run folders (each holds a log.jsonl)")
    parser.add_argument(
        "--out",
        default="plot.png",
        metavar="FILE",
        help="the picture to write: .png, .svg or .pdf, relative to the current folder",
    )
    parser.add_argument(
        "--metric",
        nargs="+",
        metavar="NAME",
        help="only these metrics, e.g. l1 psnr ssim; without it, every metric a run logged",
    )
    parser.add_argument(
        "--loss",
        nargs="+",
        metavar="NAME",
        help="only these losses, e.g. G_L1 D_A lr; without it, every loss a run logged",
    )
    parser.add_argument(
        "--smoothing",
        type=float,
        metavar="W",
        help="EMA weight of loss curves in [0, 1), 0 = raw; without it, set by curve length",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")


def _fail(message: object, status: int = 2) -> int:
    print("error: " + " ".join(str(message).split()), file=sys.stderr)
    return status


def check_args(args: argparse.Namespace) -> str | None:
    """The first problem with the arguments as one line, or None (nothing is read or imported)."""
    out = Path(args.out)
    if out.suffix.lower() not in FORMATS:
        return f"--out {out}: the picture must end in {', '.join(FORMATS)}"
    if out.is_dir():
        return f"--out {out} is a folder; name a file, e.g. --out {out / 'plot.png'}"
    if out.exists() and not args.overwrite:
        return f"{out} already exists; pass --overwrite to replace it, or --out FILE for another file"
    if not out.parent.is_dir():
        return f"--out {out}: folder {out.parent} does not exist"
    if args.smoothing is not None and not 0.0 <= args.smoothing < 1.0:
        return f"--smoothing must be in [0, 1), got {args.smoothing}"
    for run in map(Path, args.runs):
        if not run.is_dir():
            return f"{run} is not a folder; pass run folders (e.g. checkpoints/<run_name>)"
        if not RunFolder(run).log.is_file():
            return f"{run} has no log.jsonl; it is not a training run folder (or the run has not logged yet)"
    return None


def run(args: argparse.Namespace) -> int:
    problem = check_args(args)
    if problem:
        return _fail(problem)
    from ponogan.training.plots import PlotError, compare_runs, read_log, run_labels

    runs = []
    try:
        for label, run in zip(run_labels(args.runs), map(Path, args.runs), strict=True):
            records = read_log(RunFolder(run).log)
            if not records:
                return _fail(f"{RunFolder(run).log} holds no logged step yet")
            runs.append((label, records))
    except OSError as err:
        return _fail(f"cannot read {err.filename or 'a log'}: {err.strerror or err}")
    try:
        out = compare_runs(runs, args.out, losses=args.loss, metrics=args.metric, smoothing=args.smoothing)
    except PlotError as err:
        return _fail(err)
    except OSError as err:
        return _fail(f"cannot write {args.out}: {err.strerror or err}", 1)
    print(f"wrote {out} ({len(runs)} run{'s' if len(runs) > 1 else ''})")
    return 0
