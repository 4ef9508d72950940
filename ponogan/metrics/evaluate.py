"""Folder evaluation: every requested metric of a folder of fakes against a folder of targets.

Pairing: a fake pairs with the target of the same relative path and stem (``a/x.png`` with
``a/x.jpg``); a MUNIT-style multi-sample ``x_s0.png, x_s1.png, ...`` (what ``ponogan translate
--n-styles K`` writes) pairs its ``_s0`` sample with ``x``. FID uses every file of both folders; diversity
groups ``x_s<k>`` files per input. A metric that cannot run (missing weight file, no pairs, images too
small) is recorded in ``EvalResult.skipped`` with the reason, and the other metrics still run.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import torch
from tqdm import tqdm

from .diversity import diversity_per_input
from .fid import fid_between_folders, load_fid_model
from .images import keyed_images, list_images, read_image, read_mask
from .lpips_metric import load_lpips, lpips_per_image
from .paired import PAIRED_METRICS, match_pair
from .registry import DEFAULT_METRICS, METRICS, parse_metrics
from .report import write_report
from .weights import MissingWeightsError

STYLE_SUFFIX = re.compile(r"^(?P<base>.+)_s(?P<k>\d+)$")
STRUCTURE_METRICS = ("iou", "centroid")


class MetricSkipped(Exception):
    """A metric could not be computed for a reason the user can act on (the message says which)."""


@dataclass
class EvalConfig:
    """What to evaluate and where to write the report.

    real / fake: folders of target and generated images. input: optional folder of the inputs (grid).
    masks: optional folder of target glyph masks (nonzero = glyph) for ``iou`` / ``centroid``;
    without it the target image is thresholded. fid_weights / lpips_weights: weight files (default:
    the torch hub cache). cache_dir: FID statistics cache (default ``~/.cache/ponogan/fid``).
    """

    real: Path
    fake: Path
    out: Path
    metrics: tuple[str, ...] = DEFAULT_METRICS
    input: Path | None = None
    masks: Path | None = None
    fid_weights: Path | None = None
    lpips_weights: Path | None = None
    lpips_net: str = "alex"
    device: str | None = None
    batch_size: int = 32
    cache_dir: Path | None = None
    progress: bool = True
    grid_rows: int = 8

    def __post_init__(self) -> None:
        self.metrics = tuple(parse_metrics(list(self.metrics)))
        for name in ("real", "fake", "out", "input", "masks", "fid_weights", "lpips_weights", "cache_dir"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, Path(value))
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")


@dataclass
class EvalResult:
    """Computed values (metric name -> float), skipped metrics (name -> reason), written files."""

    metrics: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    num_pairs: int = 0


def split_style(key: str) -> tuple[str, int | None]:
    """``"dir/x_s3"`` -> ``("dir/x", 3)``; keys without a style suffix give ``(key, None)``."""
    match = STYLE_SUFFIX.match(key)
    return (match["base"], int(match["k"])) if match else (key, None)


class FolderEvaluation:
    """One evaluation run over folders; metric groups share the loaded images' pairing and models."""

    def __init__(self, config: EvalConfig):
        self.config = config
        for name in ("real", "fake"):
            folder = getattr(config, name)
            if not folder.is_dir():
                raise FileNotFoundError(f"--{name} folder {folder} does not exist")
            if not list_images(folder):
                raise FileNotFoundError(f"--{name} folder {folder} holds no images")
        device = torch.device(config.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {str(device)!r} requested but CUDA is not available; use --device cpu")
        self.device = device

    @cached_property
    def fakes(self) -> dict[str, Path]:
        return keyed_images(self.config.fake)

    @cached_property
    def pairs(self) -> list[tuple[str, Path, Path]]:
        """``(key, fake, real)``; a styled ``x_s0`` fake stands for ``x`` when no plain ``x`` exists."""
        real = keyed_images(self.config.real)
        pairs = {key: (key, path, real[key]) for key, path in self.fakes.items() if key in real}
        for key, path in self.fakes.items():
            base, k = split_style(key)
            if k == 0 and base in real and base not in pairs:
                pairs[base] = (base, path, real[base])
        return [pairs[k] for k in sorted(pairs)]

    @cached_property
    def lpips_model(self) -> torch.nn.Module:
        return load_lpips(self.config.lpips_net, self.config.lpips_weights, self.device)

    def _require_pairs(self) -> None:
        if not self.pairs:
            raise MetricSkipped(
                f"no fake in {self.config.fake} shares a relative path and stem with a target in "
                f"{self.config.real}"
            )

    def _iterate_pairs(self, desc: str):
        for key, fake_path, real_path in tqdm(
            self.pairs, desc=desc, disable=not self.config.progress, leave=False
        ):
            fake, real = match_pair(
                read_image(fake_path).to(self.device), read_image(real_path).to(self.device)
            )
            yield key, fake, real

    def _target_mask(self, key: str, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """The ``--masks`` file of ``key`` as a bool ``(1, 1, H, W)`` at the fake's size, else ``real``."""
        masks = self._masks
        if key not in masks:
            return real
        mask = read_mask(masks[key]).to(fake.device)
        if mask.shape[-2:] != fake.shape[-2:]:
            mask = torch.nn.functional.interpolate(mask.float(), size=fake.shape[-2:], mode="nearest") > 0.5
        return mask

    @cached_property
    def _masks(self) -> dict[str, Path]:
        return keyed_images(self.config.masks) if self.config.masks is not None else {}

    def paired(self, names: list[str]) -> tuple[dict[str, float], dict[str, str]]:
        """L1 / PSNR / SSIM / IoU / centroid per pair, averaged; a metric failing on a pair is skipped."""
        self._require_pairs()
        values: dict[str, list[float]] = defaultdict(list)
        skipped: dict[str, str] = {}
        needs_mask = any(name in STRUCTURE_METRICS for name in names)
        for key, fake, real in self._iterate_pairs("paired metrics"):
            mask = self._target_mask(key, fake, real) if needs_mask else None
            for name in names:
                if name in skipped:
                    continue
                target = mask if name in STRUCTURE_METRICS else real
                try:
                    values[name].append(float(PAIRED_METRICS[name](fake, target).mean()))
                except ValueError as err:
                    skipped[name] = f"{name}: {err} (pair {key})"
        return {n: sum(values[n]) / len(values[n]) for n in names if n not in skipped}, skipped

    def lpips(self, names: list[str]) -> tuple[dict[str, float], dict[str, str]]:
        self._require_pairs()
        model = self.lpips_model
        values = [
            float(lpips_per_image(model, fake, real).mean()) for _, fake, real in self._iterate_pairs("LPIPS")
        ]
        return {"lpips": sum(values) / len(values)}, {}

    def fid(self, names: list[str]) -> tuple[dict[str, float], dict[str, str]]:
        cfg = self.config
        model = load_fid_model(cfg.fid_weights, self.device)
        value = fid_between_folders(
            cfg.real,
            cfg.fake,
            model=model,
            cache_dir=cfg.cache_dir,
            batch_size=cfg.batch_size,
            progress=cfg.progress,
        )
        return {"fid": value}, {}

    def diversity(self, names: list[str]) -> tuple[dict[str, float], dict[str, str]]:
        """Mean pairwise LPIPS over the ``x_s<k>`` samples of each input that has at least two."""
        groups: dict[str, list[Path]] = defaultdict(list)
        for key, path in sorted(self.fakes.items()):
            base, k = split_style(key)
            if k is not None:
                groups[base].append(path)
        groups = {base: paths for base, paths in groups.items() if len(paths) >= 2}
        if not groups:
            raise MetricSkipped(
                "diversity needs several samples per input named <name>_s0, <name>_s1, ... in "
                f"{self.config.fake} "
                "(ponogan translate --n-styles K, or a MUNIT checkpoint)"
            )
        model = self.lpips_model
        scores = []
        for paths in tqdm(groups.values(), desc="diversity", disable=not self.config.progress, leave=False):
            outputs = [read_image(p).to(self.device) for p in paths]
            outputs = [match_pair(outputs[0], o)[1] for o in outputs]
            scores.append(float(diversity_per_input(model, outputs).mean()))
        return {"diversity": sum(scores) / len(scores)}, {}

    def grid_rows(self) -> list[list[Path]]:
        inputs = keyed_images(self.config.input) if self.config.input is not None else {}
        rows = []
        for key, fake, real in self.pairs[: self.config.grid_rows]:
            rows.append([inputs[key], fake, real] if key in inputs else [fake, real])
        if not rows:  # unpaired: show fakes alone
            rows = [[p] for p in list(self.fakes.values())[: self.config.grid_rows]]
        return rows


GROUPS: dict[str, Callable[[FolderEvaluation, list[str]], tuple[dict[str, float], dict[str, str]]]] = {
    "paired": FolderEvaluation.paired,
    "lpips": FolderEvaluation.lpips,
    "fid": FolderEvaluation.fid,
    "diversity": FolderEvaluation.diversity,
}


def evaluate_folders(config: EvalConfig, *, notes: list[str] | None = None) -> EvalResult:
    """Compute ``config.metrics``; write ``metrics.json``, ``metrics.md`` and ``grid.png`` to ``config.out``.

    Raises ``FileNotFoundError`` for a missing or empty folder; every other problem skips only the
    metrics it concerns (see ``EvalResult.skipped``).
    """
    run = FolderEvaluation(config)
    by_group: dict[str, list[str]] = defaultdict(list)
    for name in config.metrics:
        by_group[METRICS[name].needs].append(name)
    result = EvalResult(num_pairs=len(run.pairs))
    for group, names in by_group.items():
        try:
            values, skipped = GROUPS[group](run, names)
        except (MissingWeightsError, MetricSkipped, ValueError) as err:
            values, skipped = {}, {name: str(err) for name in names}
        result.metrics.update(values)
        result.skipped.update(skipped)
    result.metrics = {name: result.metrics[name] for name in config.metrics if name in result.metrics}
    report_notes = [
        f"fake: {config.fake} ({len(run.fakes)} images); real: {config.real}; pairs: {result.num_pairs}",
        *(notes or []),
    ]
    result.files = write_report(
        config.out, result.metrics, skipped=result.skipped, grid_rows=run.grid_rows(), notes=report_notes
    )
    return result
