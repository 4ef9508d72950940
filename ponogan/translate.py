"""`ponogan translate`: translate every image under a folder (or matching a glob) with a checkpoint.

Outputs mirror the inputs' relative paths under `--output` (PNG by default; MUNIT with `--n-styles K`
writes `name_s0.png ... name_s{K-1}.png`). Outputs that already exist are skipped, and each is written
to a temporary name and renamed, so an interrupted run resumes where it stopped. Worker threads decode
(and resize) the next images while the model runs; images are batched by size. Unreadable inputs are
listed at the end; the exit status is non-zero only when nothing could be translated.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from ponogan.data import DEFAULT_MAX_PIXELS, ImageLoadError, find_images, load_image
from ponogan.data.image_io import is_image_file
from ponogan.pipeline import TranslationPipeline, parse_size, resize_image

OUTPUT_FORMATS = {"png": "PNG", "jpg": "JPEG", "webp": "WEBP"}


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
    parser.add_argument("--input", required=True,
                        help="an image, a folder (walked recursively) or a glob such as 'photos/**/*.jpg'")
    parser.add_argument("--output", required=True, help="output folder; relative paths are kept")
    parser.add_argument("--direction", default="AtoB", help="AtoB or BtoA (CycleGAN, MUNIT); default AtoB")
    parser.add_argument("--batch-size", type=int, default=8, help="images per forward pass (default 8)")
    parser.add_argument("--size", default=None,
                        help="resize first: 256 sets the shorter side, 320x240 an exact size (default: keep)")
    parser.add_argument("--n-styles", type=int, default=1, help="MUNIT: random styles per input (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="MUNIT: seed of the random styles (default 0)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bf16", "fp16"),
                        help="compute precision; bf16/fp16 run under autocast (default float32)")
    parser.add_argument("--format", default="png", choices=sorted(OUTPUT_FORMATS), help="output format")
    parser.add_argument("--workers", type=int, default=2, help="image decoding threads (default 2)")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                        help="refuse inputs with more pixels than this (decompression-bomb guard)")
    parser.add_argument("--overwrite", action="store_true", help="translate again even if outputs exist")


def collect_inputs(spec: str) -> list[tuple[Path, Path]]:
    """`(source, relative path)` for every image a path or glob names, sorted by relative path.

    A folder is walked recursively (image extensions only); a glob keeps paths relative to its
    non-wildcard prefix folder; a single file is taken as is, whatever its extension.
    """
    path = Path(spec)
    if path.is_dir():
        return sorted(((Path(p), Path(p).relative_to(path)) for p in find_images(path)), key=lambda x: x[1])
    if path.is_file():
        return [(path, Path(path.name))]
    if not glob.has_magic(spec):
        return []
    prefix = _prefix_parts(spec)
    base = Path(*prefix) if prefix else Path(".")
    found: list[tuple[Path, Path]] = []
    for match in sorted(glob.glob(spec, recursive=True)):
        match_path = Path(match)
        if match_path.is_dir():
            found += [(Path(p), Path(p).relative_to(base)) for p in find_images(match_path)]
        elif is_image_file(match_path):
            found.append((match_path, match_path.relative_to(base)))
    return sorted(set(found), key=lambda x: x[1])


def _prefix_parts(pattern: str) -> list[str]:
    """Leading path components of a glob that contain no wildcard (the folder outputs are relative to)."""
    parts = Path(pattern).parts
    prefix = []
    for part in parts[:-1]:
        if glob.has_magic(part):
            break
        prefix.append(part)
    return prefix


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


def save_atomic(img: Image.Image, path: Path, image_format: str) -> None:
    """Write `img` to a temporary file beside `path`, then rename: never a half-written output."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    img.save(tmp, format=image_format)
    os.replace(tmp, path)


