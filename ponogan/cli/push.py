"""``ponogan push RUN --repo user/name``: share a trained run on the Hugging Face Hub.

One commit carries the run's inference files (``config.json``, ``model.safetensors``), ``metrics.json``
and pictures when present, and the model card ``README.md``: the run folder's own if it has one, else
one generated into the upload (the run folder is never written to). The training state goes only with
``--with-state``. ``ponogan.sharing.push`` says exactly what is sent.

The endpoint, token and offline mode are the hub library's: ``HF_ENDPOINT``, ``HF_TOKEN`` or
``hf auth login``, ``HF_HUB_OFFLINE``. Only argparse is imported at the top (``--help`` stays instant).
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (parser.description + ". " if parser.description else "") + (
        "Uploads config.json, model.safetensors, metrics and pictures, and README.md: the run's own, else "
        "a generated model card (the run folder is not written to; a card edited on the Hub is kept). "
        "Hub settings: HF_TOKEN or `hf auth login`, HF_ENDPOINT."
    )
    parser.add_argument("run", metavar="RUN", help="run folder (config.json + model.safetensors)")
    parser.add_argument("--repo", required=True, help="Hub model repo id user/name (created if missing)")
    parser.add_argument("--private", action="store_true", help="create the repo private (a new repo only)")
    parser.add_argument(
        "--revision", help="branch to commit to, created from main if missing (default: main)"
    )
    parser.add_argument(
        "--with-state",
        action="store_true",
        help="also upload the newest training state (state/: pickled optimizer and RNG files, for --resume)",
    )
    parser.add_argument("--license", default="mit", help="license in the generated card (default: mit)")
    parser.add_argument("--message", help="commit message (default: Upload ponogan run RUN)")


def run(args: argparse.Namespace) -> int:
    from ponogan.sharing.push import push_run

    result = push_run(
        args.run,
        args.repo,
        private=args.private,
        revision=args.revision,
        with_state=args.with_state,
        license=args.license,
        commit_message=args.message,
    )
    if result.plan.card_generated:
        card = "generated model card"
    elif result.plan.card_kept:
        card = "the repo's own README.md kept"
    else:
        card = "the run's own README.md as the card"
    print(f"pushed {len(result.plan.files)} files to {result.repo_url} ({card}):", file=sys.stderr)
    for path in result.plan.files:
        print(f"  {path}", file=sys.stderr)
    print(result.commit_url)
    return 0
