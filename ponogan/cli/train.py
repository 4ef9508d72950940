"""``ponogan train`` and ``python train.py``: YAML preset + flags + dotted overrides -> ``train(cfg)``.

Overrides name any config field by its dotted path: ``--optim.lr_g 1e-4`` or ``optim.lr_g=1e-4``
(whatever argparse leaves unparsed must be one of those).
With ``--resume`` and no ``--config``, the run folder's own saved config is used. A field set twice to
different values (``--max-steps 2 train.max_steps=3``, ``--model cycle_gan`` on a pix2pix preset) is
refused naming both. Before ``train`` starts, ``preflight`` checks the device, the precision and every
network on the meta device, so a config that cannot train fails before anything is written.

Every error a user can hit is one ``error: ...`` line on stderr, never a traceback: exit status 2 for
a bad config or run folder (nothing was written), 1 for a run that failed (NaN/Inf loss, broken
state, disk full), 130 for an abort by a second Ctrl-C.
"""

from __future__ import annotations

import argparse
import errno
import sys
from pathlib import Path
from typing import Any

from ponogan.cli import CommandParser, HelpFormatter
from ponogan.core.messages import EXIT_STATUS_HELP
from ponogan.core.run_folder import RunCard, RunFolder, RunFolderError
from ponogan.core.settings import DEVICES, MIXED_PRECISION
from ponogan.families import get_family
from ponogan.training.config import (
    ConfigError,
    TrainConfig,
    apply_overrides,
    from_dict,
    load_config,
)
from ponogan.training.presets import (
    PACKAGE_CONFIGS,
    PresetError,
    find_preset,
    list_presets,
    translate_repo_flags,
)

DEFAULT_PRESET = "pix2pix_pono_ms_glyphs"

# the flags that set one config field each: flag -> (dotted field, add_argument options)
FIELD_FLAGS: dict[str, tuple[str, dict[str, Any]]] = {
    "--output-dir": ("output_dir", {"help": "run folder (default: checkpoints/<run_name>)"}),
    "--max-steps": ("train.max_steps", {"type": int, "help": "optimizer steps in total"}),
    "--max-minutes": (
        "train.max_minutes",
        {"type": float, "help": "stop cleanly, with a checkpoint, after this much wall time"},
    ),
    "--seed": ("seed", {"type": int, "help": "seed of weights, data order and sampling"}),
    "--device": (
        "train.device",
        {
            "choices": DEVICES,
            "help": "auto (default: CUDA when visible, then MPS, else CPU), cpu, cuda or mps",
        },
    ),
    "--mixed-precision": (
        "train.mixed_precision",
        {
            "choices": MIXED_PRECISION,
            "help": "no, bf16 (CPU or GPU) or fp16 (GPU only); default: accelerate's setting "
            "(accelerate launch --mixed_precision, accelerate config), else bf16 on GPUs "
            "and bf16-capable CPUs, else no",
        },
    ),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default=None,
        help=f"preset name (see --list-presets) or YAML file (default: {DEFAULT_PRESET}; "
        "with --resume and no --config, the run folder's saved config)",
    )
    parser.add_argument(
        "--list-presets", action="store_true", help="list the presets with a line each, and exit"
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue from the run folder's latest checkpoint"
    )
    parser.add_argument(
        "--allow-config-change",
        action="store_true",
        help="with --resume: continue even when the model (family, networks, shortcut, image size, "
        "channels, batch size) differs from the run's; the change is recorded in the run",
    )
    for flag, (_, options) in FIELD_FLAGS.items():
        parser.add_argument(flag, default=None, **options)
    parser.epilog = (
        "Any config field can be overridden by its dotted path: KEY=VALUE or --KEY VALUE, "
        "e.g. model.generator_kwargs.ngf=32 or --optim.lr_g 1e-4 (docs/training.md lists the keys). "
        + EXIT_STATUS_HELP
    )


def parse_args(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse flags; the arguments argparse does not know must be overrides (``a.b=value``,
    ``--a.b=value``, ``--a.b value``), and the CycleGAN/pix2pix repository's flags (``--dataroot``,
    ``--netG``...) become their ponogan fields. ``args.overrides`` is ``{dotted field: value}``."""
    try:
        argv, repo_overrides, repo_family = translate_repo_flags(argv)
    except PresetError as err:
        parser.error(str(err))
    args, rest = parser.parse_known_args(argv)
    overrides: dict[str, Any] = {}
    sources: dict[str, str] = {}  # field -> what set it, to name both sides of a conflict
    conflicts: list[str] = []

    def put(key: str, value: Any, source: str) -> None:
        if key in overrides and str(overrides[key]) != str(value):
            conflicts.append(f"{sources[key]} and {source} both set {key}, to different values; give it once")
        overrides[key], sources[key] = value, source

    while rest:
        token = rest.pop(0)
        key, eq, value = token.removeprefix("--").partition("=")
        if not key or ("." not in key if token.startswith("--") else not eq):
            parser.error(f"unrecognized argument {token}; overrides look like section.key=value")
        if not eq:
            if not rest:
                parser.error(f"override {token} needs a value")
            value = rest.pop(0)
        put(key, value, f"{key}={value}")
    for key, value in repo_overrides.items():
        put(key, value, f"a CycleGAN-repository flag ({key}={value})")
    for flag, (field_path, _) in FIELD_FLAGS.items():
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is not None:
            put(field_path, value, f"{flag} {value}")
    if args.resume:
        overrides["train.resume"] = True
    args.overrides, args.repo_family, args.conflicts = overrides, repo_family, conflicts
    return args


def _saved_config(path: Path) -> TrainConfig:
    """The training config a run folder's ``config.json`` records (its ``train`` entry)."""
    hint = "pass --config with the run's preset to resume it"
    try:
        card = RunCard.load(path, generators=False)
    except RunFolderError as err:
        raise ConfigError(f"cannot read the run's saved config: {err}; {hint}") from None
    if card.train is None:
        raise ConfigError(f"{path} has no 'train' entry (it was not written by ponogan train); {hint}")
    try:
        return from_dict(card.train)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}; {hint}") from err


