"""`ponogan translate`: translate every image under a folder (or matching a glob) with a checkpoint.

Outputs mirror the inputs' relative paths under `--output` (PNG by default; MUNIT with `--n-styles K`
writes `name_s0.png ... name_s{K-1}.png`). The user's files are never written over: an `--output` equal
to the input folder is refused, one inside it is left out of the walk, and a run that would replace any
input image is refused before it starts. Each output is written to a temporary `.NAME.partial` beside
it and renamed (the temporary is removed if the write fails; ones left by a killed run are removed at
the next start), so outputs that exist are complete: they are skipped, and an interrupted run resumes
where it stopped.

Each image's header is checked before it is decoded: the size the network processes (after `--size`
and padding to the model's stride) must be within `--max-pixels` and `--max-aspect`, which bounds
memory; batches are capped to `--max-pixels` in total too. Worker threads decode (and resize) the next
images while the model runs; images are batched by size. Inputs that fail (too large, unreadable,
out of memory) are listed at the end with the reason and the others go on; the exit status is 1 when
any input failed, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import fnmatch
import functools
import glob
import os
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice, takewhile
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from ponogan.atomic import atomic_write
from ponogan.data import DEFAULT_MAX_PIXELS, ImageLoadError, find_images, image_size, load_image
from ponogan.data.image_io import is_image_file, is_within
from ponogan.messages import first_line
from ponogan.settings import MAX_ASPECT, MAX_PROCESSED_PIXELS, TEST_MODES

OUTPUT_FORMATS = {"png": "PNG", "jpg": "JPEG", "webp": "WEBP"}
LIMIT_HINTS = {
    "max_pixels": "shrink it with --size or raise --max-pixels",
    "max_aspect": "raise --max-aspect to translate it",
}


@dataclass(frozen=True)
class Job:
    """One input image and the output file(s) it becomes."""

    source: Path
    outputs: tuple[Path, ...]


@dataclass
class Report:
    """What a run did: counts plus the inputs that could not be read or written, with the reason."""

    translated: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="run folder or its model.safetensors")
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
        help="images per forward pass (default: 1 on CPUs, where larger batches are slower, 8 on GPUs)",
    )
    parser.add_argument(
        "--size", help="resize first: 256 sets the shorter side, 320x240 an exact size (default: keep)"
    )
    parser.add_argument("--n-styles", type=int, default=1, help="MUNIT: random styles per input (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="MUNIT: seed of the random styles (default 0)")
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
        help="compute precision; bf16/fp16 run under autocast (default: bf16 on GPUs and on "
        "CPUs with native bf16, else float32; docs/app.md has the measured differences)",
    )
    parser.add_argument("--format", default="png", choices=sorted(OUTPUT_FORMATS), help="output format")
    parser.add_argument("--workers", type=int, default=2, help="image decoding threads (default 2)")
    parser.add_argument(
        "--max-pixels",
        type=int,
        default=MAX_PROCESSED_PIXELS,
        help="refuse images the network would process at more pixels than this, after "
        "--size and padding to the model's stride; also caps the pixels of a batch. "
        "The default fits Full HD: peak memory 2.5 GB for a ResNet-9, 4.7 GB for MUNIT "
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


def input_root(spec: str) -> Path | None:
    """The folder output paths are relative to: the input folder, or a glob's non-wildcard prefix
    (`.` when it has none); `None` for a single file."""
    path = Path(spec)
    if path.is_dir():
        return path
    if path.is_file() or not glob.has_magic(spec):
        return None
    prefix = takewhile(lambda part: not glob.has_magic(part), path.parts[:-1])
    return Path(".", *prefix)


def collect_inputs(spec: str, exclude: Sequence[str | os.PathLike] = ()) -> list[tuple[Path, Path]]:
    """`(source, relative path)` of every image a path or glob names, each file once, by relative path.

    A folder is walked recursively (image extensions only, `find_images`); a glob keeps paths relative to
    its non-wildcard prefix folder and a folder it matches is walked; a single file is taken as is,
    whatever its extension. Nothing under a folder in `exclude` (the output folder) is taken.
    """
    path, root = Path(spec), input_root(spec)
    if root is None:
        return [(path, Path(path.name))] if path.is_file() else []
    if path.is_dir():
        files = [Path(p) for p in find_images(path, exclude)]
    elif "**" in path.parts:  # walk once (link-loop safe): glob's own ** recursion follows loops
        pattern = path.parts[len(root.parts) :]
        files = [
            p for p in map(Path, find_images(root, exclude)) if _matches(p.relative_to(root).parts, pattern)
        ]
    else:
        files = []
        for match in map(Path, sorted(glob.glob(spec))):
            if match.is_dir():
                files += map(Path, find_images(match, exclude))
            elif is_image_file(match) and not any(is_within(match, folder) for folder in exclude):
                files.append(match)
    unique = {os.path.realpath(p): (p, p.relative_to(root)) for p in reversed(files)}
    return sorted(unique.values(), key=lambda x: x[1])


def _matches(parts: tuple[str, ...], pattern: tuple[str, ...]) -> bool:
    """Whether a relative path, or a folder above it, matches glob components (as `glob` with `**`)."""
    return any(_glob_match(parts[:k], pattern) for k in range(1, len(parts) + 1))


def _glob_match(parts: tuple[str, ...], pattern: tuple[str, ...]) -> bool:
    """Path components against glob components: `**` spans any number of them; as in `glob`, a hidden
    name (leading dot) only matches a pattern component that starts with a dot."""
    if not pattern:
        return not parts
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return _glob_match(parts, rest) or (
            bool(parts) and not parts[0].startswith(".") and _glob_match(parts[1:], pattern)
        )
    return (
        bool(parts)
        and (head.startswith(".") or not parts[0].startswith("."))
        and fnmatch.fnmatchcase(parts[0], head)
        and _glob_match(parts[1:], rest)
    )


def plan_jobs(inputs: Iterable[tuple[Path, Path]], output_dir: Path, n_outputs: int, ext: str) -> list[Job]:
    """Map each input to its output file(s); inputs whose stems collide (a.jpg, a.png) keep their suffix."""
    inputs = list(inputs)
    stems: dict[Path, int] = {}
    for _, rel in inputs:
        stems[rel.with_suffix("")] = stems.get(rel.with_suffix(""), 0) + 1
    jobs = []
    for source, rel in inputs:
        stem = rel.with_suffix("")
        if stems[stem] > 1:
            stem = stem.with_name(f"{stem.name}_{rel.suffix.lstrip('.').lower()}")
        suffixes = [""] if n_outputs == 1 else [f"_s{k}" for k in range(n_outputs)]
        names = [f"{stem.name}{suffix}.{ext}" for suffix in suffixes]
        jobs.append(Job(source, tuple(output_dir / stem.parent / name for name in names)))
    return jobs


def prefetch(function: Callable, items: Iterable, workers: int, depth: int) -> Iterator:
    """`function(item)` for each item, in order, computed by `workers` threads at most `depth` ahead."""
    items = iter(items)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        pending: deque[Future] = deque(pool.submit(function, item) for item in islice(items, depth))
        while pending:
            future = pending.popleft()
            for item in islice(items, 1):
                pending.append(pool.submit(function, item))
            yield future.result()


def partial_path(path: Path) -> Path:
    """The temporary name an output is written to before the rename: `.NAME.partial` beside it."""
    return path.with_name(f".{path.name}.partial")


def sweep_partials(jobs: Iterable[Job]) -> int:
    """Remove the temporary files a killed run left for these jobs' outputs (only our own temp names)."""
    temps = [partial_path(output) for job in jobs for output in job.outputs]
    leftovers = [tmp for tmp in temps if tmp.is_file() and not tmp.is_symlink()]
    for tmp in leftovers:
        tmp.unlink()
    return len(leftovers)


