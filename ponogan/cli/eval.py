"""``ponogan eval``: score a folder of fakes against targets, or a trained run on a dataset split.

Exit status (``ponogan.core.messages``): 0 every requested metric was computed; 1 some inputs failed: a
metric was skipped (a weight file missing from the hub cache, no pairs, images too small; the reasons are
printed and listed in ``metrics.md``, the rest is written), none could be computed, ``--save-stats``
could not be written, or writing failed; 2 a usage error, found before anything is written: a bad
flag or setting (``--batch-size 0``, an unknown metric or device), a missing, empty or unreadable
folder or file (``--fid-weights`` that is not a plain weights file, a ``--real`` ``.npz`` that is not a
statistics file), ``--out`` overlapping a folder eval reads, ``--masks`` matching no pair, an ``--out``
holding files eval did not write, or an existing ``--save-stats`` file. Unreadable image files are
skipped with one warning and counted in the report. Every error is one ``error: ...`` line.

``--real`` may be a pytorch-fid statistics file (``.npz``); ``--real DIR --save-stats FILE`` without
``--fake`` only writes the statistics. Under ``torchrun`` / ``accelerate launch`` the processes share the
work (:mod:`.distributed`) and only rank 0 prints and writes.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ponogan.core.messages import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    UsageError,
    exit_status,
    first_line,
    print_error,
)
from ponogan.core.settings import DEFAULT_TEST_MODE, TEST_MODES
from ponogan.data.image_io import is_within
from ponogan.metrics.catalog import DEFAULT_METRICS, METRICS
from ponogan.sharing import is_repo_id, resolve_run

# options handed to EvalConfig as they are
PASSED_OPTIONS = ("fid_weights", "lpips_weights", "lpips_net", "device", "batch_size", "cache_dir")
PASSED_OPTIONS += ("kid_subsets", "kid_subset_size", "save_stats", "save_stats_of", "save_features")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (parser.description + ". " if parser.description else "") + (
        "Exit status 1 also when a requested metric was skipped (e.g. a weight file missing from the "
        "hub cache): the reasons are printed and the other metrics written."
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
        "--checkpoint",
        help="run folder (config.json + model.safetensors) or its model.safetensors, or a Hub repo id "
        "user/name (fetched into the Hugging Face cache; a local folder of the same name wins)",
    )
    run.add_argument("--revision", help="branch, tag or commit of a Hub --checkpoint (default: main)")
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


# what the evaluation library raises for what the user gave, before it writes anything (see
# ``evaluate_folders``): a usage error
USAGE_ERRORS = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError)
FID_METRICS = ("fid", "kid")  # read --fid-weights
LPIPS_METRICS = ("lpips", "diversity")  # read --lpips-weights
MASK_METRICS = ("iou", "centroid")  # read --masks (folder_eval.STRUCTURE_METRICS, without importing torch)
# option -> the least value that makes sense, and why
LEAST_VALUES = {
    "batch_size": (1, ""),
    "kid_subsets": (1, ""),
    "kid_subset_size": (2, " (KID compares pairs of images within a subset)"),
    "num_styles": (1, ""),
}

# why --out must stay apart from a folder eval reads: by option, else by how they overlap (_relation)
OUT_CLASH = {
    "--checkpoint": "eval's images and report would mix with the run's own files",
    "--data": "eval's images would become part of the dataset",
    "is": "its grid.png and report would land among the images it reads, and be scored next time",
    "is inside": "its grid.png and report would land among the images it reads, and be scored next time",
    "contains": "the folder eval writes into must not hold the images it reads",
}


def _flag(name: str) -> str:
    return "--" + {"num_styles": "n-styles"}.get(name, name.replace("_", "-"))


def _warn(message: str, group) -> None:
    """One ``warning: ...`` line on stderr (rank 0 only)."""
    if group.is_main:
        print("warning: " + " ".join(message.split()), file=sys.stderr)


def _eval_config(args: argparse.Namespace, real, fake, input=None, masks=None, grid_labels=None):
    """The folder evaluation config for ``real``/``fake`` (and optional ``input``/``masks``) folders."""
    from ponogan.metrics.folder_eval import EvalConfig

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
    from ponogan.core.distributed import process_device
    from ponogan.inference.pipeline import TranslationPipeline
    from ponogan.metrics.run_eval import PAIRED_MODES, dataset_for_run, translate_split

    test_mode = args.test_mode or DEFAULT_TEST_MODE
    device = process_device(args.device, group)
    pipe = TranslationPipeline.from_pretrained(args.checkpoint, device=device, test_mode=test_mode)
    try:
        pipe.route(args.direction)
    except ValueError as err:
        raise UsageError(f"--direction: {first_line(err)}") from None
    if "diversity" in metrics and not getattr(pipe, "multimodal", False):
        raise UsageError(
            f"diversity needs several styles per input, and {args.checkpoint} is a {pipe.family} run "
            "(one output per input): drop diversity from --metrics, or evaluate a MUNIT run"
        )
    dataset, mode = dataset_for_run(pipe.config, args.data, args.split)
    if len(dataset) == 0:
        raise UsageError(
            f"--data {args.data} has no items in split {args.split!r} ({mode} data): choose the --split "
            "that holds the test images (e.g. test or val)"
        )
    try:
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
    except (ValueError, RuntimeError) as err:  # images may be written by now: an input failed (exit 1)
        raise CommandError(f"translating the {args.split} split failed: {first_line(err)}") from None
    config = _eval_config(args, split.real, split.fake, split.input, split.masks, split.grid_labels)
    notes = [
        f"checkpoint {args.checkpoint} ({pipe.family}), data {args.data} ({mode}, split {args.split}, "
        f"{split.num_items} items, {args.direction}), test mode {test_mode}"
        + (f" (seed {args.seed})" if test_mode == "paper" and pipe.test_mode_matters else "")
    ]
    return config, notes


def _save_stats_only(args: argparse.Namespace, group) -> int:
    """``--real DIR --save-stats FILE`` without ``--fake``: write the folder's statistics, nothing else."""
    from ponogan.metrics.folder_eval import save_folder_statistics
    from ponogan.metrics.weights import MissingWeightsError

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
    except MissingWeightsError as err:  # the hub cache lacks the file (a given path was checked before)
        raise CommandError(f"cannot write --save-stats: {err}") from None
    if group.is_main:
        _warn_unreadable(unreadable, group, where="")
        content = "mu, sigma, features" if args.save_features else "mu, sigma"
        print(f"wrote {path} ({content}) of {count} images in {args.real}")
    return EXIT_OK


