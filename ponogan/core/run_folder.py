"""The run folder's contract: every file name of a run, and its card ``config.json``, read, checked,
migrated from older layouts and written in one place. No torch import (the CLI and the app read cards
before torch loads).

A run folder (``RunFolder(path)`` names each entry)::

    config.json          the card (``RunCard``): family, generators' specs, data geometry, training config
    model.safetensors    every generator's weights under "<role>.<key>" (``ponogan.models.hub``)
    state/step_000500/   full training states, newest named by state/latest (``ponogan.training.state``):
                         nets.safetensors, optimizers.pt, schedulers.pt, rank_<i>.pt, trainer_state.json
    log.jsonl            one JSON record per logged step or evaluation
    metrics.json         the latest evaluation during training
    losses.png, metrics.png   pictures of log.jsonl (``ponogan.training.plots``)
    samples/step_000500.png   labelled sample grids
    train.lock           held by the run training in the folder

``RunCard.load(path)`` is the one reader of a card a user was given: a missing, unreadable, oversized,
deeply nested, non-mapping or foreign ``config.json`` is one ``RunFolderError`` line; a card written
by an older ponogan is migrated (``MIGRATIONS``, one step per ``format_version``); keys the card does
not know are kept, so a round trip through an older reader loses nothing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path

from ponogan.core.atomic import write_text_atomic
from ponogan.core.messages import UsageError

FORMAT_VERSION = 2  # the card layout this ponogan writes; ``MIGRATIONS`` brings older ones here

CONFIG = "config.json"
MODEL = "model.safetensors"
STATE_DIR = "state"
STATE_LATEST = "latest"  # state/latest: the name of the newest state
STATE_META = "trainer_state.json"  # written last into each state: marks it complete
STATE_NETS = "nets.safetensors"  # every network of the state, "<net>.<param>"
STATE_OPTIMIZERS = "optimizers.pt"
STATE_SCHEDULERS = "schedulers.pt"
LOG = "log.jsonl"
METRICS = "metrics.json"
LOSSES_PLOT = "losses.png"
METRICS_PLOT = "metrics.png"
SAMPLES_DIR = "samples"
LOCK = "train.lock"
# the files a run writes at the top of its folder (next to state/, samples/ and train.lock)
TOP_FILES = frozenset({MODEL, CONFIG, LOG, METRICS, LOSSES_PLOT, METRICS_PLOT})

# A card is a few kilobytes and nests about five levels; past these bounds it is not one of ours.
MAX_CARD_BYTES = 1_000_000
MAX_CARD_DEPTH = 32
SPEC_SHAPE = "{'name': preset, 'kwargs': {...}}"


class RunFolderError(UsageError):
    """A run folder or its card cannot be used; the one-line message names the file and what to do."""


class RunFolderMissing(RunFolderError, FileNotFoundError):
    """A run folder, or a file it needs, does not exist."""


@dataclass(frozen=True)
class RunFolder:
    """The paths of one run folder: ``RunFolder("runs/x").config`` is ``runs/x/config.json``."""

    path: Path

    def __init__(self, path: str | os.PathLike):
        object.__setattr__(self, "path", Path(path))

    @classmethod
    def of(cls, path: str | os.PathLike) -> RunFolder:
        """The run folder of ``path``: the folder itself, or the folder of its ``model.safetensors``
        (any ``.safetensors`` path or file names its folder)."""
        path = Path(path)
        return cls(path.parent if path.suffix == ".safetensors" or path.is_file() else path)

    config = property(lambda self: self.path / CONFIG)
    model = property(lambda self: self.path / MODEL)
    state_dir = property(lambda self: self.path / STATE_DIR)
    log = property(lambda self: self.path / LOG)
    metrics = property(lambda self: self.path / METRICS)
    losses_plot = property(lambda self: self.path / LOSSES_PLOT)
    metrics_plot = property(lambda self: self.path / METRICS_PLOT)
    samples_dir = property(lambda self: self.path / SAMPLES_DIR)
    lock = property(lambda self: self.path / LOCK)

    def state(self, step: int) -> Path:
        """The training state of ``step``: ``state/step_000500``."""
        return self.state_dir / state_name(step)

    def sample(self, step: int) -> Path:
        """The sample grid of ``step``: ``samples/step_000500.png``."""
        return self.samples_dir / f"{state_name(step)}.png"

    def require_model(self, weights: Path | None = None) -> None:
        """``RunFolderMissing`` naming the folder, or the card or weights file (``weights``, default
        ``model.safetensors``), when it does not exist."""
        if not self.path.exists():
            raise RunFolderMissing(f"checkpoint folder not found: {self.path}")
        for needed in (self.config, weights or self.model):
            if not needed.is_file():
                raise RunFolderMissing(
                    f"checkpoint file missing: {needed} (a run folder needs {CONFIG} and {MODEL}, "
                    "written by save_pretrained)"
                )

    def is_run(self) -> bool:
        """Whether the folder holds both a card and weights (what translate, eval and the app load)."""
        return self.config.is_file() and self.model.is_file()


def state_name(step: int) -> str:
    """The folder of the training state of ``step`` under ``state/``: ``step_000500``."""
    return f"step_{step:06d}"


def rank_file(rank: int) -> str:
    """The per-process file of a training state: ``rank_0.pt``."""
    return f"rank_{rank}.pt"


# ---------------------------------------------------------------- the card


@dataclass(frozen=True)
class DataGeometry:
    """The data a run was trained on, as its card records it (``config.json``'s ``data``).

    ``load_size`` (images are resized to it), ``crop_size`` (then cropped to it) and ``image_size``
    (the side of built-in glyphs) are the data options of the run; ``options`` holds its other
    options as recorded (channels, fonts, variant, pairing, ...). ``side`` is the side of the
    square items the generators were trained on.
    """

    mode: str | None = None
    root: str | None = None
    load_size: int | None = None
    crop_size: int | None = None
    image_size: int | None = None
    preprocess: str | None = None
    direction: str | None = None
    options: dict = field(default_factory=dict)

    @property
    def side(self) -> int | None:
        """The training side: glyphs' ``image_size``, the crop when the preprocess crops (or is not
        recorded), else ``load_size`` (its items keep each image's scaled size); None when the card
        does not say."""
        if self.mode == "glyphs":
            return self.image_size
        crops = self.preprocess is None or "crop" in self.preprocess
        return self.crop_size if crops else self.load_size

    @classmethod
    def from_dict(cls, values: dict, where: str) -> DataGeometry:
        """The geometry of a card's ``data`` mapping; ``RunFolderError`` for a field of the wrong type."""
        known = {f.name for f in fields(cls)} - {"options"}
        for key in ("load_size", "crop_size", "image_size"):
            value = values.get(key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise RunFolderError(f"{where}: data.{key} must be a whole number, got {value!r:.40}")
        for key in ("mode", "root", "preprocess", "direction"):
            value = values.get(key)
            if value is not None and not isinstance(value, str):
                raise RunFolderError(f"{where}: data.{key} must be a string, got {type(value).__name__}")
        return cls(
            **{k: v for k, v in values.items() if k in known},
            options={k: v for k, v in values.items() if k not in known},
        )

    def to_dict(self) -> dict:
        """The card's ``data`` mapping: the fields that are set, then the other options."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "options"}
        return {**{k: v for k, v in values.items() if v is not None}, **self.options}


@dataclass(frozen=True)
class RunCard:
    """A run's ``config.json``: what translate, eval, the app and ``--resume`` read of a run.

    ``generators`` maps each role to its spec ``{"name": preset, "kwargs": {...}}`` (enough to rebuild
    the network with ``ponogan.models.create_generator``); ``train`` is the training config as recorded
    (``TrainConfig.to_dict()``); ``extra`` keeps every other key (runtime, config changes, import
    provenance, keys of a newer ponogan) so a round trip loses nothing.
    """

    family: str | None = None
    generators: dict[str, dict] = field(default_factory=dict)
    data: DataGeometry | None = None
    train: dict | None = None
    run_name: str | None = None
    step: int | None = None
    metrics: dict | None = None
    extra: dict = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    @property
    def direction(self) -> str:
        """The dataset direction the run was trained in (``AtoB`` unless its data says ``BtoA``)."""
        return (self.data.direction if self.data else None) or "AtoB"

    @property
    def domains(self) -> tuple[str, str] | None:
        """Where the dataset's domains A and B come from: glyph fonts, list files or the root's
        ``A``/``B`` sides; None when the card does not say. The run's input domain is the first
        unless ``direction`` is ``BtoA``."""
        data = self.data
        if data is None:
            return None
        opts = data.options
        if data.mode == "glyphs" and opts.get("font_a") and opts.get("font_b"):
            return str(opts["font_a"]), str(opts["font_b"])
        if opts.get("list_a") and opts.get("list_b"):
            return str(opts["list_a"]), str(opts["list_b"])
        if data.root:
            return f"{data.root} A", f"{data.root} B"
        return None

    # ---- reading
    @classmethod
    def load(cls, path: str | os.PathLike, *, generators: bool = True, family: bool = False) -> RunCard:
        """The card at ``path``, checked and migrated to ``FORMAT_VERSION``.

        ``generators`` (the default): it must list the generators (a card of a model to load);
        ``family``: it must name its family. Raises ``RunFolderMissing`` / ``RunFolderError``, one line.
        """
        path = Path(path)
        values = read_json(path)
        if not isinstance(values, dict):
            raise RunFolderError(f"{path} does not hold a JSON object: it is not a ponogan {CONFIG}")
        card = cls.from_dict(values, str(path))
        if generators and not card.generators:
            raise RunFolderError(
                f"{path} has no 'generators' entry (role -> {{name, kwargs}}): it is not a ponogan run "
                "card; pass a run folder written by ponogan train or ponogan import-official"
            )
        if family and card.family is None:
            raise RunFolderError(f"{path}: 'family' must be a string, got NoneType")
        return card

    @classmethod
    def from_dict(cls, values: dict, where: str = CONFIG, *, migrate: bool = True) -> RunCard:
        """A card from its JSON mapping. ``migrate``: ``values`` may be of an older format (no
        ``format_version`` is format 1), brought to ``FORMAT_VERSION``; otherwise it is of this one.
        ``RunFolderError`` names the first entry of a wrong type."""
        values = migrate_card(values, where) if migrate else dict(values)
        values.pop("format_version", None)
        if values.get("family") is not None and not isinstance(values["family"], str):
            raise RunFolderError(f"{where}: 'family' must be a string, got {type(values['family']).__name__}")
        for key in ("data", "train", "metrics"):
            if values.get(key) is not None and not isinstance(values[key], dict):
                raise RunFolderError(f"{where}: '{key}' must be a mapping, got {type(values[key]).__name__}")
        step = values.get("step")
        if step is not None and (not isinstance(step, int) or isinstance(step, bool)):
            raise RunFolderError(f"{where}: 'step' must be a whole number, got {step!r:.40}")
        specs = values.get("generators")
        if specs is not None and not isinstance(specs, dict):
            raise RunFolderError(f"{where}: 'generators' must be a mapping of role -> {SPEC_SHAPE}")
        for role, spec in (specs or {}).items():
            check_spec_shape(where, role, spec)
        data = values.get("data")
        known = {f.name for f in fields(cls)} - {"extra", "format_version"}
        return cls(
            family=values.get("family"),
            generators=dict(specs or {}),
            data=None if data is None else DataGeometry.from_dict(data, where),
            train=values.get("train"),
            run_name=values.get("run_name"),
            step=step,
            metrics=values.get("metrics"),
            extra={k: v for k, v in values.items() if k not in known},
        )

    # ---- writing
    def to_dict(self) -> dict:
        """The JSON mapping of the card (``format_version`` first, the generators last)."""
        values = {
            "format_version": self.format_version,
            "family": self.family,
            "data": self.data.to_dict() if self.data is not None else None,
            "train": self.train,
            "run_name": self.run_name,
            "step": self.step,
            "metrics": self.metrics,
        }
        values = {k: v for k, v in values.items() if v is not None}
        return {**values, **self.extra, "generators": self.generators}

    def to_json(self) -> str:
        """The card as ``config.json`` text; ``TypeError`` / ``ValueError`` for a value JSON cannot hold
        (raised before anything is written)."""
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def save(self, path: str | os.PathLike) -> Path:
        """Write the card to ``path`` atomically (temp file + ``os.replace``); returns ``path``."""
        return write_text_atomic(Path(path), self.to_json())


def check_spec_shape(where: str, role: object, spec: object) -> None:
    """``RunFolderError`` unless ``spec`` is ``{"name": str, "kwargs": mapping}`` (kwargs optional)."""
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise RunFolderError(f"{where}: generator {role!r} must be {SPEC_SHAPE}, got {spec!r:.80}")
    if not isinstance(spec.get("kwargs", {}), dict):
        raise RunFolderError(
            f"{where}: generator {role!r}: kwargs must be a mapping, got {spec['kwargs']!r:.80}"
        )


def read_json(path: Path) -> object:
    """``path`` parsed as JSON: ``RunFolderMissing`` when it is not a file, ``RunFolderError`` (one line)
    when it is over ``MAX_CARD_BYTES``, not UTF-8 JSON, or nested deeper than ``MAX_CARD_DEPTH``."""
    nested = f"{path} is nested too deeply to be a ponogan {CONFIG} (over {MAX_CARD_DEPTH} levels)"
    try:
        if path.stat().st_size > MAX_CARD_BYTES:
            raise RunFolderError(f"{path} is over {MAX_CARD_BYTES:,} bytes: it is not a ponogan {CONFIG}")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RunFolderMissing(f"{path} does not exist") from None
    except (OSError, UnicodeDecodeError) as err:
        raise RunFolderError(f"cannot read {path}: {err}") from None
    try:
        values = json.loads(text)
    except json.JSONDecodeError as err:
        raise RunFolderError(f"{path} is not valid JSON: {err}") from None
    except RecursionError:
        raise RunFolderError(nested) from None
    if nesting_depth(values) > MAX_CARD_DEPTH:
        raise RunFolderError(nested)
    return values


def nesting_depth(value: object) -> int:
    """How deeply ``value`` (parsed JSON) nests lists and dicts; iterative, so no recursion limit applies."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


# ---------------------------------------------------------------- older layouts


def _v1_to_v2(values: dict) -> dict:
    """Format 1 (cards without ``format_version``, ponogan before the run-folder contract): ``data``
    may name its root ``dataroot``, and its ``image_size`` held the training side for every mode (the
    crop of the folder modes). Format 2 keeps ``image_size`` for the glyph side it configures: a
    folder-mode card gets its crop back as ``crop_size`` (when it lacks one) and the ``image_size``
    its training config recorded (or none)."""
    data = values.get("data")
    if not isinstance(data, dict):
        return values
    data = dict(data)
    if data.get("root") is None and "dataroot" in data:
        data["root"] = data.pop("dataroot")
    if data.get("mode") not in (None, "glyphs") and "image_size" in data:
        side = data.pop("image_size")
        data.setdefault("crop_size", side)
        train = values.get("train") if isinstance(values.get("train"), dict) else {}
        options = train.get("data", {}).get("options") if isinstance(train.get("data"), dict) else None
        if isinstance(options, dict) and "image_size" in options:
            data["image_size"] = options["image_size"]
    return {**values, "data": data}


# format_version -> the step that brings a card of that format to the next one
MIGRATIONS: dict[int, Callable[[dict], dict]] = {1: _v1_to_v2}


def migrate_card(values: dict, where: str = CONFIG) -> dict:
    """``values`` (a card's JSON mapping of any format up to ``FORMAT_VERSION``) in this format, with
    ``format_version`` set; ``RunFolderError`` for a format this ponogan does not know."""
    version = values.get("format_version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise RunFolderError(f"{where}: 'format_version' must be a whole number from 1, got {version!r:.40}")
    if version > FORMAT_VERSION:
        raise RunFolderError(
            f"{where} has format_version {version}, newer than this ponogan reads ({FORMAT_VERSION}); "
            "upgrade ponogan to use this run"
        )
    while version < FORMAT_VERSION:
        values = MIGRATIONS[version](values)
        version += 1
    return {**values, "format_version": version}
