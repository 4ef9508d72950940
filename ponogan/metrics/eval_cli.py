"""``ponogan eval``: score a folder of fakes against targets, or a trained run on a dataset split.

Exit status: 0 every requested metric was computed; 3 some were skipped (reasons printed, the rest
written) or ``--save-stats`` could not be written; 1 none could be computed (the report still lists
why); 2 bad arguments, missing folders, a folder without one readable image, an ``--out`` holding files
eval did not write, or an existing ``--save-stats`` file. Unreadable image files are skipped with one
warning and counted in the report.

``--real`` may be a pytorch-fid statistics file (``.npz``); ``--real DIR --save-stats FILE`` without
``--fake`` only writes the statistics. Under ``torchrun`` / ``accelerate launch`` the processes share the
work (:mod:`.distributed`) and only rank 0 prints and writes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ponogan.settings import DEFAULT_TEST_MODE, TEST_MODES

from .catalog import DEFAULT_METRICS, METRICS

EXIT_OK, EXIT_NOTHING, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3
# options handed to EvalConfig as they are
PASSED_OPTIONS = ("fid_weights", "lpips_weights", "lpips_net", "device", "batch_size", "cache_dir")
PASSED_OPTIONS += ("kid_subsets", "kid_subset_size", "save_stats", "save_stats_of", "save_features")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "exit status: 0 all metrics computed, 3 some skipped (e.g. missing weight files), "
        "1 none computed, 2 bad arguments"
    )
    folders = parser.add_argument_group("evaluate two folders")
    folders.add_argument(
        "--real",
        help="folder of target / real images, or a pytorch-fid statistics file (.npz with mu, sigma: "
        "then only FID, and KID if it holds features, are computed)",
    )
    folders.add_argument(
        "--fake", help="folder of generated images (paired with --real by relative path and stem)"
    )
    folders.add_argument("--input", help="folder of the inputs, for the grid (input | output | target)")
    folders.add_argument("--masks", help="folder of target glyph masks (nonzero = glyph) for iou/centroid")
    run = parser.add_argument_group("evaluate a trained run")
    run.add_argument(
        "--checkpoint", help="run folder (config.json + model.safetensors) or its model.safetensors"
    )
    run.add_argument("--data", help="dataset root folder, or 'glyphs' for the built-in glyph data")
    run.add_argument("--split", default="test", help="dataset phase to translate (default test)")
    run.add_argument("--direction", default="AtoB", choices=("AtoB", "BtoA"), help="translation direction")
    run.add_argument(
        "--n-styles",
        "--num-styles",
        dest="num_styles",
        type=int,
        default=4,
        help="MUNIT: samples per input for diversity (default 4)",
    )
    run.add_argument(
        "--seed", type=int, default=0, help="seed of MUNIT's styles and of paper mode's dropout (default 0)"
    )
    run.add_argument(
        "--test-mode",
        choices=TEST_MODES,
        help="eval (default): BatchNorm running statistics, no dropout; paper: the pix2pix paper's test "
        "time, BatchNorm with each image's statistics and dropout on (matters for U-Net/BatchNorm models)",
    )
    run.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the images of an earlier evaluation in --out (only files eval listed in its manifest)",
    )
    run.add_argument(
        "--record", action="store_true", help="also merge the metrics into the run's config.json"
    )
    parser.add_argument(
        "--out",
        "--output",
        dest="out",
        help="output folder for metrics.json, metrics.md, grid.png (required unless only --save-stats)",
    )
    parser.add_argument(
        "--metrics",
        default=",".join(DEFAULT_METRICS),
        help=f"comma-separated, from {', '.join(METRICS)} or 'all' (default {','.join(DEFAULT_METRICS)})",
    )
    parser.add_argument(
        "--fid-weights", help="pt_inception-2015-12-05-6726825d.pth (default: torch hub cache)"
    )
    parser.add_argument("--lpips-weights", help="torchvision backbone file, e.g. alexnet-owt-7be5be79.pth")
    parser.add_argument(
        "--lpips-net", default="alex", choices=("alex", "vgg", "squeeze"), help="LPIPS backbone"
    )
    parser.add_argument("--device", help="cpu, cuda, cuda:1, mps (default: auto: CUDA, then MPS, else CPU)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per batch for FID features")
    parser.add_argument("--cache-dir", help="FID statistics cache (default ~/.cache/ponogan/fid)")
    stats = parser.add_argument_group("statistics files (pytorch-fid format) and KID")
    stats.add_argument(
        "--save-stats",
        metavar="FILE.npz",
        help="also write the Inception statistics (mu, sigma) of --real (or, with a .npz --real, of "
        "--fake) to this new file; never overwrites. --real DIR --save-stats FILE alone only writes it",
    )
    stats.add_argument(
        "--save-stats-of",
        choices=("real", "fake"),
        help="which side --save-stats saves; unset: real, or fake when --real is a .npz",
    )
    stats.add_argument(
        "--save-features",
        action="store_true",
        help="also store the features (N x 2048, float32) in the --save-stats file, so KID can use it",
    )
    stats.add_argument("--kid-subsets", type=int, default=100, help="KID: number of random subsets")
    stats.add_argument(
        "--kid-subset-size", type=int, default=1000, help="KID: images per subset (at most the smaller set)"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _error(message: str, group=None) -> int:
    if group is None or group.is_main:
        print(f"ponogan eval: {message}", file=sys.stderr)
    return EXIT_USAGE


def _indented(text: str) -> str:
    """A multi-line message under its heading: each line on its own line, indented."""
    return "\n  " + text.replace("\n", "\n  ")


def _eval_config(args: argparse.Namespace, real, fake, input=None, masks=None, grid_labels=None):
    """The folder evaluation config for ``real``/``fake`` (and optional ``input``/``masks``) folders."""
    from .folder_eval import EvalConfig

    return EvalConfig(
        real=real,
        fake=fake,
        out=Path(args.out),
        input=input,
        masks=masks,
        metrics=(args.metrics,),
        progress=not args.no_progress,
        grid_labels=grid_labels,
        **{name: getattr(args, name) for name in PASSED_OPTIONS},
    )


def _checkpoint_config(args: argparse.Namespace, metrics: list[str], group):
    """Translate the run's split into ``--out`` and return the folder evaluation config and notes."""
    from ponogan.distributed import process_device
    from ponogan.pipeline import TranslationPipeline

    from .run_eval import PAIRED_MODES, dataset_for_run, translate_split

    test_mode = args.test_mode or DEFAULT_TEST_MODE
    device = process_device(args.device, group)
    pipe = TranslationPipeline.from_pretrained(args.checkpoint, device=device, test_mode=test_mode)
    dataset, mode = dataset_for_run(pipe.config, args.data, args.split)
    split = translate_split(
        pipe,
        dataset,
        args.out,
        paired=mode in PAIRED_MODES,
        direction=args.direction,
        num_styles=args.num_styles if "diversity" in metrics else 1,
        seed=args.seed,
        progress=not args.no_progress,
        overwrite=args.overwrite,
        group=group,
    )
    config = _eval_config(args, split.real, split.fake, split.input, split.masks, split.grid_labels)
    notes = [
        f"checkpoint {args.checkpoint} ({pipe.family}), data {args.data} ({mode}, split {args.split}, "
        f"{split.num_items} items, {args.direction}), test mode {test_mode}"
        + (f" (seed {args.seed})" if test_mode == "paper" and pipe.test_mode_matters else "")
    ]
    return config, notes