def _warn_unreadable(unreadable, group, where: str = " (see metrics.md)") -> None:
    from ponogan.metrics.folder_eval import list_unreadable

    if unreadable:
        shown = list_unreadable(unreadable, 5, where)
        _warn(f"skipped {len(unreadable)} unreadable image(s): {shown}", group)


def run(args: argparse.Namespace) -> int:
    """``ponogan eval``: every failure is one ``error:`` line (rank 0) and its exit status."""
    from ponogan.core.distributed import current_group, shutdown

    group = current_group()

    def fail(message, status: int) -> int:
        if group.is_main:
            print_error(message, status)
        return status

    try:
        return _run(args, group)
    except (UsageError, CommandError) as err:
        return fail(err, exit_status(err))
    except USAGE_ERRORS as err:
        return fail(err, EXIT_USAGE)
    except OSError as err:  # writing the report, the images or the cache failed
        return fail(f"writing failed: {first_line(err)}; check that --out can be written", EXIT_FAILED)
    finally:
        shutdown()


def _parse_metrics(spec: str) -> list[str]:
    from ponogan.metrics.catalog import METRICS, parse_metrics

    if not spec.replace(",", "").strip():
        raise UsageError(f"--metrics is empty: name one or more of {', '.join(METRICS)}, or all")
    try:
        return parse_metrics(spec)
    except ValueError as err:
        raise UsageError(f"--metrics: {err}") from None


def _check_device(device: str | None) -> None:
    """``UsageError`` when ``--device`` is not a device name or is not available here."""
    if device is None:
        return
    import torch

    from ponogan.core.runtime import resolve_device

    try:
        resolved = torch.device(resolve_device(device))
    except RuntimeError:  # torch.device's own refusal lists every backend torch knows
        raise UsageError(
            f"--device {device!r} is not a device name: use auto, cpu, cuda, cuda:<index> or mps"
        ) from None
    except ValueError as err:
        raise UsageError(f"--device {device}: {first_line(err)}") from None
    if resolved.type == "cuda" and resolved.index is not None:
        count = torch.cuda.device_count()
        if resolved.index >= count:
            raise UsageError(
                f"--device {device}: this machine has {count} CUDA device(s) (cuda:0 .. cuda:{count - 1})"
            )


