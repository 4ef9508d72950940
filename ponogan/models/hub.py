"""Save and load generators for inference: ``model.safetensors`` + ``config.json`` in a run folder.

``model.safetensors`` holds every generator's ``state_dict`` under ``"<role>.<key>"`` (roles such
as ``G``, ``G_A``/``G_B``, ``gen_a``/``gen_b``); ``config.json`` is the run's card
(``ponogan.core.run_folder.RunCard``): the caller's config plus ``"generators": {role: model.spec}``,
enough to rebuild each model with ``create_generator``. Weights never go through pickle, and both
files are written atomically (temp file + ``os.replace``), so a crash leaves the previous checkpoint
intact.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from ponogan.core.atomic import atomic_write, write_text_atomic
from ponogan.core.run_folder import RunCard, RunFolder, RunFolderError
from ponogan.models.check import NetworkCheckError, check_network
from ponogan.models.registry import create_generator


def save_pretrained(
    run_dir: str | os.PathLike,
    generators: dict[str, nn.Module],
    config: dict | RunCard,
    *,
    push_to_hub: str | None = None,
    **hub_options,
) -> Path:
    """Write ``run_dir/model.safetensors`` and ``run_dir/config.json``; returns ``run_dir``.

    Each generator must come from ``create_generator`` (it needs ``model.spec``); unwrap
    DDP/accelerate wrappers first. ``config`` is the card: a ``RunCard``, a mapping ``load_pretrained``
    returned, or the caller's mapping in this ponogan's format (``RunCard.to_dict``); it must be
    JSON-serialisable; its ``"generators"`` are set from the models' specs. ``push_to_hub="user/name"``
    then uploads the folder with its model card (``ponogan.sharing.push.push_run``; ``hub_options``:
    ``private``, ``revision``, ``license``...).
    """
    if not generators:
        raise ValueError("save_pretrained needs at least one generator")
    if hub_options and push_to_hub is None:
        raise ValueError(f"save_pretrained: {', '.join(hub_options)} apply with push_to_hub='user/name' only")
    run_dir = Path(run_dir)
    tensors: dict[str, torch.Tensor] = {}
    specs = {}
    for role, model in generators.items():
        if "." in role or not role:
            raise ValueError(f"generator role {role!r} must be a non-empty name without dots")
        spec = getattr(model, "spec", None)
        if spec is None:
            raise ValueError(
                f"generator {role!r} ({type(model).__name__}) has no .spec: build it with "
                "ponogan.models.create_generator (and unwrap DDP/accelerate wrappers)"
            )
        specs[role] = spec
        for key, value in model.state_dict().items():
            tensors[f"{role}.{key}"] = value.detach().to("cpu").contiguous()
    values = {**(config.to_dict() if isinstance(config, RunCard) else config), "generators": specs}
    # a card that states its format is brought to this one; a caller's mapping is of this format
    card = RunCard.from_dict(values, "save_pretrained", migrate="format_version" in values)
    text = card.to_json()  # fails before any file is touched
    folder = RunFolder(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(folder.model, lambda tmp: save_file(tensors, tmp, metadata={"format": "pt"}))
    write_text_atomic(folder.config, text)
    if push_to_hub is not None:
        from ponogan.sharing.push import push_run

        push_run(run_dir, push_to_hub, **hub_options)
    return run_dir


def load_pretrained(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[dict[str, nn.Module], dict]:
    """Load ``(generators: {role: model in eval mode on device}, config)`` from a run folder or its
    ``model.safetensors``. Never unpickles. Raises ``FileNotFoundError`` naming a missing file and
    ``ValueError`` for a file that is not safetensors, a bad config, or weights that do not match
    the config's generators."""
    path = Path(path)
    folder = RunFolder.of(path)
    weights = path if path.suffix == ".safetensors" or path.is_file() else folder.model
    folder.require_model(weights)
    card = RunCard.load(folder.config)
    config_path, specs = folder.config, card.generators
    for role, spec in specs.items():
        _check_spec(config_path, role, spec)
    try:
        tensors = load_file(str(weights), device=str(device))
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{weights} is not a valid safetensors file: {err}") from err

    by_role: dict[str, dict[str, torch.Tensor]] = {role: {} for role in specs}
    stray = []
    for key, value in tensors.items():
        role, _, name = key.partition(".")
        if role in by_role:
            by_role[role][name] = value
        else:
            stray.append(key)
    if stray:
        raise ValueError(
            f"checkpoint {weights} does not match its config: weights for roles not in "
            f"{config_path} (e.g. {stray[0]!r}); config roles: {', '.join(specs)}"
        )

    models = {}
    for role, spec in specs.items():
        model = create_generator(spec["name"], **spec.get("kwargs", {}))  # checked by _check_spec
        missing, unexpected = _diff_keys(model, by_role[role])
        if missing or unexpected:
            raise ValueError(
                f"checkpoint {weights} does not match its config for generator {role!r} ({spec['name']}): "
                f"{len(missing)} missing keys (e.g. {missing[:3]}), {len(unexpected)} unexpected keys "
                f"(e.g. {unexpected[:3]})"
            )
        _check_dtypes(weights, role, model, by_role[role])
        try:
            model.load_state_dict(by_role[role], strict=True)
        except RuntimeError as err:  # same keys, different shapes
            raise ValueError(
                f"checkpoint {weights} does not match its config for generator {role!r}: "
                f"{str(err).splitlines()[-1].strip()}"
            ) from err
        models[role] = model.to(device).eval()
    return models, card.to_dict()


def _check_spec(config_path: Path, role: str, spec: object) -> None:
    """Refuse a generator entry (its shape checked by ``RunCard``) that would build a network that cannot
    run or is absurdly large (``ponogan.models.check``), before anything is allocated."""
    try:
        check_network("generator", spec["name"], spec.get("kwargs", {}), bounded=True)
    except NetworkCheckError as err:
        raise RunFolderError(f"{config_path}: generator {role!r}: {err}") from None


def _check_dtypes(weights: Path, role: str, model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Refuse integer or bool tensors where the model has floating-point weights: casting them to
    float would load garbage."""
    own = model.state_dict()
    for key, value in state.items():
        if own[key].is_floating_point() and not value.is_floating_point():
            raise ValueError(
                f"{weights}: {role}.{key} holds {str(value.dtype).removeprefix('torch.')} values; ponogan "
                "loads floating-point weights only (float32, float16 or bfloat16)"
            )


def _diff_keys(model: nn.Module, state: dict[str, torch.Tensor]) -> tuple[list[str], list[str]]:
    expected = set(model.state_dict())
    return sorted(expected - set(state)), sorted(set(state) - expected)
