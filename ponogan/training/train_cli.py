"""``ponogan train`` and ``python train.py``: YAML preset + flags + dotted overrides -> ``train(cfg)``.

Overrides name any config field by its dotted path: ``--optim.lr_g 1e-4`` or ``optim.lr_g=1e-4``.
With ``--resume`` and no ``--config``, the run folder's own saved config is used.

Every error a user can hit is one ``error: ...`` line on stderr, never a traceback: exit status 2 for
a bad config or run folder (nothing was written), 1 for a run that failed (NaN/Inf loss, broken
state, disk full), 130 for an abort by a second Ctrl-C.
"""

from __future__ import annotations

import argparse
import errno
import json
import sys
from pathlib import Path
from typing import Any

from ponogan.cli import HelpFormatter

from .config import MIXED_PRECISION, ConfigError, TrainConfig, apply_overrides, from_dict, load_config
from .presets import PresetError, find_preset, list_presets, translate_repo_flags

DEFAULT_PRESET = "pix2pix_pono_ms_glyphs.yaml"
_PACKAGE_CONFIGS = Path(__file__).resolve().parents[2] / "configs"

# flag -> dotted config field
FLAG_FIELDS = {
    "output_dir": "output_dir",
    "max_steps": "train.max_steps",
    "max_minutes": "train.max_minutes",
    "seed": "seed",
    "device": "train.device",
    "mixed_precision": "train.mixed_precision",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default=None,
        help=f"preset name (see --list-presets) or YAML file (default: {DEFAULT_PRESET[:-5]}; "
        "with --resume and no --config, the run folder's saved config)",
    )
    parser.add_argument(
        "--list-presets", action="store_true", help="list the presets with a line each, and exit"
    )
    parser.add_argument("--output-dir", default=None, help="run folder (default: checkpoints/<run_name>)")
    parser.add_argument("--max-steps", type=int, default=None, help="optimizer steps in total")
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="stop cleanly, with a checkpoint, after this much wall time",
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue from the run folder's latest checkpoint"
    )
    parser.add_argument("--seed", type=int, default=None, help="seed of weights, data order and sampling")
    parser.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda", "mps"),
        default=None,
        help="auto (default: CUDA when visible, then MPS, else CPU), cpu, cuda or mps",
    )
    parser.add_argument(
        "--mixed-precision",
        choices=[m for m in MIXED_PRECISION if m],
        default=None,
        help="no, bf16 (CPU or GPU) or fp16 (GPU only); default: accelerate's setting "
        "(accelerate launch --mixed_precision, accelerate config), else bf16 on GPUs "
        "and bf16-capable CPUs, else no",
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="config overrides by dotted path, e.g. model.generator_kwargs.ngf=32 "
        "(python train.py also takes --model.generator_kwargs.ngf 32)",
    )


def parse_args(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse flags; ``--a.b value`` / ``--a.b=value`` (a dotted name) become ``a.b=value`` overrides, and
    the CycleGAN/pix2pix repository's flags (``--dataroot``, ``--netG``...) their ponogan fields."""
    try:
        argv, repo_overrides, repo_family = translate_repo_flags(argv)
    except PresetError as err:
        parser.error(str(err))
    args = _parse_dotted(parser, argv)
    args.repo_overrides, args.repo_family = repo_overrides, repo_family
    return args


def _parse_dotted(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    rewritten: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        key = token.split("=", 1)[0]
        if token.startswith("--") and "." in key:
            if "=" in token:
                rewritten.append(token[2:])
                i += 1
                continue
            if i + 1 >= len(argv):
                parser.error(f"override {token} needs a value")
            rewritten.append(f"{token[2:]}={argv[i + 1]}")
            i += 2
            continue
        rewritten.append(token)
        i += 1
    return parser.parse_args(rewritten)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in args.overrides or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        out[key] = value
    out.update(getattr(args, "repo_overrides", None) or {})
    for flag, field_path in FLAG_FIELDS.items():
        value = getattr(args, flag, None)
        if value is not None:
            out[field_path] = value
    if getattr(args, "resume", False):
        out["train.resume"] = True
    return out


def _default_preset(family: str | None = None) -> Path:
    """The default preset, or the plain preset of ``family`` (``--model cycle_gan``)."""
    name = family or DEFAULT_PRESET[:-5]
    try:
        return find_preset(name)
    except PresetError:
        raise ConfigError(
            f"default preset {name} not found in ./configs or {_PACKAGE_CONFIGS}; pass --config PATH"
        ) from None


def _saved_config(path: Path) -> TrainConfig:
    """The training config a run folder's ``config.json`` records (its ``train`` entry)."""
    hint = "pass --config with the run's preset to resume it"
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"cannot read the run's saved config {path} ({err}); {hint}") from err
    if not isinstance(values, dict) or not isinstance(values.get("train"), dict):
        raise ConfigError(f"{path} has no 'train' entry (it was not written by ponogan train); {hint}")
    try:
        return from_dict(values["train"])
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}; {hint}") from err


def build_config(args: argparse.Namespace) -> TrainConfig:
    """The run's config: preset (or the saved one when resuming), then flags and overrides."""
    overrides = _overrides(args)
    if args.config is None and args.resume and args.output_dir:
        run = Path(args.output_dir)
        saved = run / "config.json"
        if saved.is_file():
            return apply_overrides(_saved_config(saved), overrides)
        from .state import latest_state

        if run.is_dir() and latest_state(run) is not None:
            raise ConfigError(
                f"{run} has a training state but no config.json; pass --config with the run's "
                "preset to resume it"
            )
    try:
        preset = (
            find_preset(args.config) if args.config else _default_preset(getattr(args, "repo_family", None))
        )
    except PresetError as err:
        raise ConfigError(str(err)) from None
    cfg = load_config(preset, overrides)
    if "data.root" in overrides and "data.mode" not in overrides and cfg.data.mode == "glyphs":
        # --dataroot on a glyph preset: the family's own folder layout, as the CycleGAN repo reads it
        mode = "aligned" if cfg.family == "pix2pix" else "unaligned"
        cfg = apply_overrides(cfg, {"data.mode": mode})
    return cfg


def print_presets() -> None:
    presets = list_presets()
    width = max(map(len, presets), default=0)
    for name, description in presets.items():
        print(f"{name:<{width}}  {description}")
    print(f"\nuse one: python train.py --config NAME   (default: {DEFAULT_PRESET[:-5]})")


def _report(result) -> None:
    run = result.run_dir
    samples = sorted((run / "samples").glob("step_*.png"))
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
    from .loop import TrainingError, UsageError, train  # torch: only once a run really starts

    try:
        cfg = build_config(args)
        result = train(cfg)
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
    parser = argparse.ArgumentParser(
        prog="train.py",
        description="train a translator from a YAML preset",
        formatter_class=HelpFormatter,
    )
    add_arguments(parser)
    args = parse_args(parser, list(sys.argv[1:] if argv is None else argv))
    return run(args)
