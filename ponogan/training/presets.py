"""Presets by name, and the command-line flags of the CycleGAN/pix2pix repository as aliases.

``find_preset("cyclegan_pono_ms_glyphs")`` resolves a name (or a path) to the YAML file in ``configs/``;
``list_presets()`` gives every name with the one-line description its YAML starts with.
``translate_repo_flags(argv)`` rewrites the flags users of junyanz/pytorch-CycleGAN-and-pix2pix type
(``--dataroot``, ``--name``, ``--netG``, ``--norm``, ``--direction``...) into ponogan's dotted
overrides, and stops with a hint for the ones that have no clean equivalent (``--n_epochs``...).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

PACKAGE_CONFIGS = Path(__file__).resolve().parents[2] / "configs"  # the presets shipped with ponogan


class PresetError(ValueError):
    """A preset name or a repository flag that cannot be used as given."""


MAX_YAML_DEPTH = 12  # nested mappings/lists in a preset: the deepest real one (data.options) is 3


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader without the features a config does not need and an attacker can abuse:
    anchors and aliases (``&a`` / ``*a``: alias bombs and self-references), nesting deeper than
    ``MAX_YAML_DEPTH``, and duplicate keys (which would silently keep the last value)."""

    source = "YAML"
    depth = 0

    def _refuse(self, mark: yaml.Mark, what: str) -> None:
        raise PresetError(f"{self.source}, line {mark.line + 1}: {what}")

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            self._refuse(
                event.start_mark,
                "YAML anchors and aliases (&name, *name) are not supported; write the values out",
            )
        self.depth += 1
        if self.depth > MAX_YAML_DEPTH:
            self._refuse(event.start_mark, f"nested deeper than {MAX_YAML_DEPTH} levels")
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, list | dict):
                self._refuse(key_node.start_mark, "a key must be a name, not a list or mapping")
            if key in seen:
                self._refuse(key_node.start_mark, f"key {key!r} appears twice; keep one")
            seen.add(key)
        return super().construct_mapping(node, deep)


def load_yaml(text: str, source: str = "YAML") -> Any:
    """Parse ``text`` with the strict loader; ``PresetError`` (one line naming ``source`` and the line)
    for anchors, aliases, deep nesting and duplicate keys, ``yaml.YAMLError`` for invalid YAML."""
    loader = _StrictLoader(text)
    loader.source = source
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def preset_dirs() -> list[Path]:
    """Where presets are looked up: ``./configs`` first, then the package's own ``configs/``."""
    dirs = [Path("configs"), PACKAGE_CONFIGS]
    return [
        d for i, d in enumerate(dirs) if d.is_dir() and d.resolve() not in {x.resolve() for x in dirs[:i]}
    ]


def list_presets() -> dict[str, str]:
    """``{name: one-line description}`` of every preset, sorted by name."""
    presets: dict[str, str] = {}
    for folder in preset_dirs():
        for path in sorted(folder.glob("*.yaml")):
            presets.setdefault(path.stem, _description(path))
    return dict(sorted(presets.items()))


def _description(path: Path) -> str:
    """The first comment line of a preset file."""
    try:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("#"):
                return line.lstrip("# ").strip()
            if line.strip():
                break
    except (OSError, UnicodeDecodeError):
        pass
    return ""


def find_preset(name_or_path: str) -> Path:
    """A preset file from its name (``cyclegan_pono_ms``), file name or path."""
    path = Path(name_or_path)
    if path.is_file() or path.suffix in (".yaml", ".yml") or path.parent != Path("."):
        return path  # a path: load_config reports a missing file itself
    for folder in preset_dirs():
        for suffix in (".yaml", ".yml"):
            candidate = folder / f"{name_or_path}{suffix}"
            if candidate.is_file():
                return candidate
    names = ", ".join(list_presets()) or "(none found)"
    raise PresetError(f"no preset or file named {name_or_path!r}; presets: {names} (see --list-presets)")


# repository flag -> (dotted field, how the value maps); a value of None marks a flag without argument
_NET_G = {
    "resnet_9blocks": {"model.generator": "resnet_9blocks"},
    "resnet_6blocks": {"model.generator": "resnet_6blocks"},
    "unet_256": {"model.generator": "unet_256"},
    "unet_128": {"model.generator": "unet_128"},
    # the official PONO code's generator names
    "restnetPONOMS_9block": {
        "model.generator": "resnet_9blocks",
        "model.shortcut": "ms",
        "model.generator_kwargs.layout": "official",
    },
    "resnetPONODMS_9blocks": {
        "model.generator": "resnet_9blocks",
        "model.shortcut": "dms",
        "model.generator_kwargs.layout": "official",
    },
}
_NET_D = {
    "basic": {"model.discriminator": "patchgan", "model.discriminator_kwargs.n_layers": "3"},
    "n_layers": {"model.discriminator": "patchgan"},
    "pixel": {"model.discriminator": "pixel"},
}
_GPU = {"-1": "cpu"}