def _check_settings(args: argparse.Namespace, metrics: list[str]) -> None:
    """Numbers and names that make no sense, refused before anything runs."""
    for name, (least, why) in LEAST_VALUES.items():
        value = getattr(args, name)
        if value < least:
            raise UsageError(f"{_flag(name)} must be at least {least}{why}, got {value}")
    if not 0 <= args.seed < 2**63:  # torch's generators take a 64-bit seed
        raise UsageError(f"--seed must be between 0 and 2**63 - 1, got {args.seed}")
    if args.num_styles < 2 and "diversity" in metrics:
        raise UsageError("--n-styles must be at least 2 for diversity (it compares outputs of one input)")
    if (args.save_stats_of is not None or args.save_features) and args.save_stats is None:
        raise UsageError("--save-stats-of and --save-features go with --save-stats FILE")
    _check_device(args.device)
    for flag, path, folder in (
        ("--out", args.out, True),
        ("--cache-dir", args.cache_dir, True),
        ("--save-stats", args.save_stats, False),
    ):
        if path is not None:
            _check_writable(flag, Path(path), folder=folder)


def _check_writable(flag: str, path: Path, *, folder: bool) -> None:
    """``UsageError`` when ``path`` (a folder, or a file when not ``folder``) cannot be written: a folder
    that is a file, or a nearest existing parent that is a file or not writable."""
    if folder and path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {path} is a file: give a folder")
    start = path if folder else path.parent
    ancestor = next((p for p in (start, *start.parents) if p.exists()), None)
    if ancestor is None:
        return
    if not ancestor.is_dir():
        raise UsageError(f"{flag} {path}: {ancestor} is a file, so nothing can be written under it")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path}: {ancestor} is not writable; choose a place you can write to")


def _relation(path: str, folder: str) -> str | None:
    """How ``path`` lies to ``folder`` (links resolved): "is", "is inside", "contains", or None."""
    if is_within(path, folder):
        return "is" if is_within(folder, path) else "is inside"
    return "contains" if is_within(folder, path) else None


def _check_apart(
    folders: dict[str, str | None], out: str, *, pairwise: bool = True, out_may_contain: tuple[str, ...] = ()
) -> None:
    """``UsageError`` when two image folders eval reads overlap (one is, holds or is inside the other;
    with ``pairwise``), or when ``--out`` overlaps one of them (``out_may_contain``: folders that
    ``--out`` may hold)."""
    named = {flag: str(path) for flag, path in folders.items() if path is not None}
    flags = list(named) if pairwise else []
    for i, first in enumerate(flags):
        for second in flags[i + 1 :]:
            relation = _relation(named[first], named[second])
            if relation == "is":
                why = (
                    "each fake would be scored against itself"
                    if {first, second} == {"--real", "--fake"}
                    else f"{second} must hold other images than {first}"
                )
                raise UsageError(
                    f"{first} and {second} are the same folder ({named[first]}): {why}; give {second} "
                    "its own folder"
                )
            if relation is not None:
                inner, outer = (first, second) if relation == "is inside" else (second, first)
                raise UsageError(
                    f"{inner} {named[inner]} is inside {outer} {named[outer]}: {outer}'s images would "
                    f"include {inner}'s; give folders apart from each other"
                )
    for flag, folder in named.items():
        relation = _relation(out, folder)
        if relation is None or (relation == "contains" and flag in out_may_contain):
            continue
        why = OUT_CLASH.get(flag, OUT_CLASH[relation])
        raise UsageError(
            f"--out {out} {relation} the {flag} folder {folder}: {why}; choose an --out apart from "
            f"{', '.join(named)}"
        )


def _check_folders(args: argparse.Namespace, metrics: list[str]) -> None:
    """Folder mode: the folders are apart from each other and from ``--out``; ``--masks`` has a use."""
    from ponogan.metrics.stats_file import is_stats_file

    if args.masks is not None and not set(metrics) & set(MASK_METRICS):
        raise UsageError(
            f"--masks gives the target masks of {' and '.join(MASK_METRICS)}: add them to --metrics, or "
            "drop --masks"
        )
    for flag, given in (("--overwrite", args.overwrite), ("--record", args.record)):
        if given:
            raise UsageError(f"{flag} applies to --checkpoint evaluation (folders are scored as they are)")
    real = None if is_stats_file(args.real) else args.real
    folders = {"--real": real, "--fake": args.fake, "--masks": args.masks, "--input": args.input}
    _check_apart(folders, args.out)


