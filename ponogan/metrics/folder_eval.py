"""Folder evaluation: every requested metric of a folder of fakes against a folder of targets.

Pairing: a fake pairs with the target of the same relative path and stem (``a/x.png`` with
``a/x.jpg``); a MUNIT-style multi-sample ``x_s0.png, x_s1.png, ...`` (what ``ponogan translate
--n-styles K`` writes) pairs its ``_s0`` sample with ``x``. FID uses every file of both folders; diversity
groups ``x_s<k>`` files per input. A metric that cannot run (missing weight file, no pairs, images too
small) is recorded in ``EvalResult.skipped`` with the reason, and the other metrics still run.

``real`` may also be a pytorch-fid statistics file (``.npz`` with ``mu``, ``sigma``): then FID runs from it,
KID runs when the file also holds ``features``, diversity (fakes only) runs, and the metrics that need
target images are skipped with that reason. ``save_stats`` writes such a file for either side.

Under a launcher (``torchrun`` / ``accelerate launch``, see :mod:`.distributed`) each process decodes,
scores and extracts features for its shard; the results are gathered in order, every process computes
the same numbers as a one-process run, and only rank 0 writes the report.

Unreadable files (corrupt, truncated, not an image, too many pixels) are skipped, not fatal: every file
of ``real`` and ``fake`` is decoded once up front, the metrics run on the readable files (paired metrics
on the pairs whose both sides are readable), and ``EvalResult.unreadable`` and the report list what was
left out. Only a folder with no readable image at all stops the evaluation (``ValueError``).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path

import torch

from ponogan.core.distributed import ProcessGroup, current_group, process_device
from ponogan.core.runtime import resolve_device
from ponogan.data import IMG_EXTENSIONS, ImageLoadError
from ponogan.metrics.catalog import DEFAULT_METRICS, METRICS, parse_metrics, with_extras
from ponogan.metrics.diversity import diversity_per_input
from ponogan.metrics.fid import folder_feature_set, load_fid_model
from ponogan.metrics.frechet import frechet_distance_stats
from ponogan.metrics.images import keyed_images, list_images, read_image, read_mask
from ponogan.metrics.inception import FID_DIMS, FIDInceptionV3
from ponogan.metrics.kid import KID_SUBSET_SIZE, KID_SUBSETS, kernel_inception_distance
from ponogan.metrics.lpips_metric import load_lpips, lpips_per_image
from ponogan.metrics.paired import PAIRED_METRICS, match_pair
from ponogan.metrics.report import REPORT_FILES, EvalOutput, write_report
from ponogan.metrics.stats_file import (
    FeatureSet,
    check_new_file,
    is_stats_file,
    load_stats_file,
    save_stats_file,
)
from ponogan.metrics.weights import MissingWeightsError

STYLE_SUFFIX = re.compile(r"^(?P<base>.+)_s(?P<k>\d+)$")
STRUCTURE_METRICS = ("iou", "centroid")
LISTED_UNREADABLE = 20  # unreadable files named in metrics.md (all are counted)
MAX_LABELLED_ROWS = 64  # grid rows chosen by ``grid_labels`` (one per glyph character)


class MetricSkipped(Exception):
    """A metric could not be computed for a reason the user can act on (the message says which)."""


@dataclass
class EvalConfig:
    """What to evaluate and where to write the report.

    real / fake: folders of target and generated images; ``real`` may be a pytorch-fid statistics
    ``.npz`` instead. input: optional folder of the inputs (grid). masks: optional folder of target
    glyph masks (nonzero = glyph) for ``iou`` / ``centroid``; without it the target image is thresholded.
    fid_weights / lpips_weights: weight files (default: the torch hub cache). cache_dir: FID statistics
    cache (default ``~/.cache/ponogan/fid``). kid_subsets / kid_subset_size / kid_seed: KID's subsets.
    save_stats: write a statistics ``.npz`` of ``save_stats_of`` (``real`` for a folder ``real``, else
    ``fake``), with the features too when ``save_features``; never over an existing file.
    grid_labels: ``{pair key: row label}``: the grid shows exactly these pairs (in this order, e.g. one
    per glyph character) labelled; otherwise the first ``grid_rows`` pairs labelled by their key.
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
    grid_labels: dict[str, str] | None = None
    kid_subsets: int = KID_SUBSETS
    kid_subset_size: int = KID_SUBSET_SIZE
    kid_seed: int = 0
    save_stats: Path | None = None
    save_stats_of: str | None = None
    save_features: bool = False

    def __post_init__(self) -> None:
        self.metrics = tuple(parse_metrics(list(self.metrics)))
        for option in fields(self):  # annotations are strings here (``from __future__ import annotations``)
            value = getattr(self, option.name)
            if value is not None and "Path" in option.type:
                setattr(self, option.name, Path(value))
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.kid_subsets < 1 or self.kid_subset_size < 2:
            raise ValueError(
                "KID needs at least 1 subset of at least 2 images, "
                f"got {self.kid_subsets} of {self.kid_subset_size}"
            )
        if self.save_stats_of is None:
            self.save_stats_of = "fake" if is_stats_file(self.real) else "real"
        if self.save_stats_of not in ("real", "fake"):
            raise ValueError(f"save_stats_of must be 'real' or 'fake', got {self.save_stats_of!r}")
        if self.save_stats is not None and self.save_stats_of == "real" and is_stats_file(self.real):
            raise ValueError(
                f"--real {self.real} is already a statistics file; --save-stats-of fake saves the fakes'"
            )
        if self.save_stats is not None and not is_stats_file(self.save_stats):
            raise ValueError(
                f"--save-stats {self.save_stats}: name the statistics file with the .npz extension"
            )


