"""`ponogan data`: write the built-in glyph data, download public datasets, combine A/B folders."""

from __future__ import annotations

import argparse
import sys
import time

from ponogan.core.messages import UsageError
from ponogan.data.download import KINDS, DownloadError, combine_ab, download_dataset
from ponogan.data.fonts import available_fonts
from ponogan.data.options import VARIANTS, DataOptions


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = DataOptions()
    sub = parser.add_subparsers(dest="data_command", metavar="{glyphs,preview,download,combine}")
    sub.required = True

    glyphs = sub.add_parser("glyphs", help="write the built-in glyph dataset to disk")
    glyphs.add_argument("--out", help="output folder, e.g. datasets/glyphs (required unless --list-fonts)")
    glyphs.add_argument(
        "--paired",
        action="store_true",
        help="aligned layout train/, test/ of A|B images (default: unaligned trainA/ ...)",
    )
    glyphs.add_argument("--size", type=int, default=defaults.image_size, help="image side in pixels")
    glyphs.add_argument(
        "--variant",
        choices=VARIANTS,
        default=defaults.variant,
        help="plain: black on white; hard: B with textured colour fill on clutter",
    )
    glyphs.add_argument("--seed", type=int, default=defaults.seed)
    glyphs.add_argument("--length", type=int, default=defaults.length, help="number of train items")
    glyphs.add_argument(
        "--test-jitters",
        type=int,
        default=defaults.test_jitters,
        help="placements per held-out test character",
    )
    glyphs.add_argument("--font-a", default=defaults.font_a, help="domain A font (name or .ttf path)")
    glyphs.add_argument("--font-b", default=defaults.font_b, help="domain B font (name or .ttf path)")
    glyphs.add_argument("--list-fonts", action="store_true", help="print the usable font names and exit")
    glyphs.add_argument(
        "--overwrite",
        action="store_true",
        help="write into a non-empty --out, replacing (and removing) only the files an earlier "
        "`ponogan data glyphs` wrote there (listed in its .ponogan-data-manifest.jsonl)",
    )

    preview = sub.add_parser("preview", help="save a PNG grid of glyph samples (plain and hard variants)")
    preview.add_argument("--out", required=True, help="PNG file to write")
    preview.add_argument("--size", type=int, default=defaults.image_size, help="image side in pixels")
    preview.add_argument("--count", type=int, default=8, help="samples per row")
    preview.add_argument("--seed", type=int, default=defaults.seed)

    download = sub.add_parser("download", help="download and unpack a public CycleGAN/pix2pix/DRIT dataset")
    download.add_argument("name", help="e.g. horse2zebra, maps, facades, edges2shoes, cat2dog, portrait")
    download.add_argument("--out", default="datasets", help="folder that receives <name>/")
    download.add_argument("--kind", choices=tuple(KINDS), help="needed for names in both lists")
    download.add_argument("--url", help="download from this URL instead (http(s):// or file://)")
    download.add_argument("--archive", help="unpack this local .zip/.tar.gz instead of downloading")
    download.add_argument("--timeout", type=float, default=30.0, help="network timeout in seconds")

    combine = sub.add_parser("combine", help="build aligned A|B images from two folders of paired images")
    combine.add_argument("--fold-a", required=True, help="folder of A images (may hold train/ val/ test/)")
    combine.add_argument("--fold-b", required=True, help="folder of B images with the same file names")
    combine.add_argument("--out", required=True, help="output folder of A|B images")


def run(args: argparse.Namespace) -> int:
    try:
        return _COMMANDS[args.data_command](args)
    except UsageError:  # ponogan.cli prints it as one line, exit 2
        raise
    except (DownloadError, ValueError) as err:
        print(f"ponogan data {args.data_command}: error: {err}", file=sys.stderr)
        return 1


def _glyphs(args: argparse.Namespace) -> int:
    if args.list_fonts:
        print("\n".join(available_fonts()))
        return 0
    if not args.out:
        raise ValueError("--out is required (the folder that receives the dataset)")
    options = DataOptions(
        image_size=args.size, paired=args.paired, variant=args.variant, seed=args.seed, length=args.length,
        test_jitters=args.test_jitters, font_a=args.font_a, font_b=args.font_b,
    )  # fmt: skip
    start = time.perf_counter()
    from ponogan.data.export import export_glyphs  # torch: only when rendering

    counts = export_glyphs(args.out, options, overwrite=args.overwrite)
    layout = "aligned (train/, test/)" if args.paired else "unaligned (trainA/, trainB/, testA/, testB/)"
    print(
        f"wrote {counts['train']} train and {counts['test']} test items to {args.out}, {layout} layout, "
        f"in {time.perf_counter() - start:.1f} s"
    )
    return 0


def _preview(args: argparse.Namespace) -> int:
    if args.count < 1:
        raise ValueError(f"--count must be positive, got {args.count}")
    from ponogan.data.export import glyph_preview

    grid = glyph_preview(DataOptions(image_size=args.size, seed=args.seed), count=args.count)
    grid.save(args.out, optimize=True)
    print(f"wrote {args.out} ({grid.width}x{grid.height})")
    return 0


def _download(args: argparse.Namespace) -> int:
    target = download_dataset(
        args.name, args.out, args.kind, url=args.url, archive=args.archive, timeout=args.timeout
    )
    print(f"dataset ready in {target}")
    return 0


def _combine(args: argparse.Namespace) -> int:
    count = combine_ab(args.fold_a, args.fold_b, args.out)
    print(f"wrote {count} A|B images to {args.out}")
    return 0


_COMMANDS = {"glyphs": _glyphs, "preview": _preview, "download": _download, "combine": _combine}
