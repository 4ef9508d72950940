"""Gradio front end: translate images with a trained ponogan checkpoint in the browser.

    python app.py [--checkpoint RUN] [--host 127.0.0.1] [--port 7860] [--share]

With no `--checkpoint` it opens the shipped demo `checkpoints/demo_pix2pix_pono_ms_glyphs`, on the tab
that fits the model (typed text for glyph models) with clickable examples from the run's test split.
`--host`/`--port` default to `GRADIO_SERVER_NAME`/`GRADIO_SERVER_PORT`, then 127.0.0.1:7860 (so it runs
as a Hugging Face Space: docs/app.md). This file parses the flags, checks them and the runs, and launches:
the page is `ponogan.app.layout`, what its events compute `ponogan.app.handlers`, the rest
`ponogan.app.support`. The endpoint `/translate` takes the image first, every other input optional, and
returns the image.

Start-up problems are one `error:` line on stderr and exit status 2, found before any model loads where
they can be: a flag that cannot work (`--concurrency` under 1, `--max-pixels` under a 64x64 image, a
device this machine lacks, a host that is not an address here, a port in use), an explicit `--checkpoint`
that does not load, or no run under `--checkpoints-dir` that loads (a run that fails in any way is
skipped with one warning line). Uploads and results are deleted from gradio's cache after
`--upload-max-age` seconds, a rejected upload at once, and all of the app's files on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

# No outbound network: set before gradio (and huggingface_hub) are imported. The one exception, a Hub
# repo id given as --checkpoint, is fetched at start-up unless the user's own HF_HUB_OFFLINE forbids it.
USER_HUB_OFFLINE = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "on", "true", "yes")
os.environ.update(GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1")

import gradio as gr  # noqa: E402
from gradio.route_utils import delete_files_created_by_app  # noqa: E402
from gradio.utils import get_upload_folder  # noqa: E402

from ponogan.app.layout import CSS, PAPER_MODE_LABEL, build_app  # noqa: E402
from ponogan.app.support import (  # noqa: E402
    APP_MAX_PIXELS,
    DEFAULT_DEMO,
    DEFAULT_HOST,
    DEFAULT_PORT,
    MIN_MAX_PIXELS,
    UPLOAD_MAX_AGE_S,
    CheckpointInfo,
    PipelineCache,
    check_run_view,
    check_server,
    port_error,
    read_checkpoint,
    resolve_server,
    scan_checkpoints,
    skip_reason,
)
from ponogan.cli import CommandParser  # noqa: E402
from ponogan.core.messages import (  # noqa: E402
    EXIT_STATUS_HELP,
    EXIT_USAGE,
    CommandError,
    UsageError,
    first_line,
    print_error,
)
from ponogan.core.runtime import resolve_device  # noqa: E402
from ponogan.data.image_io import is_within  # noqa: E402
from ponogan.sharing import resolve_run  # noqa: E402

ROOT = Path(__file__).resolve().parent
__all__ = ["CSS", "PAPER_MODE_LABEL", "build_app", "main"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = CommandParser(
        prog="app.py", description="ponogan translation app (Gradio)", epilog=EXIT_STATUS_HELP
    )
    parser.add_argument(
        "--checkpoint",
        help="run folder to open first, or a Hub repo id user/name (fetched into the Hugging Face cache; a "
        f"local folder of the same name wins) (default: checkpoints/{DEFAULT_DEMO})",
    )
    parser.add_argument(
        "--checkpoints-dir",
        default=str(ROOT / "checkpoints"),
        help="folder whose runs the picker lists (default: checkpoints/ beside app.py)",
    )
    parser.add_argument(
        "--host", help=f"address to serve on (default: $GRADIO_SERVER_NAME, else {DEFAULT_HOST})"
    )
    parser.add_argument("--port", type=int, help=f"port (default: $GRADIO_SERVER_PORT, else {DEFAULT_PORT})")
    parser.add_argument(
        "--share",
        action="store_true",
        help="also serve through a temporary public *.gradio.live link (needs internet)",
    )
    parser.add_argument("--device", help="cpu, cuda, mps (default: auto: CUDA, then MPS, else CPU)")
    parser.add_argument(
        "--max-pixels",
        type=int,
        default=APP_MAX_PIXELS,
        help=f"largest upload in pixels (default {APP_MAX_PIXELS})",
    )
    parser.add_argument("--concurrency", type=int, default=1, help="requests computed at once (default 1)")
    parser.add_argument(
        "--upload-max-age",
        type=int,
        default=UPLOAD_MAX_AGE_S,
        metavar="SECONDS",
        help="delete uploads and results from gradio's cache once they are this old "
        f"(default {UPLOAD_MAX_AGE_S}; checked every min(SECONDS, 300) s)",
    )
    return parser.parse_args(argv)


def collect_checkpoints(args: argparse.Namespace) -> tuple[dict[str, CheckpointInfo], str, dict[str, str]]:
    """The picker's runs by name, the name to open first, and the folders skipped as unreadable
    (`{name: reason}`); `ValueError` if there is nothing to open."""
    found, skipped = scan_checkpoints(args.checkpoints_dir)
    runs = {info.name: info for info in found}
    if args.checkpoint is not None:
        chosen = read_checkpoint(resolve_run(args.checkpoint, offline=USER_HUB_OFFLINE), str(args.checkpoint))
        for name, info in runs.items():
            if info.path.resolve() == chosen.path.resolve():
                return runs, name, skipped
        return {chosen.name: chosen, **runs}, chosen.name, skipped
    if not runs and not skipped:
        raise ValueError(f"no checkpoints under {args.checkpoints_dir}; pass --checkpoint RUN_DIR")
    return runs, DEFAULT_DEMO if DEFAULT_DEMO in runs else next(iter(runs), ""), skipped


def load_runs(args: argparse.Namespace, cache: PipelineCache) -> tuple[dict[str, CheckpointInfo], str]:
    """The runs that load (each loaded once, into `cache`) and the one to open first.

    A run that does not load, or whose config would break the page, is skipped with one warning line
    naming it and the reason: any exception counts (why: a broken or hostile run folder must not keep
    the app from serving the others). `ValueError` when an explicit `--checkpoint` does not load or
    when no run loads at all.
    """
    runs, default, broken = collect_checkpoints(args)
    good = {}
    for name, info in runs.items():  # a run can look complete and still not load (truncated weights)
        try:
            pipe = cache.get(info.path)
            check_run_view(info, pipe.directions)
        except Exception as err:  # noqa: BLE001 - per-run boundary: whatever loading it raised
            broken[name] = skip_reason(err)
        else:
            good[name] = info
    if args.checkpoint is not None and default in broken:
        raise ValueError(f"cannot load --checkpoint {args.checkpoint}: {broken[default]}")
    if not good:
        reasons = "; ".join(f"{name}: {reason}" for name, reason in broken.items())
        raise ValueError(
            f"no checkpoint under {args.checkpoints_dir} loads ({reasons}); pass --checkpoint RUN_DIR"
        )
    for name, reason in broken.items():
        print(f"app.py: warning: skipping checkpoint {name}: {reason}", file=sys.stderr)
    if default not in good:
        default = DEFAULT_DEMO if DEFAULT_DEMO in good else next(iter(good))
    return good, default


def check_args(args: argparse.Namespace) -> tuple[str, int, str]:
    """`(host, port, device)` to serve with, or `UsageError` for the first flag that cannot work, found
    before any model loads: a count under 1, a pixel limit no image fits, a device this machine lacks,
    a host that is not an address here, a port in use."""
    if args.concurrency < 1:
        raise UsageError(
            f"--concurrency must be at least 1 (requests computed at once), got {args.concurrency}"
        )
    if args.max_pixels < MIN_MAX_PIXELS:
        raise UsageError(
            f"--max-pixels must be at least {MIN_MAX_PIXELS} (a 64x64 image), got {args.max_pixels}"
        )
    if args.upload_max_age < 1:
        raise UsageError(f"--upload-max-age must be at least 1 second, got {args.upload_max_age}")
    try:
        device = resolve_device(args.device)
    except RuntimeError:  # torch.device's own error for a name it does not know
        raise UsageError(f"unknown device {args.device!r}; use auto, cpu, cuda, cuda:N or mps") from None
    except ValueError as err:  # runtime.resolve_device's one line (a kind this machine lacks...)
        raise UsageError(first_line(err)) from None
    host, port = resolve_server(args.host, args.port)
    check_server(host, port)  # before minutes of model loading, not after
    return host, port, device


@contextlib.contextmanager
def cache_emptied_on_signals(demo: gr.Blocks, examples_dir: Path):
    """While inside: SIGTERM and SIGINT first delete every upload and result gradio recorded for this
    app, and the examples folder, then go to the handler that was there before (SIGINT: Python's
    KeyboardInterrupt, which stops gradio; SIGTERM: the default, which ends the process).

    Why: Docker, systemd and Spaces stop a service with SIGTERM, whose default action skips gradio's own
    clean-up and `atexit`. Only files in gradio's record of this app are deleted (then their folders,
    when left empty), so other apps sharing `GRADIO_TEMP_DIR` keep theirs.
    """

    def empty_cache() -> None:
        folders = {Path(f).parent for files in demo.temp_file_sets for f in files}
        delete_files_created_by_app(demo, None)
        root = Path(get_upload_folder()).resolve()
        for folder in folders:
            with contextlib.suppress(OSError):  # not empty, or gone already
                if folder.resolve() != root and is_within(folder.resolve(), root):
                    folder.rmdir()
        shutil.rmtree(examples_dir, ignore_errors=True)

    def chain(previous):
        def handler(signum, frame):
            empty_cache()
            if callable(previous):
                previous(signum, frame)
            else:  # SIG_DFL: end the process the signal's default way, as the service manager expects
                signal.signal(signum, signal.SIG_DFL)
                os.kill(os.getpid(), signum)

        return handler

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    for sig, old in previous.items():
        if old not in (signal.SIG_IGN, None):  # an ignored signal stays ignored
            signal.signal(sig, chain(old))
    try:
        yield
    finally:
        for sig, old in previous.items():
            if old is not None:
                signal.signal(sig, old)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        host, port, device = check_args(args)
        cache = PipelineCache(capacity=2, device=device)
        runs, default = load_runs(args, cache)
        examples_dir = Path(tempfile.mkdtemp(prefix="ponogan-examples-"))
        atexit.register(shutil.rmtree, examples_dir, True)
        demo = build_app(
            runs,
            default,
            cache,
            max_pixels=args.max_pixels,
            upload_max_age=args.upload_max_age,
            examples_dir=examples_dir,
        )
    except (OSError, ValueError, CommandError) as err:  # CommandError: a Hub --checkpoint not fetched
        return print_error(err, EXIT_USAGE)
    demo.queue(default_concurrency_limit=args.concurrency, max_size=64)
    try:
        with cache_emptied_on_signals(demo, examples_dir):
            demo.launch(
                server_name=host,
                server_port=port,
                share=args.share,
                max_file_size="50mb",
                ssr_mode=False,
                footer_links=["api"],
                css=CSS,
            )
    except OSError as err:  # the port taken between the check and the launch
        message = port_error(host, port) if "port" in str(err).lower() else str(err).split(". ")[0]
        return print_error(message, EXIT_USAGE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