def build_config(args: argparse.Namespace) -> TrainConfig:
    """The run's config: preset (or the saved one when resuming), then flags and overrides.

    No ``--config``: the preset of the repository's ``--model`` family, else ``DEFAULT_PRESET``.
    """
    overrides = args.overrides
    if getattr(args, "conflicts", None):
        raise ConfigError(args.conflicts[0])
    if args.config is None and args.resume and args.output_dir:
        run = Path(args.output_dir)
        saved = RunFolder(run).config
        if saved.is_file():
            return apply_overrides(_saved_config(saved), overrides)
        from ponogan.training.state import latest_state

        if run.is_dir() and latest_state(run) is not None:
            raise ConfigError(
                f"{run} has a training state but no config.json; pass --config with the run's "
                "preset to resume it"
            )
    name = args.config or args.repo_family or DEFAULT_PRESET
    try:
        preset = find_preset(name)
    except PresetError as err:
        if args.config:
            raise ConfigError(str(err)) from None
        raise ConfigError(
            f"default preset {name} not found in ./configs or {PACKAGE_CONFIGS}; pass --config PATH"
        ) from None
    cfg = load_config(preset, overrides)
    if args.config and args.repo_family and cfg.family != args.repo_family:
        raise ConfigError(
            f"--model asks for the {args.repo_family} family but --config {args.config} is a {cfg.family} "
            "preset; drop --model, or pick a preset of that family (--list-presets)"
        )
    if "data.root" in overrides and "data.mode" not in overrides and cfg.data.mode == "glyphs":
        # --dataroot on a glyph preset: the family's own folder layout, as the CycleGAN repo reads it
        cfg = apply_overrides(cfg, {"data.mode": get_family(cfg.family).folder_mode})
    return cfg


def print_presets() -> None:
    presets = list_presets()
    width = max(map(len, presets), default=0)
    for name, description in presets.items():
        print(f"{name:<{width}}  {description}")
    print(f"\nuse one: python train.py --config NAME   (default: {DEFAULT_PRESET})")


def _report(result) -> None:
    run = result.run_dir
    samples = sorted(RunFolder(run).samples_dir.glob("step_*.png"))
    lines = [f"\nTraining stopped ({result.stopped_by}) at step {result.step}.", f"Run folder: {run}"]
    if result.metrics:
        lines.append("Test metrics: " + ", ".join(f"{k} {v:.4g}" for k, v in result.metrics.items()))
    if samples:
        lines.append(f"Latest samples (labelled columns): {samples[-1]}")
    lines += [
        "Open it:",
        f"  python app.py --checkpoint {run}",
        f"  ponogan translate --checkpoint {run} --input <image folder> --output <output folder>",
        f"Continue it: python train.py --resume --output-dir {run} [--max-steps N]",
    ]
    print("\n".join(lines))


def _fail(message: object, status: int) -> int:
    """Print ``error: <message>`` as one line on stderr; returns the exit status."""
    print("error: " + " ".join(str(message).split()), file=sys.stderr)
    return status


def _os_error(err: OSError) -> str:
    where = f" ({err.filename})" if err.filename else ""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"the disk is full{where}; free some space, then continue with --resume"
    return f"{err.strerror or err}{where}"


def run(args: argparse.Namespace) -> int:
    """Build the config and train; every error a user can hit ends as one line (see the module doc)."""
    if getattr(args, "list_presets", False):
        print_presets()
        return 0
    from ponogan.training.errors import TrainingError, UsageError
    from ponogan.training.loop import train  # torch: only once a run really starts
    from ponogan.training.preflight import preflight

    try:
        cfg = build_config(args)
        preflight(cfg)  # before anything is written: shapes on the meta device, device, precision
        result = train(cfg, allow_config_change=args.allow_config_change)
    except (ConfigError, UsageError) as err:
        return _fail(err, 2)
    except TrainingError as err:  # NonFiniteLossError too
        return _fail(err, 1)
    except OSError as err:  # disk full or I/O error while writing samples, metrics or the log
        return _fail(_os_error(err), 1)
    except KeyboardInterrupt as err:  # a second Ctrl-C (the first one stops cleanly), or one during setup
        return _fail(err if str(err) else "interrupted; nothing was saved after the latest checkpoint", 130)
    if result.is_main:
        _report(result)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``train.py``."""
    parser = CommandParser(
        prog="train.py",
        description="train a translator from a YAML preset",
        formatter_class=HelpFormatter,
    )
    add_arguments(parser)
    args = parse_args(parser, list(sys.argv[1:] if argv is None else argv))
    return run(args)