def translate_jobs(pipe, jobs: list[Job], args: argparse.Namespace, report: Report) -> None:
    """Decode in worker threads, batch by size, translate and save; failures go into `report`."""
    mode, size = pipe.input_mode(args.direction), parse_size(args.size)
    image_format = OUTPUT_FORMATS[args.format]

    def decode(job: Job):
        try:
            return job, resize_image(load_image(job.source, mode, args.max_pixels), size), None
        except ImageLoadError as err:
            return job, None, err.reason
        except OSError as err:
            return job, None, f"cannot read: {err}"

    depth = max(2 * args.batch_size, 4)  # decoded images and pending writes held at most
    buckets: dict[tuple[int, int], list[tuple[Job, Image.Image]]] = {}
    writes: deque[tuple[Job, Future]] = deque()

    def settle(job: Job, future: Future) -> None:
        try:
            future.result()
            report.translated += 1
        except (OSError, ValueError) as err:
            report.failed.append((str(job.source), f"cannot write output: {err}"))

    with tqdm(total=len(jobs), unit="img", desc="translate", dynamic_ncols=True) as bar, \
            ThreadPoolExecutor(max_workers=1) as writer:

        def flush(batch: list[tuple[Job, Image.Image]]) -> None:
            try:
                outputs = pipe([img for _, img in batch], direction=args.direction, seed=args.seed,
                               n_styles=args.n_styles, batch_size=args.batch_size)
            except RuntimeError as err:  # e.g. out of memory on a huge batch: report, go on
                report.failed += [(str(job.source), f"translation failed: {err}") for job, _ in batch]
                bar.update(len(batch))
                return
            per_input = len(outputs) // len(batch)
            for k, (job, _) in enumerate(batch):
                results = outputs[k * per_input:(k + 1) * per_input]

                def write(job=job, results=results):
                    for img, path in zip(results, job.outputs, strict=True):
                        save_atomic(img, path, image_format)

                writes.append((job, writer.submit(write)))
                while len(writes) > depth:
                    settle(*writes.popleft())
            bar.update(len(batch))

        for job, img, error in prefetch(decode, jobs, args.workers, depth):
            if error is not None:
                report.failed.append((str(job.source), error))
                bar.update(1)
                continue
            bucket = buckets.setdefault(img.size, [])
            bucket.append((job, img))
            if len(bucket) == args.batch_size:
                flush(buckets.pop(img.size))
        for bucket in buckets.values():
            flush(bucket)
        while writes:
            settle(*writes.popleft())


def run(args: argparse.Namespace) -> int:
    for name in ("batch_size", "n_styles", "workers"):
        if getattr(args, name) < 1:
            print(f"ponogan translate: error: --{name.replace('_', '-')} must be >= 1", file=sys.stderr)
            return 2
    inputs = collect_inputs(args.input)
    if not inputs:
        print(f"ponogan translate: error: no images found at {args.input!r}", file=sys.stderr)
        return 1
    try:
        pipe = TranslationPipeline.from_pretrained(args.checkpoint, device=args.device, dtype=args.dtype)
        pipe.route(args.direction)
        if args.n_styles != 1 and not pipe.multimodal:
            raise ValueError(f"--n-styles applies to MUNIT checkpoints only; this one is {pipe.family}")
        parse_size(args.size)
    except (OSError, ValueError) as err:
        print(f"ponogan translate: error: {err}", file=sys.stderr)
        return 2

    jobs = plan_jobs(inputs, Path(args.output), args.n_styles, args.format)
    report = Report()
    todo = [job for job in jobs if args.overwrite or not all(p.is_file() for p in job.outputs)]
    report.skipped = len(jobs) - len(todo)
    if todo:
        translate_jobs(pipe, todo, args, report)

    print(f"translated {report.translated} image(s) into {args.output}"
          f"{f', skipped {report.skipped} already done' if report.skipped else ''}", file=sys.stderr)
    if report.failed:
        print(f"{len(report.failed)} input(s) could not be translated:", file=sys.stderr)
        for source, reason in report.failed:
            print(f"  {source}: {reason}", file=sys.stderr)
    return 1 if todo and report.translated == 0 else 0
