"""``ponogan import-official``: the command line of ``ponogan.models.official`` (no torch at import)."""

from __future__ import annotations

from ponogan.core.run_folder import RunFolder
from ponogan.core.settings import OFFICIAL_ARCHS as ARCHS
from ponogan.core.settings import OFFICIAL_NORMS as NORMS


def add_arguments(parser) -> None:
    parser.description = (
        "Convert generator weights saved by the official CycleGAN/pix2pix code or the "
        "official PONO code into a ponogan run folder (for translate, eval, the app)."
    )
    parser.add_argument(
        "weights", nargs="+", help="latest_net_G.pth, or the pair latest_net_G_A.pth latest_net_G_B.pth"
    )
    parser.add_argument("--arch", required=True, choices=ARCHS, help="the official --netG")
    parser.add_argument(
        "--norm", default="instance", choices=NORMS, help="the official --norm (default instance)"
    )
    parser.add_argument(
        "--shortcut",
        default=None,
        choices=("ms", "dms"),
        help="official PONO code: ResnetPONOMSGenerator (ms) or ResnetPONODMSGenerator (dms)",
    )
    parser.add_argument("--out", required=True, help="new run folder to write (must not exist or be empty)")


def run(args) -> int:
    """Import; an ``OfficialImportError`` (a ``UsageError``) is printed by ``ponogan.cli`` as one line,
    exit status 2."""
    from ponogan.models.official import import_official

    out = import_official(args.weights, args.out, arch=args.arch, norm=args.norm, shortcut=args.shortcut)
    folder = RunFolder(out)
    print(
        f"wrote {folder.model} and {folder.config}; try: ponogan translate --checkpoint {out} "
        f"--input IMAGES --output OUT, or python app.py --checkpoint {out}"
    )
    return 0
