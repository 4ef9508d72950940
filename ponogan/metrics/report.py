"""Evaluation reports (``metrics.json``: metric name -> value, ``metrics.md``, ``grid.png``) and the
manifest that keeps ``ponogan eval`` from touching files it did not write.

``--out`` may be a folder the user already keeps other things in. :class:`EvalOutput` records every file
and folder eval writes there in ``.ponogan-eval-manifest.jsonl``; eval replaces or deletes only files
listed there, removes only (empty) folders it created, and refuses, before writing anything, to write
a name that already exists without being listed (a user's ``metrics.json``, a ``real/`` folder of the
user's images).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath

from PIL import Image, ImageDraw, ImageFont

from ponogan.core.atomic import write_text_atomic
from ponogan.data import ImageLoadError, load_image
from ponogan.metrics.catalog import EXTRA_VALUES, METRICS

MANIFEST_NAME = ".ponogan-eval-manifest.jsonl"
REPORT_FILES = ("metrics.json", "metrics.md", "grid.png")
MANIFEST_VERSION = 1


def _safe_relative(name: object) -> str | None:
    """``name`` as a relative POSIX path inside the output folder, or ``None`` (absolute, ``..``, empty)."""
    if not isinstance(name, str) or not name or "\\" in name:
        return None
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or path.as_posix() in ("", "."):
        return None
    return path.as_posix()


class EvalOutput:
    """An evaluation output folder and the manifest of the files and folders ``ponogan eval`` wrote there.

    ``files`` and ``dirs`` are relative POSIX paths. A file counts as eval's own only when the manifest
    lists it and it is a regular file (not a symlink); a folder is removed only when eval created it
    and it is empty. Entries that would point outside the folder are ignored.

    The manifest is JSON Lines (a header, then one ``{"file": ...}`` or ``{"dir": ...}`` per line) so
    that claiming the files of each batch appends a few lines instead of rewriting a growing list; a
    line cut short by an interrupted run is ignored. A subclass sets ``WRITER`` (the command named in
    the manifest's header and messages) and ``MANIFEST_NAME`` to keep a manifest of its own.
    """

    WRITER = "ponogan eval"
    MANIFEST_NAME = MANIFEST_NAME

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.manifest = self.root / self.MANIFEST_NAME
        self.files: set[str] = set()
        self.dirs: set[str] = set()
        if self.manifest.is_symlink() or self.manifest.exists():
            try:
                self._read()
            except (OSError, ValueError, KeyError, TypeError, AttributeError, StopIteration) as err:
                raise FileExistsError(
                    f"cannot read the evaluation manifest {self.manifest} ({err}); ponogan eval leaves "
                    "this folder alone: remove that file or choose another --out"
                ) from None

    def _read(self) -> None:
        lines = self.manifest.read_text(encoding="utf-8").splitlines()
        if not lines or json.loads(lines[0]).get("written_by") != self.WRITER:
            raise ValueError(f"not a {self.WRITER} manifest")
        for number, line in enumerate(lines[1:], start=2):
            try:
                entry = json.loads(line)
            except ValueError:
                if number == len(lines):  # the last line of an interrupted append
                    break
                raise
            kind, rel = next(iter(entry.items()))
            target = {"file": self.files, "dir": self.dirs}[kind]
            if safe := _safe_relative(rel):
                target.add(safe)

    def _relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def owns(self, path: Path) -> bool:
        """Whether ``path`` is a regular file inside the folder that the manifest lists."""
        try:
            relative = self._relative(Path(path))
        except ValueError:  # outside the folder
            return False
        return relative in self.files and path.is_file() and not path.is_symlink()

    def _existing(self, names: Iterable[str], trees: Iterable[str]) -> list[Path]:
        """Every existing entry named ``names`` and every file, symlink or odd entry under ``trees``."""
        found = []
        for name in names:
            path = self.root / name
            if path.is_symlink() or path.exists():
                found.append(path)
        for tree in trees:
            top = self.root / tree
            if top.is_symlink() or (top.exists() and not top.is_dir()):
                found.append(top)
                continue
            for dirpath, dirnames, filenames in os.walk(top):  # symlinked folders are listed, not entered
                base = Path(dirpath)
                found += [base / d for d in dirnames if (base / d).is_symlink()]
                found += [base / f for f in filenames]
        return found

    def own_files(self, names: Iterable[str] = (), trees: Iterable[str] = ()) -> list[Path]:
        """Existing files among ``names`` and under ``trees`` that eval wrote (listed in the manifest)."""
        return sorted(p for p in self._existing(names, trees) if self.owns(p))

    def check_free(self, names: Iterable[str] = (), trees: Iterable[str] = ()) -> None:
        """``FileExistsError`` (one line) when any of ``names`` (files directly in the folder) or anything
        under the folders ``trees`` exists and is not eval's: those are never replaced or deleted."""
        foreign = sorted(p for p in self._existing(names, trees) if not self.owns(p))
        if foreign:
            raise FileExistsError(
                f"--out {self.root} holds {len(foreign)} file(s) {self.WRITER} did not write (e.g. "
                f"{foreign[0]}); it never replaces or deletes them: choose a new or empty --out"
            )

    def save(self) -> None:
        """Rewrite the whole manifest atomically (after removals)."""
        self.root.mkdir(parents=True, exist_ok=True)
        lines = [json.dumps({"written_by": self.WRITER, "version": MANIFEST_VERSION})]
        lines += [json.dumps({"dir": rel}) for rel in sorted(self.dirs)]
        lines += [json.dumps({"file": rel}) for rel in sorted(self.files)]
        write_text_atomic(self.manifest, "\n".join(lines) + "\n")

    def _append(self, kind: str, names: Iterable[str]) -> None:
        if not self.manifest.is_file():
            self.save()
        with self.manifest.open("rb") as manifest:  # a line cut short by an interrupted run: end it
            manifest.seek(-1, os.SEEK_END)
            lead = "" if manifest.read(1) == b"\n" else "\n"
        with self.manifest.open("a", encoding="utf-8") as manifest:
            manifest.write(lead + "".join(json.dumps({kind: rel}) + "\n" for rel in names))

    def claim(self, paths: Iterable[Path]) -> None:
        """List ``paths`` in the manifest *before* they are written, so that a run interrupted mid-write
        still knows them as its own next time."""
        new = sorted({self._relative(Path(p)) for p in paths} - self.files)
        if new:
            self._append("file", new)
            self.files.update(new)

    def mkdir(self, relative: str) -> Path:
        """Create the folder ``relative`` (and its parents); record the ones that did not exist."""
        self.root.mkdir(parents=True, exist_ok=True)
        path, created = self.root, []
        for part in PurePosixPath(relative).parts:
            path = path / part
            if not path.exists():
                path.mkdir()
                created.append(self._relative(path))
            elif not path.is_dir() or path.is_symlink():
                raise FileExistsError(f"{path} exists and is not a folder ponogan eval can write into")
        if created:
            self._append("dir", created)
            self.dirs.update(created)
        return path

    def remove(self, paths: Iterable[Path]) -> None:
        """Delete the listed own files among ``paths`` (others are left alone), then the folders eval
        created that are now empty, deepest first."""
        for path in paths:
            if self.owns(path):
                path.unlink()
                self.files.discard(self._relative(path))
        for rel in sorted(self.dirs, key=lambda d: d.count("/"), reverse=True):
            folder = self.root / rel
            if folder.is_dir() and not folder.is_symlink() and not any(folder.iterdir()):
                folder.rmdir()
                self.dirs.discard(rel)
        self.save()


def _format_value(value: float) -> str:
    """4 decimals; small nonzero values (KID ~ 1e-3) in scientific notation so they keep their digits."""
    return f"{value:.4f}" if value == 0 or abs(value) >= 0.01 else f"{value:.3e}"


def metrics_markdown(
    metrics: Mapping[str, float], skipped: Mapping[str, str] | None = None, notes: Sequence[str] = ()
) -> str:
    """A markdown table: one row per computed metric (with its better direction), then skipped ones."""
    lines = ["| metric | value | better | description |", "|---|---|---|---|"]
    for name, value in metrics.items():
        info = METRICS.get(name)
        higher, description = (
            (info.higher_is_better, info.description) if info else EXTRA_VALUES.get(name, (None, ""))
        )
        better = "" if higher is None else ("higher" if higher else "lower")
        lines.append(f"| {name} | {_format_value(value)} | {better} | {description} |")
    for name, reason in (skipped or {}).items():
        lines.append(f"| {name} | skipped | | {reason.splitlines()[0]} |")
    text = "\n".join(lines) + "\n"
    if notes:
        text += "\n" + "\n".join(f"- {note}" for note in notes) + "\n"
    return text


def _text_size(draw: ImageDraw.ImageDraw, text: str, font) -> tuple[int, int]:
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    return right - left, bottom - top


LABEL_COLOR = "#1f4fa0"  # labels in blue, so a character label is not mistaken for a black glyph cell


def save_grid(
    path: str | Path,
    rows: Sequence[Sequence[Image.Image | Path | str | None]],
    *,
    max_rows: int = 8,
    pad: int = 2,
    column_labels: Sequence[str] = (),
    row_labels: Sequence[str] = (),
) -> Path:
    """Save rows of images (e.g. input | output | target) as one PNG; every cell gets the size of the
    first image of its row (each row's fake sets the scale), white padding between cells; a ``None``
    cell stays white.

    ``column_labels`` (one per column) are written in a header strip above the cells (columns are
    widened to fit them, the images centred) and ``row_labels`` (one per row: the glyph character, large,
    or a file key, small) in a strip to their left, with Pillow's built-in font; without labels the grid
    is exactly the cells and padding: ``(cols * w + (cols + 1) * pad, rows * h + (rows + 1) * pad)``.
    """
    rows = [list(r) for r in rows[:max_rows]]
    if not rows or not any(c is not None for c in rows[0]):
        raise ValueError("save_grid needs at least one row with one image")
    opened = [
        [None if c is None else c if isinstance(c, Image.Image) else load_image(c, "RGB") for c in row]
        for row in rows
    ]
    firsts = [next(c for c in row if c is not None) for row in opened if any(c is not None for c in row)]
    cell_w = max(img.width for img in firsts)
    cell_h = max(img.height for img in firsts)
    cols = max(len(row) for row in opened)
    row_labels = list(row_labels)[: len(opened)]
    column_labels = list(column_labels)[:cols]
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    # Pillow's built-in scalable font (no font file needed); large for one-character row labels (glyphs)
    header_font = ImageFont.load_default(size=max(10, min(20, cell_h // 3)))
    big_font = ImageFont.load_default(size=max(12, min(40, cell_h * 2 // 3)))
    row_fonts = [big_font if len(text) <= 2 else header_font for text in row_labels]
    header_h = col_w = 0
    if column_labels:
        sizes = [_text_size(measure, text, header_font) for text in column_labels]
        header_h = max(h for _, h in sizes) + 2 * pad + 2
        col_w = max(w for w, _ in sizes) + 2 * pad
    col_w = max(col_w, cell_w)
    label_widths = [_text_size(measure, t, f)[0] for t, f in zip(row_labels, row_fonts, strict=True)]
    label_w = max(label_widths) + 3 * pad if row_labels else 0
    width = label_w + cols * col_w + (cols + 1) * pad
    height = header_h + len(opened) * cell_h + (len(opened) + 1) * pad
    grid = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(grid)
    for c, text in enumerate(column_labels):
        x = label_w + pad + c * (col_w + pad) + col_w // 2
        draw.text((x, header_h // 2 + pad // 2), text, fill=LABEL_COLOR, font=header_font, anchor="mm")
    for r, row in enumerate(opened):
        top = header_h + pad + r * (cell_h + pad)
        if r < len(row_labels):
            centre = (label_w // 2, top + cell_h // 2)
            draw.text(centre, row_labels[r], fill=LABEL_COLOR, font=row_fonts[r], anchor="mm")
        for c, img in enumerate(row):
            if img is not None:
                cell = img.convert("RGB").resize((cell_w, cell_h), Image.Resampling.BICUBIC)
                grid.paste(cell, (label_w + pad + c * (col_w + pad) + (col_w - cell_w) // 2, top))
    path = Path(path)
    grid.save(path)
    return path


def write_report(
    out_dir: str | Path,
    metrics: Mapping[str, float],
    *,
    skipped: Mapping[str, str] | None = None,
    grid_rows: Sequence[Sequence[Image.Image | Path | str | None]] = (),
    notes: Sequence[str] = (),
    column_labels: Sequence[str] = (),
    row_labels: Sequence[str] = (),
) -> dict[str, Path]:
    """Write ``metrics.json``, ``metrics.md`` and (when rows are given) ``grid.png`` into ``out_dir``.

    The grid shows every row given (``column_labels`` / ``row_labels``: see :func:`save_grid`).
    The files are listed in ``out_dir``'s manifest; an existing file of those names that eval did not
    write raises ``FileExistsError`` before anything is written. A ``grid.png`` of an earlier
    evaluation is removed when this one has no grid, so the folder never mixes two evaluations.
    A grid image that cannot be read leaves the grid out (the metrics are still written).
    """
    out_dir = Path(out_dir)
    output = EvalOutput(out_dir)
    output.check_free(REPORT_FILES)
    output.claim(out_dir / name for name in REPORT_FILES[:2])
    values = json.dumps({k: float(v) for k, v in metrics.items()}, indent=2) + "\n"
    written = {
        "json": write_text_atomic(out_dir / "metrics.json", values),
        "markdown": write_text_atomic(out_dir / "metrics.md", metrics_markdown(metrics, skipped, notes)),
    }
    grid = out_dir / "grid.png"
    if grid_rows:
        output.claim([grid])
        with contextlib.suppress(ImageLoadError):  # callers pass readable files; never lose the metrics
            written["grid"] = save_grid(
                grid, grid_rows, max_rows=len(grid_rows), column_labels=column_labels, row_labels=row_labels
            )
    if "grid" not in written:
        output.remove([grid])
    return written
