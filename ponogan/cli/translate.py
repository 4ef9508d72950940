"""`ponogan translate`: the command line of `ponogan.inference.translate` (flags, checks before any
image, the report). The module doc of `ponogan.inference.translate` says what a run guarantees."""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

from ponogan.core.messages import CommandError, UsageError, first_line
from ponogan.core.settings import MAX_ASPECT, MAX_PROCESSED_PIXELS, TEST_MODES
from ponogan.data.image_io import is_within, load_image
from ponogan.inference.translate import (
    OUTPUT_FORMATS,
    Report,
    TranslateOptions,
    check_writable,
    collect_inputs,
    input_root,
    plan_jobs,
    sweep_partials,
    translate_jobs,
)
from ponogan.sharing import resolve_run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint",
        required=True,
        help="run folder or its model.safetensors, or a Hub repo id user/name (fetched into the Hugging "
        "Face cache; a local folder of the same name wins)",
    )
    parser.add_argument("--revision", help="branch, tag or commit of a Hub --checkpoint (default: main)")
    parser.add_argument(
        "--input",
        required=True,
        help="an image, a folder (walked recursively) or a glob such as 'photos/**/*.jpg'",
    )
    parser.add_argument(
        "--output",
        "--out",
        dest="output",
        required=True,
        help="output folder; relative paths are kept. It must not be the input folder; a "
        "folder inside the input folder is allowed and left out of the inputs. A run "
        "that would write over an input image is refused",
    )
    parser.add_argument("--direction", default="AtoB", choices=("AtoB", "BtoA"), help="BtoA: CycleGAN, MUNIT")
    parser.add_argument(
        "--batch-size",
        type=int,
        help="images per forward pass (default: 1 on CPUs, where larger batches are slower, 8 on CUDA "
        "GPUs, 4 on MPS)",
    )
    parser.add_argument(
        "--size", help="resize first: 256 sets the shorter side, 320x240 an exact size (default: keep)"
    )
    parser.add_argument(
        "--n-styles", type=int, default=1, help="MUNIT, DRIT: random styles per input (default 1)"
    )
    parser.add_argument(
        "--style",
        metavar="REF.png",
        help="MUNIT, DRIT: translate every input with the style (attributes) of this target-domain image",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="MUNIT: seed of the random styles, paper mode: of the dropout; 0 to 2**64 - 1 (default 0)",
    )
    parser.add_argument(
        "--test-mode",
        default="eval",
        choices=TEST_MODES,
        help="eval (default): BatchNorm running statistics, no dropout; paper: pix2pix's "
        "test time, BatchNorm with each image's statistics and dropout on (--seed)",
    )
    parser.add_argument(
        "--device",
        help="cpu, cuda, cuda:1, mps (default: CUDA when visible, then MPS, else CPU; under "
        "torchrun/accelerate launch each process takes its local GPU and a share of the "
        "inputs)",
    )
    parser.add_argument(
        "--dtype",
        "--mixed-precision",
        dest="dtype",
        choices=("float32", "no", "bf16", "fp16"),  # `no` (= float32) as train's --mixed-precision
        help="compute precision; bf16/fp16 run under autocast (default: bf16 on CUDA GPUs, fp16 on "
        "those without bf16, bf16 on CPUs with native bf16, else float32; docs/benchmarks.md has the "
        "measured differences)",
    )
    parser.add_argument("--format", default="png", choices=sorted(OUTPUT_FORMATS), help="output format")
    parser.add_argument("--workers", type=int, default=2, help="image decoding threads (default 2)")
    parser.add_argument(
        "--max-pixels",
        type=int,
        default=MAX_PROCESSED_PIXELS,
        help="refuse images the network would process at more pixels than this, after "
        "--size and padding to the model's stride; also caps the pixels of a batch. "
        "The default (2,097,152) fits Full HD: peak memory 2.5 GB for a ResNet-9, 4.7 GB for MUNIT "
        "at float32 on CPU, +1-2 GB per extra megapixel",
    )
    parser.add_argument(
        "--max-aspect",
        type=float,
        default=MAX_ASPECT,
        help="refuse images whose longer side exceeds this multiple of the shorter, after --size",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="translate again even if outputs exist (input images are never overwritten)",
    )


def check_numbers(args: argparse.Namespace) -> None:
    """`UsageError` for a count or limit below 1 (or not a number: `--max-aspect nan` would switch the
    aspect guard off) and a seed outside what the random generators take."""
    from ponogan.inference.pipeline import check_seed

    for name in ("batch_size", "n_styles", "workers", "max_pixels", "max_aspect"):
        value = getattr(args, name)
        if not (math.isfinite(value) and value >= 1):
            raise UsageError(f"--{name.replace('_', '-')} must be a number >= 1, got {value}")
    try:
        check_seed(args.seed)
    except ValueError as err:
        raise UsageError(f"--{err}") from None


