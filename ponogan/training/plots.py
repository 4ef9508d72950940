"""Pictures of training logs: a run's loss curves and metrics, and comparisons of several runs.

``write_run_plots(run)`` turns ``<run>/log.jsonl`` into ``<run>/losses.png`` (one panel each for the
generator terms, the discriminator terms and the learning rate; each curve smoothed by a debiased EMA
over the raw values drawn faint behind it) and, when the log holds evaluation lines
(``{"step", "eval": {"l1", "psnr", "ssim"}}``), ``<run>/metrics.png``. The training loop calls it
whenever it writes samples and at the end; ``ponogan plot`` (``ponogan.cli.plot``) calls
``compare_runs`` to overlay several runs in one picture.

The log is read tolerantly: a line cut short by a kill (or any line that is not a JSON object with a
step) is skipped. Pictures are written atomically (temp file + rename), so a viewer never sees half a
PNG. matplotlib is imported inside the drawing functions and used through its Agg canvas, not pyplot:
importing this module stays cheap, and a user's interactive backend is never switched.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from ponogan.core.atomic import atomic_write
from ponogan.core.run_folder import RunFolder

BOOKKEEPING = frozenset({"step", "epoch", "lr", "time_s"})  # fields of a loss line that are not losses
METRIC_HINTS = {
    "l1": "lower is better",
    "psnr": "higher is better",
    "ssim": "higher is better",
    "fid": "lower is better",
    "lpips": "lower is better",
}
MAX_POINTS = 2000  # points drawn per curve; longer curves are thinned after smoothing

Series = tuple[list[int], list[float]]  # (steps, values)


class PlotError(ValueError):
    """Nothing (or not what was asked for) can be drawn from these logs; the message says why."""


# ---------------------------------------------------------------- reading
def read_log(path: str | os.PathLike) -> list[dict]:
    """The records of a ``log.jsonl``: JSON objects with an integer ``step``, in file order.

    Lines that do not parse (the last one cut short by a kill, a garbled one) are skipped, so a log
    of a running or killed run can always be drawn. Raises ``OSError`` if the file cannot be read.
    """
    records = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            step = record.get("step") if isinstance(record, dict) else None
            if isinstance(step, int) and not isinstance(step, bool):
                records.append(record)
    return records


def _collect(pairs: Iterable[tuple[int, dict]], skip: frozenset[str] = frozenset()) -> dict[str, Series]:
    """``{name: (steps, values)}`` of the numeric fields (not booleans) of each ``(step, fields)``."""
    series: dict[str, Series] = {}
    for step, fields in pairs:
        for name, value in fields.items():
            if name in skip or isinstance(value, bool) or not isinstance(value, int | float):
                continue
            steps, values = series.setdefault(name, ([], []))
            steps.append(step)
            values.append(float(value))
    return series


def loss_series(records: Sequence[dict]) -> dict[str, Series]:
    """Every loss term over steps: the numeric fields of the training lines (not ``eval`` lines),
    without the bookkeeping fields ``step``, ``epoch``, ``lr``, ``time_s``."""
    return _collect(((r["step"], r) for r in records if "eval" not in r), skip=BOOKKEEPING)


def lr_series(records: Sequence[dict]) -> Series | None:
    """The learning rate over steps (the generator's, as logged), or None if never logged."""
    return _collect((r["step"], {"lr": r["lr"]}) for r in records if "lr" in r and "eval" not in r).get("lr")


def metric_series(records: Sequence[dict]) -> dict[str, Series]:
    """Each evaluation metric over steps, from the ``{"step", "eval": {...}}`` lines."""
    return _collect((r["step"], r["eval"]) for r in records if isinstance(r.get("eval"), dict))


def loss_group(name: str) -> str:
    """``"discriminator"`` for the D terms (``D_real``, ``D_A``, ``D_A_gp``, ...), else ``"generator"``."""
    return "discriminator" if name == "D" or name.startswith("D_") else "generator"


# ---------------------------------------------------------------- smoothing
def default_smoothing(n: int) -> float:
    """An EMA weight that averages over about a tenth of a curve of ``n`` points (0 for <= 10 points,
    at most 0.99), so short test runs stay raw and long runs get readable trends."""
    return min(0.99, max(0.0, 1.0 - 10.0 / max(n, 1)))


def smooth(values: Sequence[float], weight: float | None = None) -> list[float]:
    """Debiased exponential moving average (as TensorBoard draws it): ``m = w m + (1 - w) x``, divided
    by ``1 - w^k`` after ``k`` finite values, so the curve does not start near zero. Non-finite values
    stay in place as NaN (a gap) and do not enter the average. ``weight`` None: ``default_smoothing``.
    """
    w = default_smoothing(len(values)) if weight is None else float(weight)
    if not 0.0 <= w < 1.0:
        raise PlotError(f"smoothing must be in [0, 1), got {weight}")
    out, mean, count = [], 0.0, 0
    for x in values:
        if not math.isfinite(x):
            out.append(math.nan)
            continue
        mean, count = w * mean + (1.0 - w) * x, count + 1
        out.append(mean / (1.0 - w**count))
    return out


def _thin(steps: Sequence[int], values: Sequence[float], limit: int = MAX_POINTS) -> Series:
    """Every k-th point (and the last) so that at most about ``limit`` points are drawn."""
    stride = max(1, math.ceil(len(steps) / limit))
    keep = list(range(0, len(steps), stride))
    if keep and keep[-1] != len(steps) - 1:
        keep.append(len(steps) - 1)
    return [steps[i] for i in keep], [values[i] for i in keep]


# ---------------------------------------------------------------- drawing
# The fixed part of a picture's layout, in inches: room for the x tick labels and the "step" label
# (bottom), for a panel's title (above each row) and for the x tick labels (plus an x label, when the
# upper panels have one) between two rows. The texts whose size varies (the suptitle, a figure legend,
# each panel's outside legend, the y tick labels) are measured by ``_place_axes``.
BOTTOM_IN, TITLE_IN, PAD_IN = 0.5, 0.25, 0.06
ROW_GAP_IN, XLABEL_IN = 0.3, 0.2


def _figure(rows: int, cols: int = 1, *, width: float = 7.5, row_height: float = 2.6):
    """A matplotlib Figure on an Agg canvas (no pyplot, no global backend switch) and its axes.

    No layout engine: ``_save`` places the axes once (``_place_axes``), which spares the engine's
    tight-bounding-box passes over every tick label (most of a picture's drawing time).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(width, max(row_height * rows, 2.5)), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps
        ax.grid(True, alpha=0.3)
    return fig, axes


def _place_axes(fig) -> None:
    """Set the subplot grid's margins from the fixed room for x ticks, titles and x labels and from
    what the measured texts need: the suptitle and figure legends above the grid (from the top edge
    down to their lowest point), the widest y axis (tick labels, offset, label) left of each column,
    the widest panel legend right of it (legends anchored at the axes' right edge). One pass over
    these few texts instead of a layout engine's passes over every text of the figure."""
    renderer = fig.canvas.get_renderer()
    width, height = fig.get_size_inches()
    dpi = fig.dpi
    suptitle = fig._suptitle  # the Text that ``fig.suptitle`` made (None without one)
    above = [suptitle] if suptitle is not None and suptitle.get_text() else []
    above += fig.legends
    top = max([height - a.get_window_extent(renderer).y0 / dpi for a in above], default=0.0)
    top += TITLE_IN + PAD_IN
    shown = [ax for ax in fig.axes if ax.get_visible()]
    legends = [ax.get_legend() for ax in shown if ax.get_legend() is not None]
    right = max([leg.get_window_extent(renderer).width / dpi for leg in legends], default=0.0) + 2 * PAD_IN
    y_axes = [(ax, ax.yaxis.get_tightbbox(renderer)) for ax in shown]  # tick labels, offset, label
    left = max([(ax.get_window_extent(renderer).x0 - box.x0) / dpi for ax, box in y_axes if box], default=0.0)
    left += PAD_IN
    rows, cols = fig.axes[0].get_subplotspec().get_gridspec().get_geometry()
    labelled = any(ax.get_xlabel() for ax in shown if not ax.get_subplotspec().is_last_row())
    row_gap = ROW_GAP_IN + TITLE_IN + (XLABEL_IN if labelled else 0.0)
    col_gap = left + right
    panel_h = max((height - top - BOTTOM_IN - (rows - 1) * row_gap) / rows, 0.5)
    panel_w = max((width - left - right - (cols - 1) * col_gap) / cols, 0.5)
    fig.subplots_adjust(
        left=left / width,
        right=1.0 - right / width,
        bottom=BOTTOM_IN / height,
        top=1.0 - top / height,
        hspace=row_gap / panel_h,
        wspace=col_gap / panel_w,
    )


def _autoscale(ax, curves: Iterable[Sequence[float]]) -> None:
    """Log y-axis when every value is positive and they span more than 1.5 decades (G_L1 next to G_GAN)."""
    finite = [v for values in curves for v in values if math.isfinite(v)]
    if finite and min(finite) > 0 and max(finite) / min(finite) > 10**1.5:
        ax.set_yscale("log")


def _draw_curve(ax, steps, values, *, label: str, color, smoothing: float | None):
    """The smoothed curve, with the raw values faint behind it (skipped when they are the same, as with
    ``smoothing`` 0: the learning rate, a schedule rather than a noisy measurement, is drawn as is)."""
    smoothed = smooth(values, smoothing)
    if smoothed != list(values):
        ax.plot(*_thin(steps, values), color=color, alpha=0.25, linewidth=0.8)
    marker = "o" if len(steps) <= 20 else None
    ax.plot(*_thin(steps, smoothed), color=color, linewidth=1.6, label=label, marker=marker, markersize=3)


def _save(fig, path: str | os.PathLike) -> Path:
    """Lay ``fig`` out (``_place_axes``) and write it atomically, in the format ``path``'s suffix names
    (PNG without one)."""
    _place_axes(fig)
    fmt = Path(path).suffix.lstrip(".").lower() or "png"
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format=fmt, facecolor="white"))


