"""Typed training configuration: the one source of defaults for every training run.

A ``TrainConfig`` is built from a YAML preset (``load_config``), then command-line overrides
(``apply_overrides(cfg, {"model.shortcut": "ms", ...})``) replace single fields by dotted path.
Every family starts from its own defaults (``Family.defaults`` in ``ponogan.families``: the paper
settings of pix2pix, CycleGAN, MUNIT, ...) before the YAML is merged on top, so a preset only lists
what it changes; a preset can also name a ``base:`` preset and list only what it changes from that one.
Unknown keys raise ``ConfigError`` naming the key and the valid ones; ``validate`` refuses values out of
range, and presets are read with the strict YAML loader (``presets.load_yaml``). Hand-written rather than
OmegaConf: see docs/training.md (*Config reference*) for the measured reasons.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ponogan.core.messages import UsageError
from ponogan.core.settings import DEVICES, MAX_IMAGE_SIDE, MIXED_PRECISION, NETWORK_LIMITS, SHORTCUTS
from ponogan.data import DataOptions
from ponogan.families import DEFAULT_FAMILY, family_names, get_family
from ponogan.training.presets import MAX_YAML_DEPTH, PresetError, find_preset, load_yaml

LR_POLICIES = ("constant", "linear", "step")


class ConfigError(UsageError):
    """A configuration a user wrote is invalid (unknown key, bad value, bad YAML); exit status 2."""


@dataclass
class ModelConfig:
    """Networks, by ``ponogan.models`` preset name plus keyword overrides.

    ``shortcut`` is the PONO axis of every preset (``None``: plain baseline, ``"ms"``: PONO + Moment
    Shortcut, ``"dms"``: Dynamic Moment Shortcut). Channel counts come from ``data.options``
    (``input_nc`` / ``output_nc``); everything else (``ngf``/``dim``, ``norm``, ``n_blocks``,
    ``num_downs``, ``ndf``, ``n_layers``, ...) goes through the ``*_kwargs`` dicts unchanged.

    ``init_type`` (generators) / ``init_type_d`` (discriminators) pick the weight initialisation the
    trainers apply to freshly built nets (``ponogan.models.init``: normal, xavier, kaiming, orthogonal,
    default = PyTorch's own); ``init_gain`` is the std of ``normal`` and the gain of xavier/orthogonal.
    ``None`` means the family's original (``Family.init``); ``TrainConfig`` replaces it by the
    concrete name, so a saved config records the init that was used.
    """

    generator: str = "unet_256"
    shortcut: str | None = None
    generator_kwargs: dict = field(default_factory=dict)
    discriminator: str = "patchgan"
    discriminator_kwargs: dict = field(default_factory=dict)
    init_type: str | None = None
    init_type_d: str | None = None
    init_gain: float = 0.02

    def __post_init__(self) -> None:
        from ponogan.models.init import INIT_TYPES  # here: the config module stays free of torch

        for name in ("init_type", "init_type_d"):
            value = getattr(self, name)
            if value is not None and value not in INIT_TYPES:
                raise ConfigError(f"{name} {value!r} is not valid; valid values: {', '.join(INIT_TYPES)}")
        gain = self.init_gain
        if isinstance(gain, bool) or not (isinstance(gain, int | float) and math.isfinite(gain) and gain > 0):
            raise ConfigError(f"init_gain must be a positive number, got {self.init_gain!r}")


@dataclass
class DataConfig:
    """Where the images come from and how they are batched.

    ``mode``/``root``/``options`` go to ``ponogan.data.build_dataset``; ``glyphs`` is the built-in data
    (``root`` may be null). ``eval_max_items`` caps the test split used for metrics (null: all of it;
    at least 1 otherwise). The image sides in ``options`` (``load_size``, ``crop_size``, ``image_size``)
    are at most ``settings.MAX_IMAGE_SIDE`` (4096) pixels.
    ``num_workers: null`` picks the DataLoader workers per device (none on the CPU, up to 8 per GPU).
    ``options.crop_in_decay: false`` stops the random crop in the epochs of the ``linear`` decay
    (CUT's rule: train items are resized to ``crop_size``; see ``DataOptions``), exactly resumable.
    """

    mode: str = "glyphs"
    root: str | None = None
    batch_size: int = 1
    eval_batch_size: int = 16
    eval_max_items: int | None = None
    num_workers: int | None = None
    options: DataOptions = field(default_factory=DataOptions)


@dataclass
class OptimConfig:
    """Adam for G and D, and the learning-rate schedule (per optimizer step).

    ``linear``: constant until ``decay_start`` (a fraction of ``train.max_steps``), then linearly to 0
    (CycleGAN/pix2pix). ``step``: multiply by ``gamma`` every ``step_size`` steps (MUNIT).
    """

    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    weight_decay: float = 0.0
    lr_policy: str = "linear"
    decay_start: float = 0.5
    step_size: int = 100_000
    gamma: float = 0.5
    grad_accum_steps: int = 1


@dataclass
class Pix2PixLoss:
    """pix2pix: conditional GAN + ``l1`` x L1(G(A), B) (Isola et al. 2017, lambda = 100).

    ``gp``: weight of the WGAN-GP gradient penalty in the D update, used only with ``gan_mode: wgangp``
    (Gulrajani et al. 2017, lambda = 10); the same field in every family's loss section.
    """

    gan_mode: str = "vanilla"
    gan: float = 1.0
    l1: float = 100.0
    gp: float = 10.0


@dataclass
class CycleGANLoss:
    """CycleGAN: LSGAN + ``cycle`` x cycle L1 + ``identity`` x ``cycle`` x identity L1 (the identity
    weight is relative to the cycle weight, as in the original code); ``gp``: WGAN-GP weight (wgangp only)."""

    gan_mode: str = "lsgan"
    gan: float = 1.0
    cycle: float = 10.0
    identity: float = 0.5
    pool_size: int = 50
    gp: float = 10.0


@dataclass
class MunitLoss:
    """MUNIT: GAN + ``image`` x within-domain recon + ``content``/``style`` latent recon (+ recon of the
    PONO moments with a shortcut) + optional ``cycle`` x cycle recon (0 = off).

    ``moments``: ``None`` (default) is the official PONO-MUNIT rule: the L1s of every moment map (mean
    and std per level) are summed and added to the content term, weighted by ``content``. A number
    keeps the older rule: those L1s averaged, weighted by ``moments``, logged as ``recon_moments``.
    The GAN loss is summed over the discriminator's scales (NVlabs/MUNIT). ``gp``: WGAN-GP weight.
    """

    gan_mode: str = "lsgan"
    gan: float = 1.0
    image: float = 10.0
    content: float = 1.0
    style: float = 1.0
    moments: float | None = None
    cycle: float = 0.0
    gp: float = 10.0


@dataclass
class LoopConfig:
    """The training loop: length, hardware, checkpoints and evaluation (all counted in optimizer steps).

    ``max_minutes`` stops cleanly (with a checkpoint) after that much wall time; ``stop_at_step`` stops
    cleanly at that step without changing the schedule (``max_steps`` still sets the LR decay; a later
    ``--resume`` continues; ignored once the run is past it); ``keep_last`` full
    training states are kept in ``state/``; ``eval_every``/``save_every``/``sample_every`` of 0 mean
    only at the end. ``style_seed`` fixes MUNIT's style codes for samples and evaluation.

    ``device: auto`` trains on CUDA when a GPU is visible, then MPS, else the CPU.
    ``mixed_precision: null`` takes accelerate's own setting (``accelerate launch --mixed_precision``,
    ``ACCELERATE_MIXED_PRECISION``, ``accelerate config``), else the device default
    (``ponogan.core.runtime``); the run's ``config.json`` records what was used under ``runtime``.
    """

    max_steps: int = 1000
    max_minutes: float | None = None
    stop_at_step: int | None = None
    device: str = "auto"
    mixed_precision: str | None = None
    save_every: int = 500
    keep_last: int = 2
    eval_every: int = 0
    sample_every: int = 250
    num_samples: int = 8
    log_every: int = 10
    style_seed: int = 1234
    resume: bool = False


@dataclass
class TrainConfig:
    """A whole run: ``family`` picks the trainer and the type of ``loss``."""

    family: str = DEFAULT_FAMILY
    run_name: str = ""
    output_dir: str | None = None
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: Pix2PixLoss | CycleGANLoss | MunitLoss = field(default_factory=Pix2PixLoss)
    train: LoopConfig = field(default_factory=LoopConfig)

    def __post_init__(self) -> None:
        """Resolve ``model.init_type``/``init_type_d`` of ``None`` to the family's original init."""
        model = self.model
        if isinstance(model, ModelConfig) and None in (model.init_type, model.init_type_d):
            defaults = get_family(self.family).init
            self.model = dataclasses.replace(
                model, init_type=model.init_type or defaults[0], init_type_d=model.init_type_d or defaults[1]
            )

    @property
    def run_dir(self) -> Path:
        """The run folder: ``output_dir`` or ``checkpoints/<run_name>``."""
        if self.output_dir:
            return Path(self.output_dir)
        return Path("checkpoints") / (self.run_name or self.family)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Check/convert one leaf value against its type hint (``int``, ``float | None``, ``dict``...).

    Leaf unions are all ``X | None`` (the ``loss`` union of dataclasses is merged, never coerced).
    """
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        if value is None:
            return None
        hint = next(option for option in typing.get_args(hint) if option is not type(None))
    if hint is bool:
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if hint in (int, float):
        wrong = ConfigError(f"{where} must be {'an integer' if hint is int else 'a number'}, got {value!r}")
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise wrong
        if isinstance(value, int):  # exact: float() would round integers beyond 2**53
            return value if hint is int else float(value)
        try:
            number = float(value)
        except ValueError:
            raise wrong from None
        if hint is float:
            return number
        if not math.isfinite(number) or number != int(number):
            raise wrong
        return int(number)
    if hint is str:
        if isinstance(value, bool):  # NOTE: YAML 1.1 reads `mixed_precision: no` as False
            return "yes" if value else "no"
        if not isinstance(value, str | int | float):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return str(value)
    if hint is dict or typing.get_origin(hint) is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a mapping, got {value!r:.80}")
        if nesting(value) > MAX_YAML_DEPTH:
            raise ConfigError(f"{where} is nested deeper than {MAX_YAML_DEPTH} levels")
        return copy.deepcopy(value)
    return value


def nesting(value: Any) -> int:
    """How deeply ``value``'s dicts and lists nest (0 for a scalar), counted without recursion so that a
    hostile depth cannot raise ``RecursionError``."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list | tuple):
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_YAML_DEPTH:
                return deepest  # deep enough to refuse: no need to walk the rest
            stack.extend((child, depth) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _merge(obj: Any, values: dict[str, Any], where: str) -> Any:
    """Return a copy of dataclass ``obj`` with ``values`` (nested dicts) merged in, type-checked.

    Nested dataclasses merge key by key; every other field (``*_kwargs`` dicts too) is replaced whole.
    """
    if not isinstance(values, dict):
        raise ConfigError(f"{where or 'config'} must be a mapping, got {values!r}")
    under = f" under {where}" if where else ""
    names = [f.name for f in dataclasses.fields(obj)]
    odd = [k for k in values if not isinstance(k, str)]
    if odd:
        raise ConfigError(f"config keys{under} must be names, got {odd[0]!r}")
    unknown = sorted(set(values) - set(names))
    if unknown:
        keys = ", ".join(f"{where}.{k}" if where else k for k in unknown)
        raise ConfigError(f"unknown config key(s) {keys}; valid keys{under}: {', '.join(names)}")
    hints = typing.get_type_hints(type(obj))
    changes = {}
    for key, value in values.items():
        path = f"{where}.{key}" if where else key
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            changes[key] = _merge(current, value, path)
        else:
            changes[key] = _coerce(value, hints[key], path)
    try:
        return dataclasses.replace(obj, **changes)
    except (TypeError, ValueError) as err:  # e.g. DataOptions.__post_init__ validation
        raise ConfigError(f"{where or 'config'}: {err}") from err


def from_dict(values: dict[str, Any]) -> TrainConfig:
    """Build a validated ``TrainConfig`` from a (YAML/JSON) dict on top of the family's defaults.

    Also reads a run folder's saved ``config.json`` (its ``train`` entry), which lists every field.
    """
    if not isinstance(values, dict):
        raise ConfigError(f"a training config must be a mapping, got {type(values).__name__}")
    family = values.get("family", DEFAULT_FAMILY)
    if not isinstance(family, str) or family not in family_names():
        raise ConfigError(f"unknown family {family!r}; valid families: {', '.join(family_names())}")
    spec = get_family(family)
    base = _merge(TrainConfig(family=family, loss=spec.loss()), spec.defaults, "")
    cfg = _merge(base, values, "")
    validate(cfg)
    return cfg


CHOICES: dict[str, tuple] = {
    "model.shortcut": (None, *SHORTCUTS),
    "train.device": DEVICES,
    "train.mixed_precision": (None, *MIXED_PRECISION),
    "optim.lr_policy": LR_POLICIES,
}
# the smallest valid value of each count (an unset optional count, None, is not checked)
MINIMUMS: dict[str, int] = {
    **dict.fromkeys(("train.max_steps", "train.keep_last", "data.batch_size", "data.eval_batch_size"), 1),
    **dict.fromkeys(("optim.grad_accum_steps", "optim.step_size"), 1),
    **dict.fromkeys(("train.save_every", "train.eval_every", "train.sample_every", "train.log_every"), 0),
    **dict.fromkeys(("train.num_samples", "data.num_workers"), 0),
    "data.eval_max_items": 1,  # null: the whole test split
}
SEED_RANGE = 2**32  # numpy's seeds: 0 <= seed < 2**32
IMAGE_SIDES = ("data.options.load_size", "data.options.crop_size", "data.options.image_size")
# non-negative finite weights of every loss section (a negative one would train towards the opposite)
LOSS_WEIGHTS = ("gan", "l1", "gp", "cycle", "identity", "image", "content", "style", "moments")


def validate(cfg: TrainConfig) -> None:
    """Check choices and ranges a user can get wrong; raise ``ConfigError`` with the valid values.

    Seeds numpy cannot take, network widths and depths outside ``settings.NETWORK_LIMITS``, image
    sides over ``settings.MAX_IMAGE_SIDE``, learning rates that are not positive, loss weights that
    are negative and run names that would leave ``checkpoints/`` are refused here, before anything is
    built. What needs the networks themselves (shapes, channels) is checked by
    ``ponogan.training.preflight`` on the meta device.
    """

    def get(dotted: str) -> Any:
        return functools.reduce(getattr, dotted.split("."), cfg)

    for name, choices in CHOICES.items():
        if get(name) not in choices:
            shown = ", ".join("null" if c is None else str(c) for c in choices)
            raise ConfigError(f"{name} must be one of {shown}; got {get(name)!r}")
    if not isinstance(cfg.loss, get_family(cfg.family).loss):
        raise ConfigError(f"loss section does not match family {cfg.family!r}")
    for name, low in MINIMUMS.items():
        if get(name) is not None and get(name) < low:
            raise ConfigError(f"{name} must be at least {low}, got {get(name)}")
    if cfg.train.max_minutes is not None and not cfg.train.max_minutes > 0:
        raise ConfigError(f"train.max_minutes must be positive, got {cfg.train.max_minutes}")
    for name in ("seed", "train.style_seed"):
        if not 0 <= get(name) < SEED_RANGE:
            raise ConfigError(f"{name} must be in [0, 2**32), i.e. 0 to {SEED_RANGE - 1}, got {get(name)}")
    _check_optim(cfg.optim)
    _check_loss(cfg)
    for name in IMAGE_SIDES:
        if get(name) > MAX_IMAGE_SIDE:
            raise ConfigError(f"{name} must be at most {MAX_IMAGE_SIDE} pixels, got {get(name)}")
    _check_run_name(cfg.run_name)
    for section in ("generator_kwargs", "discriminator_kwargs"):
        kwargs = getattr(cfg.model, section)
        for key, (low, high) in NETWORK_LIMITS.items():
            value = kwargs.get(key)
            if key in kwargs and (
                isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high
            ):
                raise ConfigError(
                    f"model.{section}.{key} must be an integer from {low} to {high}, got {value!r}"
                )


def _check_range(
    name: str, value: float, low: float, high: float, *, low_open: bool, high_open: bool
) -> None:
    """Refuse ``value`` outside the interval (NaN too), naming it as ``[low, high)``-style."""
    above = value > low if low_open else value >= low
    below = value < high if high_open else value <= high
    if not (above and below):
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ConfigError(f"{name} must be in {interval}, got {value}")


def _check_optim(o: OptimConfig) -> None:
    """Positive finite learning rates, Adam's betas in [0, 1), a decay factor in (0, 1]."""
    for name in ("lr_g", "lr_d"):
        value = getattr(o, name)
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(f"optim.{name} must be a positive finite number, got {value}")
    for name in ("beta1", "beta2"):
        _check_range(f"optim.{name}", getattr(o, name), 0, 1, low_open=False, high_open=True)
    if not (math.isfinite(o.weight_decay) and o.weight_decay >= 0):
        raise ConfigError(f"optim.weight_decay must be a finite number >= 0, got {o.weight_decay}")
    _check_range("optim.gamma", o.gamma, 0, 1, low_open=True, high_open=False)
    _check_range("optim.decay_start", o.decay_start, 0, 1, low_open=False, high_open=False)


def _check_loss(cfg: TrainConfig) -> None:
    """Finite non-negative loss weights, then the family's own checks (``Family.check``)."""
    loss = cfg.loss
    for name in LOSS_WEIGHTS:
        value = getattr(loss, name, None)
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise ConfigError(f"loss.{name} must be a finite number >= 0, got {value}")
    if getattr(loss, "pool_size", 0) < 0:
        raise ConfigError(f"loss.pool_size must be at least 0, got {loss.pool_size}")
    check = get_family(cfg.family).check
    if check is not None:
        check(cfg)


def _check_run_name(name: str) -> None:
    """A run name is one folder name under ``checkpoints/``: no path separators, not ``.`` or ``..``."""
    if name in (".", "..") or any(sep in name for sep in ("/", "\\", "\0")) or Path(name).is_absolute():
        raise ConfigError(
            f"run_name must be a plain folder name (no /, \\ or ..), got {name!r}; "
            "use --output-dir to put a run elsewhere"
        )


def deep_merge(parent: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    """``child`` on top of ``parent``: mappings merge key by key, anything else (``null`` too) replaces."""
    merged = dict(parent)
    for key, value in child.items():
        both = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = deep_merge(merged[key], value) if both else value
    return merged


def _read_preset(path: Path, chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A preset's values with its ``base:`` chain merged underneath (``base`` names a preset or a path).

    A base name is looked up next to the preset first, then like ``--config`` (``find_preset``).
    """
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}{_preset_hint(path)}")
    try:
        values = load_yaml(path.read_text(encoding="utf-8"), str(path)) or {}
    except PresetError as err:
        raise ConfigError(str(err)) from None
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"{path} is not a YAML text file (byte {err.start} is not UTF-8); pass a .yaml preset"
        ) from err
    except OSError as err:
        raise ConfigError(f"cannot read {path}: {err.strerror}") from err
    except yaml.YAMLError as err:
        mark, problem = getattr(err, "problem_mark", None), getattr(err, "problem", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark and problem else err
        raise ConfigError(f"{path} is not valid YAML ({where})") from err
    if not isinstance(values, dict):
        raise ConfigError(f"{path} must hold a mapping of config keys, got {type(values).__name__}")
    if "base" not in values:
        return values
    base = values.pop("base")
    if not isinstance(base, str) or not base:
        raise ConfigError(f"{path}: base must be a preset name or a YAML path, got {base!r}")
    sibling = [path.parent / f"{base}{suffix}" for suffix in ("", ".yaml", ".yml")]
    try:
        parent = next((p for p in sibling if p.is_file()), None) or find_preset(base)
    except PresetError as err:
        raise ConfigError(f"{path}: base {base!r} not found next to it or as a preset ({err})") from None
    chain = (*chain, path.resolve())
    if parent.resolve() in chain:
        loop = " -> ".join(p.name for p in (*chain, parent.resolve()))
        raise ConfigError(f"{chain[0]}: presets form a base cycle ({loop})")
    return deep_merge(_read_preset(parent, chain), values)


def _preset_hint(path: Path) -> str:
    """``; did you mean the preset NAME`` for a missing ``NAME.yaml`` given without a folder."""
    if path.suffix not in (".yaml", ".yml") or path.parent != Path("."):
        return ""
    try:
        find_preset(path.stem)
    except PresetError:
        return ""
    return f"; did you mean the preset {path.stem} (--config {path.stem})?"


def load_config(path: str | Path | None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Read a YAML preset (``None``: family defaults only), apply dotted overrides, validate.

    ``run_name`` defaults to the preset's file name (``configs/pix2pix_glyphs.yaml`` -> ``pix2pix_glyphs``),
    also for a preset built on a ``base:``.
    """
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        values = _read_preset(path)
        values.setdefault("run_name", path.stem)
    family = (overrides or {}).get("family", values.get("family", DEFAULT_FAMILY))
    values = {**values, "family": family}
    try:
        cfg = from_dict(values)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}" if path else str(err)) from err
    return apply_overrides(cfg, overrides or {})


def apply_overrides(cfg: TrainConfig, overrides: dict[str, Any]) -> TrainConfig:
    """Replace fields by dotted path (``{"optim.lr_g": "1e-4", "model.generator_kwargs.ngf": 8}``).

    String values are parsed as YAML scalars (``"null"`` -> None, ``"8"`` -> 8), then type-checked by
    ``from_dict``, which also rejects unknown keys (any key is allowed inside a ``*_kwargs`` dict).
    """
    values = cfg.to_dict()
    for dotted, raw in overrides.items():
        value = parse_scalar(raw) if isinstance(raw, str) else raw
        if dotted == "family":
            if value != cfg.family:
                raise ConfigError(
                    f"family cannot be changed by an override ({cfg.family} -> {value}); "
                    "start from a preset of that family instead"
                )
            continue
        *parents, leaf = dotted.split(".")
        node = values
        for i, key in enumerate(parents):
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise ConfigError(
                    f"cannot set {dotted}: {'.'.join(parents[: i + 1])} is a value ({child!r}), not a section"
                )
            node = child
        node[leaf] = value
    return from_dict(values)


def parse_scalar(text: str) -> Any:
    """A command-line value as YAML would read it (``8``, ``1e-4``, ``true``, ``null``, ``[1, 2]``).

    YAML 1.1 leaves ``1e-4``, ``nan`` and ``inf`` as strings; those become floats.
    """
    try:
        value = load_yaml(text, f"the value {text!r}")
    except PresetError as err:
        raise ConfigError(str(err)) from None
    except yaml.YAMLError:
        return text
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    return value