@dataclass
class EvalResult:
    """Computed values (metric name -> float, plus ``kid_std`` with ``kid``), skipped metrics (name ->
    reason), written files (rank 0 only; empty in other processes), the image files left out because
    they could not be read (path -> reason), the statistics file written (or why it was not), and
    warnings about what was scored partly (e.g. pairs without a ``--masks`` file)."""

    metrics: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    num_pairs: int = 0
    unreadable: dict[Path, str] = field(default_factory=dict)
    stats_file: Path | None = None
    stats_error: str | None = None
    warnings: list[str] = field(default_factory=list)  # also in the report's notes


def split_style(key: str) -> tuple[str, int | None]:
    """``"dir/x_s3"`` -> ``("dir/x", 3)``; keys without a style suffix give ``(key, None)``."""
    match = STYLE_SUFFIX.match(key)
    return (match["base"], int(match["k"])) if match else (key, None)


def decode_error(path: Path) -> str | None:
    """Why ``path`` cannot be read as an image, or None when it decodes."""
    try:
        read_image(path)
    except (ImageLoadError, OSError) as err:
        return getattr(err, "reason", None) or str(err)
    return None


def eval_device(device: str | None, group: ProcessGroup) -> torch.device:
    """``device`` (default: ``auto``, see ``ponogan.core.runtime``) for this process (``process_device``)."""
    return torch.device(resolve_device(process_device(device, group)))


def list_unreadable(unreadable: dict[Path, str], limit: int, more: str = "") -> str:
    """The first ``limit`` unreadable files as ``path (reason)``, sorted, then ``; and N more<more>``."""
    listed = [f"{path} ({reason})" for path, reason in sorted(unreadable.items())]
    rest = f"; and {len(listed) - limit} more{more}" if len(listed) > limit else ""
    return "; ".join(listed[:limit]) + rest


def list_folder(folder: Path, name: str) -> list[Path]:
    """The image files under ``folder`` (option ``--<name>``); ``FileNotFoundError`` (one line saying what
    to give instead) when it is missing, a file, or holds no image file."""
    if not folder.is_dir():
        what = "does not exist"
        if folder.is_file():
            what = "is a file, not a folder" + (" (statistics files end in .npz)" if name == "real" else "")
        raise FileNotFoundError(f"--{name} folder {folder} {what}")
    files = list_images(folder)
    if not files:
        raise FileNotFoundError(
            f"--{name} folder {folder} holds no image files ({', '.join(IMG_EXTENSIONS)}): give the "
            "folder that holds the images"
        )
    return files