def run(args: argparse.Namespace) -> int:
    """Translate; under ``torchrun``/``accelerate launch`` each process takes every N-th image.

    A usage error (a bad flag, checkpoint or folder, found before anything is written) raises
    `UsageError` (exit 2); no input found raises `CommandError` (exit 1); ``ponogan.cli`` prints either
    as one line. Returns 1 when some inputs failed, else 0."""
    from ponogan.core.distributed import current_group, process_device, shutdown
    from ponogan.core.runtime import default_inference_settings, resolve_device  # torch from here on

    group = current_group()
    try:
        device = resolve_device(process_device(args.device, group))
        defaults = default_inference_settings(device)
        args.batch_size = defaults["batch_size"] if args.batch_size is None else args.batch_size
        args.dtype = defaults["dtype"] if args.dtype is None else args.dtype
        check_numbers(args)
        return _run(args, device, group)
    finally:
        shutdown()


def options(args: argparse.Namespace) -> TranslateOptions:
    """The flags that say how each image is processed."""
    return TranslateOptions(
        direction=args.direction,
        size=args.size,
        format=args.format,
        max_pixels=args.max_pixels,
        max_aspect=args.max_aspect,
        batch_size=args.batch_size,
        seed=args.seed,
        n_styles=args.n_styles,
        workers=args.workers,
        style=getattr(args, "style_image", None),
    )


def _run(args: argparse.Namespace, device: str, group) -> int:
    from ponogan.inference.images import parse_size
    from ponogan.inference.pipeline import TranslationPipeline

    output, root = Path(args.output), input_root(args.input)
    if output.exists() and not output.is_dir():
        raise UsageError(f"--output {output} is a file; give a folder to write the translations into")
    if root is not None and os.path.realpath(output) == os.path.realpath(root):
        raise UsageError(
            f"--output {output} is the input folder: choose another folder (a new folder "
            "inside the input folder is fine: it is left out of the inputs)"
        )
    try:
        parse_size(args.size)
    except ValueError as err:
        raise UsageError(f"--size: {err}") from None
    inside = root is not None and is_within(output, root)
    inputs = collect_inputs(args.input, exclude=[output] if inside else [])
    if not inputs:
        raise CommandError(f"no images found at {args.input!r}: give an image, a folder or a glob")
    if inside:
        print(
            f"note: the output folder {output} is inside the input folder; its files are not taken as inputs",
            file=sys.stderr,
        )
    args.checkpoint = resolve_run(args.checkpoint, args.revision)  # a Hub id -> its cached snapshot
    try:
        pipe = TranslationPipeline.from_pretrained(
            args.checkpoint, device=device, dtype=args.dtype, test_mode=args.test_mode
        )
        pipe.route(args.direction)
        if (args.n_styles != 1 or args.style) and not pipe.multimodal:
            raise ValueError(
                f"--n-styles and --style apply to DRIT and MUNIT checkpoints only; this one is {pipe.family}"
            )
        if args.style and args.n_styles != 1:
            raise ValueError("--style gives one output per input in the reference's style: drop --n-styles")
        args.style_image = load_image(args.style) if args.style else None
    except (OSError, ValueError) as err:
        raise UsageError(first_line(err)) from None

    jobs = plan_jobs(inputs, output, args.n_styles, args.format)
    sources = {os.path.realpath(source): source for source, _ in inputs}
    for job in jobs:
        clash = next((sources[real] for real in map(os.path.realpath, job.outputs) if real in sources), None)
        if clash is not None:
            raise UsageError(
                f"output {job.outputs[0]} would replace the input image {clash}: choose an "
                "--output folder away from the input images"
            )
    check_writable(output)
    jobs = group.shard(jobs)  # the clash check above saw every job; from here on, this process's share
    removed = sweep_partials(jobs)
    if removed:
        print(f"removed {removed} temporary file(s) left by an interrupted run", file=sys.stderr)
    report = Report()
    todo = [job for job in jobs if args.overwrite or not all(p.is_file() for p in job.outputs)]
    report.skipped = len(jobs) - len(todo)
    try:
        translate_jobs(pipe, todo, options(args), report)
    except KeyboardInterrupt:
        print(
            f"interrupted after {report.translated} image(s); run the same command again to resume",
            file=sys.stderr,
        )
        return 130

    reports = group.all_gather(report)
    translated, skipped = sum(r.translated for r in reports), sum(r.skipped for r in reports)
    failed = [item for r in reports for item in r.failed]
    if group.is_main:
        procs = f" by {group.world_size} processes" if group.distributed else ""
        print(
            f"translated {translated} image(s) into {args.output}{procs}"
            f"{f', skipped {skipped} already done' if skipped else ''}",
            file=sys.stderr,
        )
        multi_frame = [source for r in reports for source in r.multi_frame]
        if multi_frame:
            print(
                f"note: {len(multi_frame)} input(s) hold several frames or pages (animated GIF/APNG/WebP, "
                f"multi-page TIFF), e.g. {multi_frame[0]}; only the first frame was translated",
                file=sys.stderr,
            )
        if failed:
            print(f"{len(failed)} input(s) could not be translated:", file=sys.stderr)
            for source, reason in failed:
                print(f"  {source}: {reason}", file=sys.stderr)
    return 1 if failed else 0