def translate_jobs(pipe, jobs: list[Job], args: argparse.Namespace, report: Report) -> None:
    """Decode in worker threads, batch by size, translate and save; failures go into `report`.

    Each image is checked from its header before decoding (`check_processed_size`); a batch holds at
    most `--max-pixels` processed pixels; a batch that fails (out of memory) is retried image by image.
    """
    from ponogan.pipeline import (
        ImageTooLargeError,
        check_processed_size,
        parse_size,
        processed_size,
        resize_image,
    )

    mode, size, stride = pipe.input_mode(args.direction), parse_size(args.size), pipe.stride(args.direction)
    image_format = OUTPUT_FORMATS[args.format]
    decode_limit = max(DEFAULT_MAX_PIXELS, args.max_pixels)  # with --size, decoded may exceed processed

    def decode(job: Job):
        try:
            check_processed_size(
                image_size(job.source, decode_limit), size, stride, args.max_pixels, args.max_aspect
            )
            return job, resize_image(load_image(job.source, mode, decode_limit), size), None
        except ImageTooLargeError as err:
            return job, None, f"{err}; {LIMIT_HINTS[err.option]}"
        except ImageLoadError as err:
            return job, None, err.reason
        except MemoryError:
            return job, None, "not enough memory to decode and resize it"
        except OSError as err:
            return job, None, f"cannot read: {err}"

    depth = max(2 * args.batch_size, 4)  # decoded images and pending writes held at most
    buckets: dict[tuple[int, int], list[tuple[Job, Image.Image]]] = {}
    writes: deque[tuple[Job, Future]] = deque()

    def settle(job: Job, future: Future) -> None:
        try:
            future.result()
            report.translated += 1
        except (OSError, ValueError, MemoryError) as err:
            report.failed.append((str(job.source), f"cannot write output: {first_line(err)}"))

    with (
        tqdm(total=len(jobs), unit="img", desc="translate", dynamic_ncols=True) as bar,
        ThreadPoolExecutor(max_workers=1) as writer,
    ):

        def flush(batch: list[tuple[Job, Image.Image]]) -> None:
            try:
                outputs = pipe(
                    [img for _, img in batch],
                    direction=args.direction,
                    seed=args.seed,
                    n_styles=args.n_styles,
                    batch_size=args.batch_size,
                )
            except (RuntimeError, MemoryError, ValueError) as err:  # out of memory: retry alone, then report
                if len(batch) > 1:
                    for item in batch:
                        flush([item])
                    return
                report.failed.append((str(batch[0][0].source), f"translation failed: {first_line(err)}"))
                bar.update(1)
                return
            per_input = len(outputs) // len(batch)
            for k, (job, _) in enumerate(batch):
                results = outputs[k * per_input : (k + 1) * per_input]

                def write(job=job, results=results):  # never a half-written output (`partial_path`)
                    for img, path in zip(results, job.outputs, strict=True):
                        atomic_write(
                            path, functools.partial(img.save, format=image_format), temp=partial_path(path)
                        )

                writes.append((job, writer.submit(write)))
                while len(writes) > depth:
                    settle(*writes.popleft())
            bar.update(len(batch))

        for job, img, error in prefetch(decode, jobs, args.workers, depth):
            if error is not None:
                report.failed.append((str(job.source), error))
                bar.update(1)
                continue
            padded_w, padded_h = processed_size(img.size, None, stride)
            fits = max(1, min(args.batch_size, args.max_pixels // (padded_w * padded_h)))
            bucket = buckets.setdefault(img.size, [])
            bucket.append((job, img))
            if len(bucket) >= fits:
                flush(buckets.pop(img.size))
        for bucket in buckets.values():
            flush(bucket)
        while writes:
            settle(*writes.popleft())


def _error(message: str, code: int = 2) -> int:
    print(f"ponogan translate: error: {message}", file=sys.stderr)
    return code


def run(args: argparse.Namespace) -> int:
    """Translate; under ``torchrun``/``accelerate launch`` each process takes every N-th image."""
    from ponogan.distributed import current_group, process_device, shutdown
    from ponogan.runtime import default_inference_settings, resolve_device  # torch from here on

    group = current_group()
    try:
        device = resolve_device(process_device(args.device, group))
    except ValueError as err:
        shutdown()
        return _error(str(err))
    defaults = default_inference_settings(device)
    args.batch_size = defaults["batch_size"] if args.batch_size is None else args.batch_size
    args.dtype = defaults["dtype"] if args.dtype is None else args.dtype
    try:
        return _run(args, device, group)
    finally:
        shutdown()


def _run(args: argparse.Namespace, device: str, group) -> int:
    from ponogan.pipeline import TranslationPipeline, parse_size

    for name in ("batch_size", "n_styles", "workers", "max_pixels", "max_aspect"):
        if getattr(args, name) < 1:
            return _error(f"--{name.replace('_', '-')} must be >= 1")
    output, root = Path(args.output), input_root(args.input)
    if output.exists() and not output.is_dir():
        return _error(f"--output {output} is a file; give a folder to write the translations into")
    if root is not None and os.path.realpath(output) == os.path.realpath(root):
        return _error(
            f"--output {output} is the input folder: choose another folder (a new folder "
            "inside the input folder is fine: it is left out of the inputs)"
        )
    inside = root is not None and is_within(output, root)
    inputs = collect_inputs(args.input, exclude=[output] if inside else [])
    if not inputs:
        return _error(f"no images found at {args.input!r}", 1)
    if inside:
        print(
            f"note: the output folder {output} is inside the input folder; its files are not taken as inputs",
            file=sys.stderr,
        )
    try:
        pipe = TranslationPipeline.from_pretrained(
            args.checkpoint, device=device, dtype=args.dtype, test_mode=args.test_mode
        )
        pipe.route(args.direction)
        if args.n_styles != 1 and not pipe.multimodal:
            raise ValueError(f"--n-styles applies to MUNIT checkpoints only; this one is {pipe.family}")
        parse_size(args.size)
    except (OSError, ValueError) as err:
        return _error(str(err))

    jobs = plan_jobs(inputs, output, args.n_styles, args.format)
    sources = {os.path.realpath(source): source for source, _ in inputs}
    for job in jobs:
        clash = next((sources[real] for real in map(os.path.realpath, job.outputs) if real in sources), None)
        if clash is not None:
            return _error(
                f"output {job.outputs[0]} would replace the input image {clash}: choose an "
                "--output folder away from the input images"
            )
    jobs = group.shard(jobs)  # the clash check above saw every job; from here on, this process's share
    removed = sweep_partials(jobs)
    if removed:
        print(f"removed {removed} temporary file(s) left by an interrupted run", file=sys.stderr)
    report = Report()
    todo = [job for job in jobs if args.overwrite or not all(p.is_file() for p in job.outputs)]
    report.skipped = len(jobs) - len(todo)
    try:
        translate_jobs(pipe, todo, args, report)
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
        if failed:
            print(f"{len(failed)} input(s) could not be translated:", file=sys.stderr)
            for source, reason in failed:
                print(f"  {source}: {reason}", file=sys.stderr)
    return 1 if failed else 0
