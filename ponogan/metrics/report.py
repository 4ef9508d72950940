"""Evaluation reports: ``metrics.json`` (metric name -> value), ``metrics.md`` and ``grid.png``."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from PIL import Image

from .registry import METRICS


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_metrics_json(path: str | Path, metrics: Mapping[str, float]) -> Path:
    """Write ``{name: value}`` as JSON (atomically)."""
    path = Path(path)
    _atomic_write_text(path, json.dumps({k: float(v) for k, v in metrics.items()}, indent=2) + "\n")
    return path


def metrics_markdown(
    metrics: Mapping[str, float], skipped: Mapping[str, str] | None = None, notes: Sequence[str] = ()
) -> str:
    """A markdown table: one row per computed metric (with its better direction), then skipped ones."""
    lines = ["| metric | value | better | description |", "|---|---|---|---|"]
    for name, value in metrics.items():
        info = METRICS.get(name)
        better = "" if info is None else ("higher" if info.higher_is_better else "lower")
        description = "" if info is None else info.description
        lines.append(f"| {name} | {value:.4f} | {better} | {description} |")
    for name, reason in (skipped or {}).items():
        lines.append(f"| {name} | skipped | | {reason.splitlines()[0]} |")
    text = "\n".join(lines) + "\n"
    if notes:
        text += "\n" + "\n".join(f"- {note}" for note in notes) + "\n"
    return text


def save_grid(
    path: str | Path, rows: Sequence[Sequence[Image.Image | Path | str]], *, max_rows: int = 8, pad: int = 2
) -> Path:
    """Save rows of images (e.g. input | output | target) as one PNG; every cell gets the size of the
    first image of its row (each row's fake sets the scale), white padding between cells."""
    rows = [list(r) for r in rows[:max_rows]]
    if not rows or not rows[0]:
        raise ValueError("save_grid needs at least one row with one image")
    opened = [[c if isinstance(c, Image.Image) else Image.open(c) for c in row] for row in rows]
    cell_w = max(row[0].width for row in opened)
    cell_h = max(row[0].height for row in opened)
    cols = max(len(row) for row in opened)
    grid = Image.new(
        "RGB", (cols * cell_w + (cols + 1) * pad, len(opened) * cell_h + (len(opened) + 1) * pad), "white"
    )
    for r, row in enumerate(opened):
        for c, img in enumerate(row):
            cell = img.convert("RGB").resize((cell_w, cell_h), Image.Resampling.BICUBIC)
            grid.paste(cell, (pad + c * (cell_w + pad), pad + r * (cell_h + pad)))
    path = Path(path)
    grid.save(path)
    return path


def write_report(
    out_dir: str | Path,
    metrics: Mapping[str, float],
    *,
    skipped: Mapping[str, str] | None = None,
    grid_rows: Sequence[Sequence[Image.Image | Path | str]] = (),
    notes: Sequence[str] = (),
) -> dict[str, Path]:
    """Write ``metrics.json``, ``metrics.md`` and (when rows are given) ``grid.png`` into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {"json": write_metrics_json(out_dir / "metrics.json", metrics)}
    md = out_dir / "metrics.md"
    _atomic_write_text(md, metrics_markdown(metrics, skipped, notes))
    written["markdown"] = md
    if grid_rows:
        written["grid"] = save_grid(out_dir / "grid.png", grid_rows)
    return written
