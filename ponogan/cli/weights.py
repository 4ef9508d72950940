"""``ponogan weights``: fetch (``download``) or show (``list``) the pretrained files FID, KID and LPIPS need.

``ponogan weights download [fid] [lpips] ...`` puts each file into the torch hub cache
(``$TORCH_HOME/hub/checkpoints``, where ``ponogan eval`` looks) and checks its SHA-256; with no names it
fetches ``fid`` and ``lpips``. Exit status: 0 every file is there and verified; 1 a download failed, a
file does not match its checksum or could not be written (one ``error:`` line per file, nothing
replaced); 2 bad arguments (an unknown name), found before anything is fetched.

This module only imports the standard library at import time (torch is imported when a command runs).
"""

from __future__ import annotations

import argparse
import socket

from ponogan.core.messages import EXIT_FAILED, EXIT_OK, UsageError, print_error

# name on the command line -> LPIPS backbone (None: the FID Inception)
TARGETS: dict[str, str | None] = {
    "fid": None,
    "lpips": "alex",
    "lpips-alex": "alex",
    "lpips-vgg": "vgg",
    "lpips-squeeze": "squeeze",
}
DEFAULT_TARGETS = ("fid", "lpips")
DOWNLOAD_TIMEOUT_S = 60  # per network operation, so a dead connection fails instead of hanging


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("download", "list"), help="download files, or list where they are")
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        default=list(DEFAULT_TARGETS),
        help=f"{', '.join(TARGETS)} or all; lpips = lpips-alex",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the download progress bar")


def parse_args(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Options may come between the names (``download --no-progress fid``)."""
    return parser.parse_intermixed_args(argv)


def _weight_files(names: list[str]):
    """The distinct ``WeightFile`` objects for ``names``, read from the weights module at call time."""
    from ponogan.metrics import weights

    chosen = list(TARGETS) if "all" in names else names or list(DEFAULT_TARGETS)
    unknown = [n for n in chosen if n not in TARGETS]
    if unknown:
        shown = ", ".join(map(repr, unknown))
        raise UsageError(f"unknown weight name(s) {shown}; valid: {', '.join(TARGETS)} or all")
    files = {}
    for name in chosen:
        net = TARGETS[name]
        item = weights.FID_INCEPTION if net is None else weights.LPIPS_BACKBONES[net]
        files[item.filename] = item
    return list(files.values())


def run(args: argparse.Namespace) -> int:
    files = _weight_files(args.names)  # UsageError (exit 2) before anything is fetched
    from ponogan.metrics.weights import (
        ChecksumError,
        MissingWeightsError,
        download_weights,
        hub_checkpoint_dir,
    )

    if args.action == "list":
        for item in files:
            path = hub_checkpoint_dir() / item.filename
            state = "present" if path.is_file() else "missing"
            print(f"{state:8s} {path}  ({item.purpose}; {item.url})")
        return EXIT_OK
    failed = 0
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        for item in files:
            try:
                path, downloaded = download_weights(item, progress=not args.no_progress)
            except (MissingWeightsError, ChecksumError, ValueError) as err:
                print_error(err)
                failed += 1
                continue
            except OSError as err:  # the hub cache folder cannot be created or written
                print_error(
                    f"cannot write {item.filename} into {hub_checkpoint_dir()} ({err.strerror or err}); "
                    "set TORCH_HOME to a folder you can write to"
                )
                failed += 1
                continue
            what = "downloaded" if downloaded else "already present"
            print(f"{what}: {path} (SHA-256 starts with {item.sha256}: verified)")
    finally:
        socket.setdefaulttimeout(previous)
    return EXIT_FAILED if failed else EXIT_OK