def _save_stats_only(args: argparse.Namespace, group) -> int:
    """``--real DIR --save-stats FILE`` without ``--fake``: write the folder's statistics, nothing else."""
    from .folder_eval import save_folder_statistics
    from .weights import MissingWeightsError

    try:
        path, count, unreadable = save_folder_statistics(
            args.real,
            args.save_stats,
            fid_weights=args.fid_weights,
            device=args.device,
            with_features=args.save_features,
            batch_size=args.batch_size,
            cache_dir=args.cache_dir,
            progress=not args.no_progress,
        )
    except MissingWeightsError as err:
        if group.is_main:
            print("ponogan eval: cannot write --save-stats:" + _indented(str(err)), file=sys.stderr)
        return EXIT_NOTHING
    except (OSError, ValueError, TypeError) as err:
        return _error(str(err), group)
    if group.is_main:
        _warn_unreadable(unreadable, where="")
        content = "mu, sigma, features" if args.save_features else "mu, sigma"
        print(f"wrote {path} ({content}) of {count} images in {args.real}")
    return EXIT_OK


def _warn_unreadable(unreadable, where: str = " (see metrics.md)") -> None:
    from .folder_eval import list_unreadable

    if unreadable:
        shown = list_unreadable(unreadable, 5, where)
        print(
            f"ponogan eval: warning: skipped {len(unreadable)} unreadable image(s): {shown}", file=sys.stderr
        )