VALUE_FLAGS: dict[str, object] = {
    "dataroot": "data.root",
    "name": "run_name",
    "checkpoints_dir": None,  # combined with --name into --output-dir
    "netG": _NET_G,
    "netD": _NET_D,
    "norm": ("model.generator_kwargs.norm", "model.discriminator_kwargs.norm"),
    "direction": "data.options.direction",
    "batch_size": "data.batch_size",
    "lr": ("optim.lr_g", "optim.lr_d"),
    "beta1": "optim.beta1",
    "gan_mode": "loss.gan_mode",
    "lambda_L1": "loss.l1",
    "lambda_A": "loss.cycle",
    "lambda_B": "loss.cycle",
    "lambda_identity": "loss.identity",
    "pool_size": "loss.pool_size",
    "ngf": "model.generator_kwargs.ngf",
    "ndf": "model.discriminator_kwargs.ndf",
    "n_layers_D": "model.discriminator_kwargs.n_layers",
    "load_size": "data.options.load_size",
    "crop_size": "data.options.crop_size",
    "preprocess": "data.options.preprocess",
    "input_nc": "data.options.input_nc",
    "output_nc": "data.options.output_nc",
    "dataset_mode": "data.mode",
    "init_type": "model.init_type",
    "init_gain": "model.init_gain",
    "num_threads": "data.num_workers",
    "seed": "seed",
    "gpu_ids": "train.device",
}
SWITCH_FLAGS = {
    "no_dropout": ("model.generator_kwargs.use_dropout", "false"),
    "no_flip": ("data.options.no_flip", "true"),
    "serial_batches": ("data.options.serial", "true"),
}
RESUME_FLAGS = {"continue_train"}
MODEL_FLAG = "model"  # --model cycle_gan | pix2pix picks the preset family
UNMAPPED = {
    "n_epochs": "ponogan counts optimizer steps: use --max-steps (epochs x images / batch size); "
    "the LR decays linearly over the second half (optim.decay_start=0.5)",
    "n_epochs_decay": "use --max-steps for the total and optim.decay_start for where the linear decay starts",
    "epoch_count": "resume with --resume instead",
    "save_epoch_freq": "use train.save_every=STEPS",
    "save_latest_freq": "use train.save_every=STEPS",
    "print_freq": "use train.log_every=STEPS",
    "display_freq": "use train.sample_every=STEPS (sample grids go to <run>/samples/)",
    "display_id": "ponogan writes sample grids and losses.png in the run folder; no visdom",
    "lr_policy": "use optim.lr_policy=linear|step|constant",
    "lr_decay_iters": "use optim.step_size=STEPS with optim.lr_policy=step",
    "max_dataset_size": "use data.options.length (glyphs) or a smaller folder",
    "phase": "training always uses the train split; evaluate with `ponogan eval --split test`",
}


def translate_repo_flags(argv: list[str]) -> tuple[list[str], dict[str, str], str | None]:
    """Rewrite CycleGAN-repo flags in ``argv``; returns ``(other tokens, overrides, preset family)``.

    ``--model cycle_gan`` selects the family's default preset (the caller uses it when no ``--config``
    is given). Raises ``PresetError`` for a repository flag without a clean equivalent, with a hint.
    """
    rest: list[str] = []
    overrides: dict[str, str] = {}
    family = checkpoints_dir = None
    i = 0
    while i < len(argv):
        token = argv[i]
        flag, eq, inline = token[2:].partition("=") if token.startswith("--") else ("", "", "")
        if flag in UNMAPPED:
            raise PresetError(
                f"--{flag} (CycleGAN/pix2pix repository) has no direct equivalent: {UNMAPPED[flag]}"
            )
        if flag in SWITCH_FLAGS:
            field, value = SWITCH_FLAGS[flag]
            overrides[field] = value
            i += 1
            continue
        if flag in RESUME_FLAGS:
            rest.append("--resume")
            i += 1
            continue
        if flag in VALUE_FLAGS or flag == MODEL_FLAG:
            if eq:
                value = inline
                i += 1
            elif i + 1 < len(argv):
                value = argv[i + 1]
                i += 2
            else:
                raise PresetError(f"--{flag} needs a value")
            if flag == MODEL_FLAG:
                family = _repo_model_family(value)
            elif flag == "checkpoints_dir":
                checkpoints_dir = value
            else:
                overrides.update(_map_value(flag, value))
            continue
        rest.append(token)
        i += 1
    if checkpoints_dir is not None:
        overrides["output_dir"] = str(Path(checkpoints_dir) / overrides.get("run_name", "run"))
    return rest, overrides, family


def _map_value(flag: str, value: str) -> dict[str, str]:
    target = VALUE_FLAGS[flag]
    if isinstance(target, dict):  # a choice that sets several fields
        if value not in target:
            raise PresetError(f"--{flag} {value}: valid values are {', '.join(target)}")
        return dict(target[value])
    if flag == "gpu_ids":
        return {"train.device": _GPU.get(value, "cuda")}
    fields = target if isinstance(target, tuple) else (target,)
    return {field: value for field in fields}


def _repo_model_family(value: str) -> str:
    """The family the CycleGAN repo's ``--model value`` trains (``Family.repo_model``); the family
    modules are imported only when the flag is given, so ``--help`` stays free of torch."""
    from ponogan.families import all_families

    models = {family.repo_model: family.name for family in all_families() if family.repo_model}
    if value not in models:
        others = ", ".join(family.name for family in all_families() if not family.repo_model)
        hint = f"and {others} from its presets, " if others else ""
        trained = ", ".join(models)
        raise PresetError(f"--model {value}: ponogan trains {trained} this way ({hint}see --list-presets)")
    return models[value]
