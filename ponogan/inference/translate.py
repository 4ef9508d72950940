"""Translate every image under a folder (or matching a glob) with a checkpoint: the library side of
`ponogan translate` (its command line is `ponogan.cli.translate`).

Outputs mirror the inputs' relative paths under `--output` (PNG by default; MUNIT with `--n-styles K`
writes `name_s0.png ... name_s{K-1}.png`). Every output name is planned before anything is written and
is unique, compared case-insensitively (`plan_jobs`: inputs whose stems collide keep their extension,
`a_jpg.png`), and the same inputs always get the same names. The user's files are never written over:
an `--output` equal to the input folder is refused, one inside it is left out of the walk, and a run
that would replace any input image is refused before it starts. Each output is written to a
temporary `.ponogan-PID-RANDOM.partial` beside it and renamed (the temporary is removed if the write
fails; ones left by a killed run are removed at the next start, never those of a run still going),
so outputs that exist are complete: they are skipped, and an interrupted run resumes where it
stopped; concurrent runs into one folder never share a temporary name.

Flags, the checkpoint and the output folder (created, and checked writable once) are validated before
any image: a problem there is one `error:` line and exit status 2. Each image's header is checked
before it is decoded: the size the network processes (after `--size` and padding to the model's
stride) must be within `--max-pixels` and `--max-aspect`, which bounds memory; batches are capped to
`--max-pixels` in total too. Worker threads decode (and resize) the next images while the model runs;
images are batched by size. Inputs that fail (too large, unreadable, out of memory) are listed at
the end with the reason and the others go on; the exit status is 1 when any input failed (or none
was found). Of a file with several frames (animated GIF/APNG, multi-page TIFF) the first frame is
translated, and the report says so.
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import glob
import os
import re
import secrets
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice, takewhile
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from ponogan.core.atomic import atomic_write
from ponogan.core.messages import UsageError, first_line
from ponogan.core.settings import MAX_ASPECT, MAX_PROCESSED_PIXELS
from ponogan.data import DEFAULT_MAX_PIXELS, ImageLoadError, find_images, load_image
from ponogan.data.image_io import image_info, is_image_file, is_within

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
    multi_frame: list[str] = field(default_factory=list)  # inputs of several frames: the first one taken


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
    """Map each input to its output file(s), every output name unique, before anything is written.

    Names are compared case-insensitively (as macOS and Windows file systems do), so `x.png`, `x.jpg`,
    `x_png.png` and `X.PNG` never share an output. An input keeps its own stem when no other input has
    the same one; inputs whose stems collide (`a.jpg`, `a.png`) keep their extension (`a_jpg`,
    `a_png`), and a name still taken (by another input's plain stem, or by the case of another
    collision) gets `_2`, `_3`, ... The result depends only on the set of inputs (processed in their
    relative-path order, plain stems first), so a re-run maps each input to the same output.
    """
    inputs = sorted(inputs, key=lambda item: item[1].as_posix())
    suffixes = [""] if n_outputs == 1 else [f"_s{k}" for k in range(n_outputs)]
    stem_counts: dict[str, int] = {}
    for _, rel in inputs:
        key = _name_key(rel.with_suffix(""))
        stem_counts[key] = stem_counts.get(key, 0) + 1

    def names(stem: Path) -> list[Path]:
        return [stem.with_name(f"{stem.name}{suffix}.{ext}") for suffix in suffixes]

    taken: set[str] = set()
    planned: dict[int, list[Path]] = {}
    plain = [i for i, (_, rel) in enumerate(inputs) if stem_counts[_name_key(rel.with_suffix(""))] == 1]
    renamed = sorted(set(range(len(inputs))) - set(plain))
    for i in plain + renamed:  # plain stems claim their names first: they never move
        rel = inputs[i][1]
        stem = rel.with_suffix("")
        if stem_counts[_name_key(stem)] > 1:
            stem = stem.with_name(f"{stem.name}_{rel.suffix.lstrip('.').lower()}")
        candidate, number = stem, 1
        while any(_name_key(name) in taken for name in names(candidate)):
            number += 1
            candidate = stem.with_name(f"{stem.name}_{number}")
        taken.update(_name_key(name) for name in names(candidate))
        planned[i] = names(candidate)
    return [
        Job(source, tuple(output_dir / name for name in planned[i])) for i, (source, _) in enumerate(inputs)
    ]


def _name_key(path: Path) -> str:
    """How a relative output path is compared: case-folded, `/`-separated."""
    return path.as_posix().casefold()


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


# A temp name holds the writer's pid and a random part, so that concurrent runs into one folder never
# share one, and is short whatever the output's name, so that a 255-byte output name still works.
_PARTIAL = re.compile(r"\.ponogan-(?P<pid>[0-9]+)-[0-9a-f]{8}\.partial")


def partial_path(path: Path) -> Path:
    """A new temporary name to write `path` to before the rename: `.ponogan-PID-RANDOM.partial` beside it."""
    return path.with_name(f".ponogan-{os.getpid()}-{secrets.token_hex(4)}.partial")


def _pid_alive(pid: int) -> bool:
    """Whether a process `pid` may be running on this machine: `False` only when it surely is not (no
    such process, or a number no process can have); one owned by another user counts as running."""
    try:
        os.kill(pid, 0)  # signal 0: checks only
    except (ProcessLookupError, OverflowError):
        return False
    except OSError:  # PermissionError: it exists, another user's
        return True
    return True


def sweep_partials(jobs: Iterable[Job]) -> int:
    """Remove the temporary files killed runs left beside these jobs' outputs: only regular files named
    as `partial_path` names them whose writing process is gone (a concurrent run's are kept), and the
    `.NAME.partial` names of earlier versions of ponogan for these outputs."""
    outputs = [output for job in jobs for output in job.outputs]
    leftovers = {output.with_name(f".{output.name}.partial") for output in outputs}
    for folder in {output.parent for output in outputs}:
        try:
            names = os.listdir(folder)
        except OSError:  # not created yet, or unreadable: nothing of ours in it
            continue
        for name in names:
            match = _PARTIAL.fullmatch(name)
            if match and not _pid_alive(int(match["pid"])):
                leftovers.add(folder / name)
    removed = 0
    for tmp in leftovers:
        try:
            if tmp.is_file() and not tmp.is_symlink():
                tmp.unlink()
                removed += 1
        except OSError:  # swept by another run first, or an earlier version's name too long to exist
            continue
    return removed


@dataclass(frozen=True)
class TranslateOptions:
    """How `translate_jobs` processes each image: the direction, the processed size (`None`: as loaded,
    padded to the model's stride; `"256"` or `"256x192"`), the output format (a key of
    `OUTPUT_FORMATS`), the pixel and aspect limits of one processed image, images per batch, and for
    multimodal models the style seed and the number of styles per input, or a reference image whose
    style every input takes (`style`, a PIL image)."""

    direction: str = "AtoB"
    size: str | None = None
    format: str = "png"
    max_pixels: int = MAX_PROCESSED_PIXELS
    max_aspect: float = MAX_ASPECT
    batch_size: int = 1
    seed: int = 0
    n_styles: int = 1
    workers: int = 2
    style: Image.Image | None = None


def translate_jobs(pipe, jobs: list[Job], options: TranslateOptions, report: Report) -> None:
    """Decode in worker threads, batch by size, translate and save; failures go into `report`.

    Each image is checked from its header before decoding (`check_processed_size`); images of one size
    are batched as they come by `images.SizeBatcher` (the pipeline's batcher), at most `--max-pixels`
    processed pixels a batch; a batch that fails (out of memory) is retried image by image.
    """
    from ponogan.inference.images import (
        ImageTooLargeError,
        SizeBatcher,
        check_processed_size,
        parse_size,
        resize_image,
    )

    mode, size, stride = (
        pipe.input_mode(options.direction),
        parse_size(options.size),
        pipe.stride(options.direction),
    )
    image_format = OUTPUT_FORMATS[options.format]
    decode_limit = max(DEFAULT_MAX_PIXELS, options.max_pixels)  # with --size, decoded may exceed processed

    def decode(job: Job):
        try:
            info = image_info(job.source, decode_limit)
            check_processed_size(info.size, size, stride, options.max_pixels, options.max_aspect)
            img = resize_image(load_image(job.source, mode, decode_limit), size)  # the first frame
            if info.frames > 1:
                report.multi_frame.append(str(job.source))  # list.append: safe from worker threads
            return job, img, None
        except ImageTooLargeError as err:
            return job, None, f"{err}; {LIMIT_HINTS[err.option]}"
        except ImageLoadError as err:
            return job, None, err.reason
        except MemoryError:
            return job, None, "not enough memory to decode and resize it"
        except OSError as err:
            return job, None, f"cannot read: {err}"

    depth = max(2 * options.batch_size, 4)  # decoded images and pending writes held at most
    batcher: SizeBatcher[tuple[Job, Image.Image]] = SizeBatcher(
        options.batch_size, options.max_pixels, stride
    )
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
                    direction=options.direction,
                    seed=options.seed,
                    n_styles=options.n_styles,
                    style=options.style,
                    batch_size=options.batch_size,
                    max_pixels=options.max_pixels,
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

        for job, img, error in prefetch(decode, jobs, options.workers, depth):
            if error is not None:
                report.failed.append((str(job.source), error))
                bar.update(1)
                continue
            full = batcher.add(img.size, (job, img))
            if full is not None:
                flush(full)
        for batch in batcher.drain():
            flush(batch)
        while writes:
            settle(*writes.popleft())


def check_writable(output: Path) -> None:
    """Create the output folder and write (then remove) one probe file there: a folder that cannot
    be written (read-only, `/sys/...`, no space) is one `UsageError` before any image, instead of
    the same failure once per image."""
    probe = None
    try:
        output.mkdir(parents=True, exist_ok=True)
        probe = partial_path(output / "probe")
        probe.write_bytes(b"")
    except OSError as err:
        raise UsageError(
            f"cannot write into --output {output} ({err.strerror or first_line(err)}); choose a folder "
            "you can write to"
        ) from None
    finally:
        if probe is not None:
            with contextlib.suppress(OSError):
                probe.unlink()