def scan_folder(folder: Path, name: str, group: ProcessGroup) -> tuple[list[Path], dict[Path, str]]:
    """Every image of ``folder`` decoded once (each process its shard): readable files and unreadable
    ones with the reason. ``FileNotFoundError`` / ``ValueError`` when the folder is missing, empty or
    holds no readable image (``name`` is the option, e.g. ``real``)."""
    files = list_folder(folder, name)
    errors = group.map(decode_error, files)
    unreadable = {path: reason for path, reason in zip(files, errors, strict=True) if reason is not None}
    readable = [path for path in files if path not in unreadable]
    if not readable:
        raise ValueError(
            f"--{name} folder {folder} holds no readable image: all {len(files)} failed to load "
            f"(e.g. {files[0]}: {unreadable[files[0]]})"
        )
    return readable, unreadable


class FolderEvaluation:
    """One evaluation run over folders; metric groups share the loaded images' pairing and models."""

    def __init__(self, config: EvalConfig, group: ProcessGroup | None = None):
        self.config = config
        self.group = group or current_group()
        self.unreadable: dict[Path, str] = {}
        self.pair_notes: list[str] = []  # metrics that had to leave some pairs out
        self.readable: dict[str, list[Path]] = {"real": []}
        self.real_stats = load_stats_file(config.real) if is_stats_file(config.real) else None
        self._feature_sets: dict[str, FeatureSet] = {}
        sides = ("fake",) if self.real_stats is not None else ("real", "fake")
        for name in sides:
            readable, unreadable = scan_folder(getattr(config, name), name, self.group)
            self.readable[name] = readable
            self.unreadable.update(unreadable)
        for name in ("masks", "input"):  # read later (masks, grid): missing folders stop the run now
            if getattr(config, name) is not None:
                list_folder(getattr(config, name), name)
        self.device = eval_device(config.device, self.group)

    @property
    def progress(self) -> bool:
        return self.config.progress and self.group.is_main

    def _readable(self, path: Path) -> bool:
        """Decode ``path`` once; an unreadable file is recorded in ``self.unreadable`` with the reason."""
        if path in self.unreadable:
            return False
        reason = decode_error(path)
        if reason is not None:
            self.unreadable[path] = reason
        return reason is None

    def _keyed_readable(self, name: str) -> dict[str, Path]:
        if not self.readable[name]:
            return {}
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

    @cached_property
    def fid_model(self) -> FIDInceptionV3:
        return load_fid_model(self.config.fid_weights, self.device)

    def _require_pairs(self, names: list[str]) -> None:
        if self.real_stats is not None:
            raise MetricSkipped(
                f"{', '.join(names)}: --real {self.config.real} is a statistics file; these metrics compare "
                "each fake with its target image: give the folder of target images as --real"
            )
        if not self.pairs:
            raise MetricSkipped(
                f"no fake in {self.config.fake} shares a relative path and stem with a target in "
                f"{self.config.real}: name each fake after its target (fake/a/x.png pairs with real/a/x.jpg)"
            )

    def _load_pair(self, fake_path: Path, real_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
        return match_pair(read_image(fake_path).to(self.device), read_image(real_path).to(self.device))

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

    def mask_coverage(self) -> str | None:
        """How many pairs have a ``--masks`` file, as a warning when some have none (those pairs score
        ``iou`` / ``centroid`` on the target's own ink), None when all have one or no mask metric runs.
        ``ValueError`` when ``--masks`` matches no pair: its masks would be silently ignored."""
        cfg = self.config
        if cfg.masks is None or not self.pairs or not set(cfg.metrics) & set(STRUCTURE_METRICS):
            return None
        matched = sum(key in self._masks for key, _, _ in self.pairs)
        if matched == 0:
            example = self.pairs[0][0]
            raise ValueError(
                f"--masks {cfg.masks}: no mask matches any of the {len(self.pairs)} pairs (masks pair by "
                f"relative path and stem, like the targets: e.g. {example}.png for the pair {example}); "
                "name the masks after the targets, or drop --masks"
            )
        if matched == len(self.pairs):
            return None
        return (
            f"--masks {cfg.masks} has a mask for {matched} of {len(self.pairs)} pairs; the other "
            f"{len(self.pairs) - matched} score {' and '.join(STRUCTURE_METRICS)} on the target's own ink"
        )

    def paired(self, names: list[str]) -> tuple[dict[str, float], dict[str, str]]:
        """L1 / PSNR / SSIM / IoU / centroid per pair, averaged in pair order. A pair a metric cannot score
        (an image too small for SSIM's window) is left out of that metric, with a note; the metric is
        skipped only when no pair can be scored (with the first failing pair's reason)."""
        self._require_pairs(names)
        needs_mask = any(name in STRUCTURE_METRICS for name in names)

        def score(pair: tuple[str, Path, Path]) -> dict[str, float | str]:
            """``{name: value}`` of one pair; a failure is the reason (a string) instead of a value."""
            key, fake_path, real_path = pair
            fake, real = self._load_pair(fake_path, real_path)
            mask_ok = not needs_mask or key not in self._masks or self._readable(self._masks[key])
            mask = self._target_mask(key, fake, real) if needs_mask and mask_ok else None
            out: dict[str, float | str] = {}
            for name in names:
                if name in STRUCTURE_METRICS and not mask_ok:
                    continue
                target = mask if name in STRUCTURE_METRICS else real
                try:
                    out[name] = float(PAIRED_METRICS[name](fake, target).mean())
                except ValueError as err:
                    out[name] = f"{name}: {err} (pair {key})"
            return out

        values: dict[str, list[float]] = defaultdict(list)
        failures: dict[str, list[str]] = defaultdict(list)
        for scores in self.group.map(score, self.pairs, progress=self.progress, desc="paired metrics"):
            for name, value in scores.items():
                (failures if isinstance(value, str) else values)[name].append(value)
        skipped: dict[str, str] = {}
        for name in names:
            if not values[name]:
                no_mask = f"{name}: no pair with a readable target mask"
                skipped[name] = failures[name][0] if failures[name] else no_mask
            elif failures[name]:
                self.pair_notes.append(f"{name} left out {len(failures[name])} pair(s): {failures[name][0]}")
        return {n: sum(values[n]) / len(values[n]) for n in names if n not in skipped}, skipped

    def lpips(self, names: list[str]) -> tuple[dict[str, float], dict[str, str]]:
        self._require_pairs(names)
        model = self.lpips_model

        def score(pair: tuple[str, Path, Path]) -> float:
            return float(lpips_per_image(model, *self._load_pair(pair[1], pair[2])).mean())

        values = self.group.map(score, self.pairs, progress=self.progress, desc="LPIPS")
        return {"lpips": sum(values) / len(values)}, {}

    def feature_set(self, name: str, *, need_features: bool = False) -> FeatureSet:
        """Inception statistics of the readable files of ``name`` (``real`` / ``fake``), and their features
        ``(N, 2048)`` when ``need_features``; a ``--real`` statistics file is returned as read. The real
        folder's are cached on disk when all its files are readable (see ``folder_feature_set``)."""
        known = self._feature_sets.get(name)
        if known is not None and (known.features is not None or not need_features):
            return known
        cfg = self.config
        if name == "real" and self.real_stats is not None:
            return self.real_stats
        files = self.readable[name]
        if len(files) < 2:
            raise ValueError(f"FID needs at least 2 readable images, found {len(files)} in --{name}")
        cache = {"cache_dir": cfg.cache_dir, "use_cache": name == "real"}  # the fakes change every run
        options = {"batch_size": cfg.batch_size, "progress": self.progress, "group": self.group}
        result = folder_feature_set(
            getattr(cfg, name), self.fid_model, files=files, need_features=need_features, **cache, **options
        )
        self._feature_sets[name] = result
        return result

    def inception(self, names: list[str]) -> tuple[dict[str, float], dict[str, str]]:
        """FID and KID between the fakes and the reals (folder or statistics file), from one set of
        Inception features per side; KID also writes ``kid_std`` (std over its subsets)."""
        cfg = self.config
        want_kid = "kid" in names
        fake = self.feature_set("fake", need_features=want_kid)
        real = self.feature_set("real", need_features=want_kid)
        if real.stats.mu.shape != (FID_DIMS,):
            raise ValueError(
                f"--real {cfg.real} holds {real.stats.mu.shape[0]}-d statistics; FID and KID here use the "
                f"{FID_DIMS}-d pool3 features of pytorch-fid's InceptionV3"
            )
        values: dict[str, float] = {}
        skipped: dict[str, str] = {}
        if "fid" in names:
            values["fid"] = frechet_distance_stats(fake.stats, real.stats)
        if want_kid and real.features is None:
            skipped["kid"] = (
                f"kid: --real {cfg.real} holds only statistics (mu, sigma) and KID needs the Inception "
                "features: write the file with `ponogan eval --real DIR --save-stats FILE --save-features`"
            )
        elif want_kid:
            kid = kernel_inception_distance(
                fake.features,
                real.features,
                num_subsets=cfg.kid_subsets,
                max_subset_size=cfg.kid_subset_size,
                seed=cfg.kid_seed,
            )
            values["kid"], values["kid_std"] = kid.mean, kid.std
        return values, skipped

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

        def score(paths: list[Path]) -> float:
            outputs = [read_image(p).to(self.device) for p in paths]
            outputs = [match_pair(outputs[0], o)[1] for o in outputs]
            return float(diversity_per_input(model, outputs).mean())

        scores = self.group.map(score, list(groups.values()), progress=self.progress, desc="diversity")
        return {"diversity": sum(scores) / len(scores)}, {}

    def grid(self) -> tuple[list[list[Path | None]], list[str], list[str]]:
        """Rows of the grid (``None`` = a missing input), its column labels and its row labels.

        Columns: input (when ``--input`` was given) | output | target, or the fakes alone when nothing is
        paired. Rows: the pairs named by ``config.grid_labels`` (one per glyph character), else the first
        ``grid_rows`` pairs, labelled by their key.
        """
        cfg = self.config
        inputs = keyed_images(cfg.input) if cfg.input is not None else {}
        by_key = {key: (fake, real) for key, fake, real in self.pairs}
        chosen = [(k, label) for k, label in (cfg.grid_labels or {}).items() if k in by_key]
        if not chosen:
            chosen = [(key, _short_label(key)) for key, _, _ in self.pairs[: cfg.grid_rows]]
        chosen = chosen[:MAX_LABELLED_ROWS]
        if not chosen:  # unpaired: show fakes alone
            fakes = list(self.fakes.items())[: cfg.grid_rows]
            return [[path] for _, path in fakes], ["output"], [_short_label(key) for key, _ in fakes]
        rows: list[list[Path | None]] = []
        for key, _ in chosen:
            fake, real = by_key[key]
            row: list[Path | None] = [fake, real]
            if cfg.input is not None:
                with_input = key in inputs and self._readable(inputs[key])
                row.insert(0, inputs[key] if with_input else None)
            rows.append(row)
        columns = ["input", "output", "target"] if cfg.input is not None else ["output", "target"]
        return rows, columns, [label for _, label in chosen]


def _short_label(key: str, width: int = 16) -> str:
    """A pair key shortened to ``width`` characters (its end, which differs between files)."""
    return key if len(key) <= width else "…" + key[-(width - 1) :]


GROUPS: dict[str, Callable[[FolderEvaluation, list[str]], tuple[dict[str, float], dict[str, str]]]] = {
    "paired": FolderEvaluation.paired,
    "lpips": FolderEvaluation.lpips,
    "fid": FolderEvaluation.inception,
    "diversity": FolderEvaluation.diversity,
}


def _save_statistics(run: FolderEvaluation, result: EvalResult) -> None:
    """Write ``config.save_stats`` (rank 0) from the side ``save_stats_of``; a failure is recorded."""
    cfg = run.config
    try:
        features = run.feature_set(cfg.save_stats_of, need_features=cfg.save_features)
        run.group.run_on_main(
            lambda: save_stats_file(cfg.save_stats, features, with_features=cfg.save_features)
        )
        result.stats_file = cfg.save_stats
    except (MissingWeightsError, OSError, ValueError) as err:
        result.stats_error = str(err)


def evaluate_folders(config: EvalConfig, *, notes: list[str] | None = None) -> EvalResult:
    """Compute ``config.metrics``; write ``metrics.json``, ``metrics.md`` and ``grid.png`` to ``config.out``
    (and ``config.save_stats`` when set); only rank 0 writes (``result.files`` is empty elsewhere).

    Raises ``FileNotFoundError`` for a missing or empty folder or statistics file, ``ValueError`` for a
    folder without a readable image, a malformed statistics file or ``config.masks`` matching no pair,
    and ``FileExistsError`` when
    ``config.out`` holds report files eval did not write or ``config.save_stats`` exists; every other
    problem is recorded in ``EvalResult.skipped``, ``unreadable`` or ``stats_error``.
    """
    EvalOutput(config.out).check_free(REPORT_FILES)  # before the (possibly long) computation
    if config.save_stats is not None:
        check_new_file(config.save_stats)
    run = FolderEvaluation(config)
    mask_warning = run.mask_coverage()  # before anything is computed
    by_group: dict[str, list[str]] = defaultdict(list)
    for name in config.metrics:
        by_group[METRICS[name].needs].append(name)
    result = EvalResult(num_pairs=len(run.pairs), warnings=[mask_warning] if mask_warning else [])
    for group, names in by_group.items():
        try:
            values, skipped = GROUPS[group](run, names)
        except (MissingWeightsError, MetricSkipped, ValueError) as err:
            values, skipped = {}, {name: str(err) for name in names}
        result.metrics.update(values)
        result.skipped.update(skipped)
    result.metrics = {
        name: result.metrics[name] for name in with_extras(config.metrics) if name in result.metrics
    }
    if config.save_stats is not None:
        _save_statistics(run, result)
    if run.real_stats is not None:
        features = "with" if run.real_stats.features is not None else "without"
        real_note = f"real: statistics file {config.real} ({features} features)"
    else:
        real_note = f"real: {config.real} ({len(run.readable['real'])} images)"
    report_notes = [
        f"fake: {config.fake} ({len(run.fakes)} images); {real_note}; pairs: {result.num_pairs}",
        *(notes or []),
    ]
    if "kid" in result.metrics:
        report_notes.append(
            f"kid: mean (std: kid_std) of the unbiased MMD^2 over {config.kid_subsets} subsets of "
            f"min({config.kid_subset_size}, n_fake, n_real) images, seed {config.kid_seed}"
        )
    if run.group.distributed:
        report_notes.append(f"computed by {run.group.world_size} processes")
    report_notes += run.pair_notes + result.warnings
    result.unreadable = dict(run.unreadable)
    if result.unreadable:
        report_notes.append(
            f"skipped {len(result.unreadable)} unreadable image(s), not counted in any metric: "
            + list_unreadable(result.unreadable, LISTED_UNREADABLE)
        )
    if result.stats_file is not None:
        report_notes.append(f"wrote the {config.save_stats_of} side's statistics to {result.stats_file}")
    if run.group.is_main:
        rows, columns, labels = run.grid()
        result.files = write_report(
            config.out,
            result.metrics,
            skipped=result.skipped,
            grid_rows=rows,
            notes=report_notes,
            column_labels=columns,
            row_labels=labels,
        )
    return result


def save_folder_statistics(
    folder: str | Path,
    path: str | Path,
    *,
    fid_weights: str | Path | None = None,
    device: str | None = None,
    with_features: bool = False,
    batch_size: int = 32,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> tuple[Path, int, dict[Path, str]]:
    """Write the statistics file ``path`` of the readable images of ``folder`` without evaluating
    anything (``ponogan eval --real DIR --save-stats FILE``): returns the file, the number of images and
    the unreadable files (path -> reason). Raises ``FileExistsError`` when ``path`` exists,
    ``MissingWeightsError`` without the FID weights; several processes share the work as in
    :func:`evaluate_folders`."""
    path = check_new_file(path)
    if not is_stats_file(path):
        raise ValueError(f"--save-stats {path}: name the statistics file with the .npz extension")
    folder = Path(folder)
    group = current_group()
    readable, unreadable = scan_folder(folder, "real", group)
    if len(readable) < 2:
        raise ValueError(f"statistics need at least 2 readable images, found {len(readable)} in {folder}")
    model = load_fid_model(fid_weights, eval_device(device, group))
    options = {"batch_size": batch_size, "progress": progress and group.is_main, "group": group}
    features = folder_feature_set(
        folder, model, files=readable, need_features=with_features, cache_dir=cache_dir, **options
    )
    group.run_on_main(lambda: save_stats_file(path, features, with_features=with_features))
    return path, len(readable), unreadable