def _colors(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def draw_losses(
    records: Sequence[dict], path: str | os.PathLike, *, title: str = "", smoothing: float | None = None
) -> Path | None:
    """``losses.png``: generator terms, discriminator terms and learning rate over steps, one panel each
    (only the panels with data). Returns the path, or None if the log holds no losses yet."""
    losses, lr = loss_series(records), lr_series(records)
    groups = {"generator": {}, "discriminator": {}}
    for name, series in losses.items():
        groups[loss_group(name)][name] = series
    panels = [(f"{group} terms", group_series) for group, group_series in groups.items() if group_series]
    if not panels:
        return None
    if lr is not None:
        panels.append(("learning rate", {"lr": lr}))
    fig, axes = _figure(len(panels))
    for ax, (heading, group_series) in zip(axes[:, 0], panels, strict=True):
        colors = _colors(len(group_series))
        for (name, (steps, values)), color in zip(group_series.items(), colors, strict=True):
            weight = 0.0 if name == "lr" else smoothing
            _draw_curve(ax, steps, values, label=name, color=color, smoothing=weight)
        if heading != "learning rate":
            _autoscale(ax, [values for _, values in group_series.values()])
        ax.set_title(heading, fontsize=10, loc="left")
        ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    axes[-1, 0].set_xlabel("step")
    heading = "losses (smoothed; raw values faint)"
    fig.suptitle(f"{title}: {heading}" if title else heading, fontsize=11)
    return _save(fig, path)


def draw_metrics(records: Sequence[dict], path: str | os.PathLike, *, title: str = "") -> Path | None:
    """``metrics.png``: each evaluation metric over steps (one panel each, as measured: every point is
    already an average over the test split). Returns the path, or None without evaluation lines."""
    metrics = metric_series(records)
    if not metrics:
        return None
    fig, axes = _figure(len(metrics), row_height=2.2)
    colors = _colors(len(metrics))
    for ax, color, (name, (steps, values)) in zip(axes[:, 0], colors, metrics.items(), strict=True):
        ax.plot(steps, values, color=color, marker="o", markersize=3, linewidth=1.4)
        hint = METRIC_HINTS.get(name)
        ax.set_title(f"{name} ({hint})" if hint else name, fontsize=10, loc="left")
    axes[-1, 0].set_xlabel("step")
    fig.suptitle(f"{title}: test metrics" if title else "test metrics", fontsize=11)
    return _save(fig, path)


def write_run_plots(run_dir: str | os.PathLike) -> list[Path]:
    """Redraw ``losses.png`` (and ``metrics.png`` when the run evaluates) from ``<run>/log.jsonl``;
    returns the pictures written (none while the log has nothing to draw)."""
    folder = RunFolder(run_dir)
    if not folder.log.is_file():
        return []
    records = read_log(folder.log)
    written = [
        draw_losses(records, folder.losses_plot, title=folder.path.name),
        draw_metrics(records, folder.metrics_plot, title=folder.path.name),
    ]
    return [p for p in written if p is not None]


# ---------------------------------------------------------------- comparing runs
def run_labels(run_dirs: Sequence[str | os.PathLike]) -> list[str]:
    """A legend label per run: its folder name, with parent folders added until the labels differ."""
    paths = [Path(os.path.abspath(p)) for p in run_dirs]
    for depth in range(1, max((len(p.parts) for p in paths), default=1) + 1):
        labels = ["/".join(p.parts[-depth:]) for p in paths]
        if len(set(labels)) == len(labels):
            return labels
    return [str(p) for p in paths]  # the same folder given twice


def _select(available: dict[str, None], wanted: Sequence[str] | None, what: str) -> list[str]:
    if wanted is None:
        return list(available)
    missing = [name for name in wanted if name not in available]
    if missing:
        known = ", ".join(available) or "none"
        raise PlotError(f"no run logged the {what} {', '.join(missing)} (logged: {known})")
    return list(dict.fromkeys(wanted))


def compare_runs(
    runs: Sequence[tuple[str, Sequence[dict]]],
    out: str | os.PathLike,
    *,
    losses: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
    smoothing: float | None = None,
) -> Path:
    """One picture overlaying ``runs`` (``(label, log records)``): a panel per loss name (smoothed,
    raw faint; ``lr`` too) and per metric (as measured), each run in its own colour throughout.

    ``losses`` / ``metrics`` restrict the panels to those names (``[]``: none of that kind); a name
    no run logged is a ``PlotError``, as is a picture with no panel at all.
    """
    per_run = []
    for label, records in runs:
        run_losses, lr = loss_series(records), lr_series(records)
        if lr is not None:
            run_losses["lr"] = lr
        per_run.append((label, run_losses, metric_series(records)))
    loss_names = dict.fromkeys(name for _, run_losses, _ in per_run for name in run_losses)
    metric_names = dict.fromkeys(name for _, _, run_metrics in per_run for name in run_metrics)
    panels = [("loss", name) for name in _select(loss_names, losses, "loss")]
    panels += [("metric", name) for name in _select(metric_names, metrics, "metric")]
    if not panels:
        raise PlotError("nothing to draw: the runs' logs hold no losses or metrics yet")
    cols = 1 if len(panels) <= 3 else 2
    rows = math.ceil(len(panels) / cols)
    fig, axes = _figure(rows, cols, width=7.5 if cols == 1 else 12.0, row_height=2.6)
    colors = _colors(len(per_run))
    for ax, (kind, name) in zip(axes.flat, panels, strict=False):
        curves = []
        for (label, run_losses, run_metrics), color in zip(per_run, colors, strict=True):
            series = (run_losses if kind == "loss" else run_metrics).get(name)
            if series is None:
                continue
            steps, values = series
            curves.append(values)
            if kind == "metric":
                ax.plot(steps, values, color=color, marker="o", markersize=3, linewidth=1.4, label=label)
            else:
                weight = 0.0 if name == "lr" else smoothing
                _draw_curve(ax, steps, values, label=label, color=color, smoothing=weight)
        if kind == "loss" and name != "lr":
            _autoscale(ax, curves)
        hint = METRIC_HINTS.get(name) if kind == "metric" else None
        heading = "learning rate" if (kind, name) == ("loss", "lr") else f"{kind} {name}"
        ax.set_title(f"{heading} ({hint})" if hint else heading, fontsize=10, loc="left")
        ax.set_xlabel("step", fontsize=8)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=color, linewidth=2) for color in colors]
    labels = [label for label, _, _ in per_run]
    fig.legend(handles, labels, loc="outside upper center", ncol=min(4, len(per_run)), fontsize=9)
    return _save(fig, out)
