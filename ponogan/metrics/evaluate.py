"""Folder evaluation: every requested metric of a folder of fakes against a folder of targets.

Pairing: a fake pairs with the target of the same relative path and stem (``a/x.png`` with
``a/x.jpg``); a MUNIT-style multi-sample ``x_s0.png, x_s1.png, ...`` (what ``ponogan translate
--n-styles K`` writes) pairs its ``_s0`` sample with ``x``. FID uses every file of both folders; diversity
groups ``x_s<k>`` files per input. A metric that cannot run (missing weight file, no pairs, images too
small) is recorded in ``EvalResult.skipped`` with the reason, and the other metrics still run.

Unreadable files (corrupt, truncated, not an image, too many pixels) are skipped, not fatal: every file
of ``real`` and ``fake`` is decoded once up front, the metrics run on the readable files (paired metrics
on the pairs whose both sides are readable), and ``EvalResult.unreadable`` and the report list what was
left out. Only a folder with no readable image at all stops the evaluation (``ValueError``).
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

from ponogan.data import ImageLoadError

from .diversity import diversity_per_input
from .fid import extract_features, folder_statistics, load_fid_model
from .frechet import GaussianStats, frechet_distance_stats
from .images import keyed_images, list_images, read_image, read_mask
from .lpips_metric import load_lpips, lpips_per_image
from .paired import PAIRED_METRICS, match_pair
from .registry import DEFAULT_METRICS, METRICS, parse_metrics
from .report import REPORT_FILES, EvalOutput, write_report
from .weights import MissingWeightsError

STYLE_SUFFIX = re.compile(r"^(?P<base>.+)_s(?P<k>\d+)$")
STRUCTURE_METRICS = ("iou", "centroid")
LISTED_UNREADABLE = 20  # unreadable files named in metrics.md (all are counted)


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
    """Computed values (metric name -> float), skipped metrics (name -> reason), written files, and the
    image files left out because they could not be read (path -> reason)."""

    metrics: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    num_pairs: int = 0
    unreadable: dict[Path, str] = field(default_factory=dict)


def split_style(key: str) -> tuple[str, int | None]:
    """``"dir/x_s3"`` -> ``("dir/x", 3)``; keys without a style suffix give ``(key, None)``."""
    match = STYLE_SUFFIX.match(key)
    return (match["base"], int(match["k"])) if match else (key, None)


class FolderEvaluation:
    """One evaluation run over folders; metric groups share the loaded images' pairing and models."""

    def __init__(self, config: EvalConfig):
        self.config = config
        self.unreadable: dict[Path, str] = {}
        self.readable: dict[str, list[Path]] = {}
        for name in ("real", "fake"):
            folder = getattr(config, name)
            if not folder.is_dir():
                raise FileNotFoundError(f"--{name} folder {folder} does not exist")
            files = list_images(folder)
            if not files:
                raise FileNotFoundError(f"--{name} folder {folder} holds no images")
            self.readable[name] = [p for p in files if self._readable(p)]
            if not self.readable[name]:
                raise ValueError(
                    f"--{name} folder {folder} holds no readable image: all {len(files)} failed to load "
                    f"(e.g. {files[0]}: {self.unreadable[files[0]]})"
                )
        device = torch.device(config.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {str(device)!r} requested but CUDA is not available; use --device cpu")
        self.device = device

    def _readable(self, path: Path) -> bool:
        """Decode ``path`` once; an unreadable file is recorded in ``self.unreadable`` with the reason."""
        if path in self.unreadable:
            return False
        try:
            read_image(path)
        except (ImageLoadError, OSError) as err:
            self.unreadable[path] = getattr(err, "reason", None) or str(err)
            return False
        return True

    def _keyed_readable(self, name: str) -> dict[str, Path]:
        readable = set(self.readable[name])
        keyed = keyed_images(getattr(self.config, name))
        return {key: path for key, path in keyed.items() if path in readable}

    @cached_property
    def fakes(self) -> dict[str, Path]:
        """Readable fakes by pair key."""
        return self._keyed_readable("fake")

    @cached_property
    def pairs(self) -> list[tuple[str, Path, Path]]:
        """``(key, fake, real)`` with both files readable; a styled ``x_s0`` fake stands for ``x`` when no
        plain ``x`` exists."""
        real = self._keyed_readable("real")
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
        """Every mask file by key (unreadable ones included: their pairs skip ``iou`` / ``centroid``)."""
        return keyed_images(self.config.masks) if self.config.masks is not None else {}

    def paired(self, names: list[str]) -> tuple[dict[str, float], dict[str, str]]:
        """L1 / PSNR / SSIM / IoU / centroid per pair, averaged; a metric failing on a pair is skipped."""
        self._require_pairs()
        values: dict[str, list[float]] = defaultdict(list)
        skipped: dict[str, str] = {}
        needs_mask = any(name in STRUCTURE_METRICS for name in names)
        for key, fake, real in self._iterate_pairs("paired metrics"):
            mask_ok = not needs_mask or key not in self._masks or self._readable(self._masks[key])
            mask = self._target_mask(key, fake, real) if needs_mask and mask_ok else None
            for name in names:
                if name in skipped or (name in STRUCTURE_METRICS and not mask_ok):
                    continue
                target = mask if name in STRUCTURE_METRICS else real
                try:
                    values[name].append(float(PAIRED_METRICS[name](fake, target).mean()))
                except ValueError as err:
                    skipped[name] = f"{name}: {err} (pair {key})"
        for name in names:
            if name not in skipped and not values[name]:
                skipped[name] = f"{name}: no pair with a readable target mask"
        return {n: sum(values[n]) / len(values[n]) for n in names if n not in skipped}, skipped

    def lpips(self, names: list[str]) -> tuple[dict[str, float], dict[str, str]]:
        self._require_pairs()
        model = self.lpips_model
        values = [
            float(lpips_per_image(model, fake, real).mean()) for _, fake, real in self._iterate_pairs("LPIPS")
        ]
        return {"lpips": sum(values) / len(values)}, {}

    def fid(self, names: list[str]) -> tuple[dict[str, float], dict[str, str]]:
        """FID between the readable files of both folders; the real folder's statistics are cached when
        all its files are readable (the cache key covers every file of the folder)."""
        cfg = self.config
        model = load_fid_model(cfg.fid_weights, self.device)
        options = {"batch_size": cfg.batch_size, "progress": cfg.progress}

        def statistics(name: str) -> GaussianStats:
            files = self.readable[name]
            if len(files) < 2:
                raise ValueError(f"FID needs at least 2 readable images, found {len(files)} in --{name}")
            if name == "real" and not any(p in self.unreadable for p in list_images(cfg.real)):
                return folder_statistics(cfg.real, model, cache_dir=cfg.cache_dir, **options)
            return GaussianStats.from_features(extract_features(files, model, **options))

        real_stats = statistics("real")
        return {"fid": frechet_distance_stats(statistics("fake"), real_stats)}, {}

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
        """Up to ``grid_rows`` rows of readable files: input (when readable) | fake | target."""
        inputs = keyed_images(self.config.input) if self.config.input is not None else {}
        rows = []
        for key, fake, real in self.pairs[: self.config.grid_rows]:
            with_input = key in inputs and self._readable(inputs[key])
            rows.append([inputs[key], fake, real] if with_input else [fake, real])
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

    Raises ``FileNotFoundError`` for a missing or empty folder, ``ValueError`` for a folder without a
    readable image and ``FileExistsError`` when ``config.out`` holds report files eval did not write;
    every other problem skips only the metrics (or unreadable files) it concerns (see
    ``EvalResult.skipped`` and ``EvalResult.unreadable``).
    """
    EvalOutput(config.out).check_free(REPORT_FILES)  # before the (possibly long) computation
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
    result.unreadable = dict(run.unreadable)
    if result.unreadable:
        listed = [f"{path} ({reason})" for path, reason in sorted(result.unreadable.items())]
        more = len(listed) - LISTED_UNREADABLE
        report_notes.append(
            f"skipped {len(listed)} unreadable image(s), not counted in any metric: "
            + "; ".join(listed[:LISTED_UNREADABLE]) + (f"; and {more} more" if more > 0 else "")
        )
    result.files = write_report(
        config.out, result.metrics, skipped=result.skipped, grid_rows=run.grid_rows(), notes=report_notes
    )
    return result