def _check_run(args: argparse.Namespace) -> None:
    """Run mode: the folder options belong to folder mode; ``--out`` is not inside the data or the run."""
    for flag, given in (("--input", args.input), ("--masks", args.masks)):
        if given is not None:
            raise UsageError(
                f"{flag} goes with --real/--fake; a --checkpoint evaluation writes its own input/ and mask/"
            )
    if args.record and is_repo_id(args.checkpoint):
        raise UsageError(
            f"--record writes into the run folder; {args.checkpoint} is a Hub repo: drop --record"
        )
    args.checkpoint = str(resolve_run(args.checkpoint, args.revision))  # a Hub id -> its cached snapshot
    run = Path(args.checkpoint)
    if not run.exists():
        raise UsageError(
            f"--checkpoint {run} does not exist: give a run folder (config.json + model.safetensors) "
            "or its model.safetensors"
        )
    run = run.parent if run.is_file() else run
    folders = {"--checkpoint": str(run), "--data": None if args.data == "glyphs" else args.data}
    _check_apart(folders, args.out, pairwise=False, out_may_contain=("--checkpoint", "--data"))


def _check_weights(args: argparse.Namespace, metrics: list[str]) -> None:
    """A ``--fid-weights`` / ``--lpips-weights`` file a requested metric reads must exist and be a plain
    weights file (nothing is unpickled): ``UsageError`` / ``MissingWeightsError`` otherwise."""
    from ponogan.metrics.weights import FID_INCEPTION, LPIPS_BACKBONES, check_weights_file

    if args.fid_weights is not None and (set(metrics) & set(FID_METRICS) or args.save_stats is not None):
        check_weights_file(FID_INCEPTION, args.fid_weights)
    if args.lpips_weights is not None and set(metrics) & set(LPIPS_METRICS):
        check_weights_file(LPIPS_BACKBONES[args.lpips_net], args.lpips_weights)


def _run(args: argparse.Namespace, group) -> int:
    from ponogan.metrics.folder_eval import evaluate_folders
    from ponogan.metrics.stats_file import check_new_file, is_stats_file

    metrics = _parse_metrics(args.metrics)
    folder_mode = args.real is not None or args.fake is not None
    run_mode = args.checkpoint is not None or args.data is not None
    if folder_mode == run_mode:
        raise UsageError("give either --real DIR --fake DIR, or --checkpoint RUN --data ROOT|glyphs")
    if folder_mode and args.real is not None and args.fake is None and args.save_stats is not None:
        if args.out is not None or args.save_stats_of == "fake" or args.input or args.masks:
            raise UsageError(
                "--real DIR --save-stats FILE without --fake only writes the folder's statistics: "
                "drop --out / --save-stats-of / --input / --masks, or add --fake DIR to evaluate"
            )
        if is_stats_file(args.real):
            raise UsageError(f"--real {args.real} is already a statistics file: give the image folder")
        _check_settings(args, metrics)
        check_new_file(args.save_stats)
        _check_weights(args, ["fid"])
        return _save_stats_only(args, group)
    if folder_mode and (args.real is None or args.fake is None):
        raise UsageError("folder evaluation needs both --real and --fake")
    if run_mode and (args.checkpoint is None or args.data is None):
        raise UsageError("run evaluation needs both --checkpoint and --data")
    if args.out is None:
        raise UsageError("--out is required: the folder for metrics.json, metrics.md and grid.png")
    if folder_mode and args.test_mode is not None:
        raise UsageError("--test-mode applies to --checkpoint evaluation (folders are scored as they are)")
    _check_settings(args, metrics)
    if folder_mode:
        _check_folders(args, metrics)
    else:
        _check_run(args)
    _check_weights(args, metrics)
    if args.save_stats is not None:  # before a possibly long translation
        check_new_file(args.save_stats)
    if run_mode:
        config, notes = _checkpoint_config(args, metrics, group)
    else:
        config = _eval_config(args, args.real, args.fake, args.input, args.masks)
        notes = []
    result = evaluate_folders(config, notes=notes)

    if group.is_main:
        _warn_unreadable(result.unreadable, group)
        for warning in result.warnings:
            _warn(warning, group)
        for name, reason in result.skipped.items():
            _warn(f"skipped {name}: {reason}", group)
        if result.stats_error is not None:
            _warn(f"could not write --save-stats {args.save_stats}: {result.stats_error}", group)
        print(result.files["markdown"].read_text(encoding="utf-8"))
        written = [*result.files.values(), *([result.stats_file] if result.stats_file else [])]
        print("wrote " + ", ".join(str(p) for p in written))
        if run_mode and args.record and result.metrics:
            from ponogan.metrics.run_eval import record_metrics_in_run

            print(f"recorded metrics in {record_metrics_in_run(args.checkpoint, result.metrics)}")
    if not result.metrics or result.skipped or result.stats_error is not None:
        return EXIT_FAILED
    return EXIT_OK