def run(args: argparse.Namespace) -> int:
    from ponogan.distributed import current_group, shutdown

    try:
        return _run(args, current_group())
    finally:
        shutdown()


def _run(args: argparse.Namespace, group) -> int:
    from .catalog import parse_metrics
    from .folder_eval import evaluate_folders

    def error(message: str) -> int:
        return _error(message, group)

    try:
        metrics = parse_metrics(args.metrics)
    except ValueError as err:
        return error(str(err))
    folder_mode = args.real is not None or args.fake is not None
    run_mode = args.checkpoint is not None or args.data is not None
    if folder_mode == run_mode:
        return error("give either --real DIR --fake DIR, or --checkpoint RUN --data ROOT|glyphs")
    if folder_mode and args.real is not None and args.fake is None and args.save_stats is not None:
        if args.out is not None or args.save_stats_of == "fake":
            return error(
                "--real DIR --save-stats FILE without --fake only writes the folder's statistics: "
                "drop --out / --save-stats-of, or add --fake DIR to evaluate"
            )
        return _save_stats_only(args, group)
    if folder_mode and (args.real is None or args.fake is None):
        return error("folder evaluation needs both --real and --fake")
    if run_mode and (args.checkpoint is None or args.data is None):
        return error("run evaluation needs both --checkpoint and --data")
    if args.out is None:
        return error("--out is required: the folder for metrics.json, metrics.md and grid.png")
    if folder_mode and args.test_mode is not None:
        return error("--test-mode applies to --checkpoint evaluation (folders are scored as they are)")
    if args.num_styles < 2 and "diversity" in metrics:
        return error("--num-styles must be at least 2 for diversity")
    if (args.save_stats_of is not None or args.save_features) and args.save_stats is None:
        return error("--save-stats-of and --save-features go with --save-stats FILE")
    try:
        if args.save_stats is not None:  # before a possibly long translation
            from .stats_file import check_new_file

            check_new_file(args.save_stats)
        if run_mode:
            config, notes = _checkpoint_config(args, metrics, group)
        else:
            config = _eval_config(args, args.real, args.fake, args.input, args.masks)
            notes = []
        result = evaluate_folders(config, notes=notes)
    except (OSError, ValueError, TypeError) as err:
        return error(str(err))

    if group.is_main:
        _warn_unreadable(result.unreadable)
        for name, reason in result.skipped.items():
            print(f"ponogan eval: skipped {name}:" + _indented(reason), file=sys.stderr)
        if result.stats_error is not None:
            message = _indented(result.stats_error)
            print(f"ponogan eval: could not write --save-stats {args.save_stats}:{message}", file=sys.stderr)
        print(result.files["markdown"].read_text(encoding="utf-8"))
        written = [*result.files.values(), *([result.stats_file] if result.stats_file else [])]
        print("wrote " + ", ".join(str(p) for p in written))
        if run_mode and args.record and result.metrics:
            from .run_eval import record_metrics_in_run

            print(f"recorded metrics in {record_metrics_in_run(args.checkpoint, result.metrics)}")
    if not result.metrics:
        return EXIT_NOTHING
    return EXIT_PARTIAL if result.skipped or result.stats_error is not None else EXIT_OK
