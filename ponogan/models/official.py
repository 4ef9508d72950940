"""Import generators trained with the official code into ponogan run folders.

Sources: junyanz/pytorch-CycleGAN-and-pix2pix (``latest_net_G.pth``, ``latest_net_G_A.pth``, ...;
``--netG resnet_9blocks | resnet_6blocks | unet_256 | unet_128``, ``--norm instance | batch``) and the
official PONO code (Boyiliee/PONO, ``ResnetPONOMSGenerator`` / ``ResnetPONODMSGenerator``), which maps
to ponogan's ``layout="official"`` ResNet, and the official CUT code (taesungp/contrastive-unpaired-
translation, ``--arch cut``: its anti-aliased ResNet-9 in the CycleGAN key layout, family ``cut``).

``official_key_map(model, arch, shortcut)`` gives, for a ponogan generator, the official name of every
entry of its state dict; ``convert_state_dict`` renames an official state dict with it, and
``import_official`` reads ``.pth`` files (``torch.load(weights_only=True)``: nothing is unpickled
beyond tensors) and writes ``model.safetensors`` + ``config.json`` that ``load_pretrained``, the
pipeline, ``ponogan translate`` and the app read. Outputs equal the official network's in eval mode.
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ponogan.core.messages import UsageError, first_line
from ponogan.core.settings import OFFICIAL_ARCHS as ARCHS
from ponogan.core.settings import OFFICIAL_NORMS as NORMS
from ponogan.core.settings import SHORTCUTS
from ponogan.models.check import NetworkCheckError, check_network
from ponogan.models.hub import save_pretrained
from ponogan.models.registry import create_generator

_LEGACY_INSTANCE_NORM = re.compile(r"\.(running_mean|running_var|num_batches_tracked)$")


@dataclass(frozen=True)
class ArchVariant:
    """An ``--arch`` that is another official arch built with extra generator ``options``, imported as
    ``family`` (instead of the family of its roles), from the repository ``code``."""

    arch: str
    options: dict
    family: str
    code: str


ARCH_VARIANTS: dict[str, ArchVariant] = {
    # the official CUT generator: down stages conv3/1 + Downsample, up stages Upsample + conv3/1
    "cut": ArchVariant(
        "resnet_9blocks",
        {"antialias": True, "antialias_up": True},
        "cut",
        "taesungp/contrastive-unpaired-translation",
    ),
}
# buffers whose official name differs from ponogan's (the blur filters of the anti-aliased stages)
_LEAF_NAMES = {"kernel": "filt"}


def _base_arch(arch: str) -> tuple[str, dict]:
    """``(official arch, extra generator options)`` of an ``--arch`` (a variant's base arch)."""
    variant = ARCH_VARIANTS.get(arch)
    return (variant.arch, dict(variant.options)) if variant else (arch, {})


class OfficialImportError(UsageError):
    """An official checkpoint cannot be imported (wrong file, arch, norm or shortcut); nothing was
    written (exit status 2)."""


def _resnet_pairs(
    n_blocks: int, shortcut: str | None, dropout: bool, antialias: bool = False
) -> Iterator[tuple[str, str]]:
    """``(official module prefix, ponogan module prefix)`` of every module with state, ResNet.

    ``antialias``: CUT's generator (both ``antialias`` options on), whose ``nn.Sequential`` has four
    modules per stage: ``conv, norm, ReLU, Downsample`` down and ``Upsample, conv, norm, ReLU`` up.
    """
    n_down = 2
    if antialias:
        yield "model.1", "stem.conv"
        yield "model.2", "stem.norm"
        for i in range(n_down):
            yield f"model.{4 + 4 * i}", f"downs.{i}.conv"
            yield f"model.{5 + 4 * i}", f"downs.{i}.norm"
            yield f"model.{7 + 4 * i}", f"down_blurs.{i}"
        first_up = 4 + 4 * n_down + n_blocks
        blocks = [f"model.{4 + 4 * n_down + j}" for j in range(n_blocks)]
        ups = [(f"model.{first_up + 4 * i + 1}", f"model.{first_up + 4 * i + 2}") for i in range(n_down)]
        for i in range(n_down):
            yield f"model.{first_up + 4 * i}", f"up_blurs.{i}"
        head = f"model.{first_up + 4 * n_down + 1}"
    elif shortcut is None:  # ResnetGenerator: one nn.Sequential called `model`
        yield "model.1", "stem.conv"
        yield "model.2", "stem.norm"
        for i in range(n_down):
            yield f"model.{4 + 3 * i}", f"downs.{i}.conv"
            yield f"model.{5 + 3 * i}", f"downs.{i}.norm"
        blocks = [f"model.{10 + j}" for j in range(n_blocks)]
        ups = [(f"model.{10 + n_blocks + 3 * i}", f"model.{11 + n_blocks + 3 * i}") for i in range(n_down)]
        head = f"model.{10 + n_blocks + 3 * n_down + 1}"
    else:  # ResnetPONOMSGenerator / ResnetPONODMSGenerator
        yield "reflection_block.1", "stem.conv"
        yield "reflection_block.2", "stem.norm"
        for i in range(n_down):
            yield f"down_model.{i}.conv", f"downs.{i}.conv"
            yield f"down_model.{i}.norm", f"downs.{i}.norm"
        blocks = [f"res_block.{j}" for j in range(n_blocks)]
        ups = [(f"up_model.{i}.conv", f"up_model.{i}.norm") for i in range(n_down)]
        head = "out_block.1"
    # conv_block: pad, conv, norm, relu, [dropout], pad, conv, norm
    second = 6 if dropout else 5
    for j, block in enumerate(blocks):
        yield f"{block}.conv_block.1", f"blocks.{j}.conv1.conv"
        yield f"{block}.conv_block.2", f"blocks.{j}.conv1.norm"
        yield f"{block}.conv_block.{second}", f"blocks.{j}.conv2.conv"
        yield f"{block}.conv_block.{second + 1}", f"blocks.{j}.conv2.norm"
    for i, (conv, norm) in enumerate(ups):
        yield conv, f"ups.{i}.conv"
        yield norm, f"ups.{i}.norm"
    yield head, "head.conv"
    if shortcut == "dms":  # stat_convs[i] serves up stage i, i.e. ponogan's shortcut of level n_down-1-i
        for i in range(n_down):
            k = n_down - 1 - i
            yield f"stat_convs.{i}.0.conv", f"shortcuts.{k}.up"
            yield f"stat_convs.{i}.0.norm", f"shortcuts.{k}.up_norm"
            yield f"stat_convs.{i}.1.conv", f"shortcuts.{k}.conv"
            yield f"stat_convs.{i}.1.norm", f"shortcuts.{k}.unused_norm"


def _unet_pairs(num_downs: int) -> Iterator[tuple[str, str]]:
    """The official U-Net nests one ``UnetSkipConnectionBlock`` per level (``model.model.1.model.3...``):
    outermost ``[downconv, sub, relu, upconv, tanh]``, middle ``[lrelu, downconv, downnorm, sub, relu,
    upconv, upnorm, (dropout)]``, innermost ``[lrelu, downconv, relu, upconv, upnorm]``."""
    inner = num_downs - 1
    yield "model.model.0", "encoder.0.conv.conv"
    yield "model.model.3", "decoder.0.conv.conv"
    prefix = "model.model.1.model"
    for k in range(1, num_downs):
        yield f"{prefix}.1", f"encoder.{k}.conv.conv"
        if k == inner:
            yield f"{prefix}.3", f"decoder.{k}.conv.conv"
            yield f"{prefix}.4", f"decoder.{k}.conv.norm"
        else:
            yield f"{prefix}.2", f"encoder.{k}.conv.norm"
            yield f"{prefix}.5", f"decoder.{k}.conv.conv"
            yield f"{prefix}.6", f"decoder.{k}.conv.norm"
        prefix += ".3.model"


def official_key_map(model: nn.Module, arch: str, shortcut: str | None = None) -> dict[str, str]:
    """``{official state-dict key: ponogan key}`` for every entry of ``model.state_dict()``.

    ``model`` is the ponogan generator built for ``arch`` (``layout="official"`` with a shortcut).
    Raises ``KeyError`` if a ponogan entry has no official name (a model of another layout).
    """
    kwargs = model.spec["kwargs"]
    if _base_arch(arch)[0].startswith("resnet"):
        aa = kwargs.get("antialias", False)
        pairs = _resnet_pairs(kwargs["n_blocks"], shortcut, kwargs["use_dropout"], aa)
    else:
        pairs = _unet_pairs(kwargs["num_downs"])
    ours = {}
    for official, mine in pairs:
        ours[mine] = official
    mapping = {}
    for key in model.state_dict():
        module, _, leaf = key.rpartition(".")
        mapping[f"{ours[module]}.{_LEAF_NAMES.get(leaf, leaf)}"] = key
    return mapping


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Load a ``.pth`` state dict without unpickling anything but tensors; one-line errors."""
    if not path.is_file():
        raise OfficialImportError(f"{path}: no such file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on pickle protocols: the error says enough
            state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, zipfile.BadZipFile, EOFError, ValueError) as err:
        raise OfficialImportError(torch_load_error(path, err)) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if (
        not isinstance(state, dict)
        or not state
        or not all(isinstance(v, torch.Tensor) for v in state.values())
    ):
        raise OfficialImportError(
            f"{path} holds a {type(state).__name__}, not a state dict of tensors "
            "(save it with torch.save(net.state_dict(), path))"
        )
    if all(k.startswith("module.") for k in state):  # saved from a DataParallel wrapper
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def torch_load_error(path: Path, err: BaseException) -> str:
    """One line for a ``torch.load(weights_only=True)`` failure: a file holding pickled Python objects
    is named as such (never with torch's hint to re-run without ``weights_only``, which would run
    them); any other failure is a damaged or foreign file."""
    message = str(err)
    if "Unsupported global" in message or "Weights only load failed" in message:
        found = re.search(r"GLOBAL (\S+)", message)
        what = f" ({found.group(1)})" if found else ""
        with open(path, "rb") as f:  # a plain pickle starts with the PROTO opcode; torch.save writes zips
            plain = f.read(1) == b"\x80"
        if found or plain:
            return (
                f"{path} holds pickled Python objects{what}, which ponogan never loads; save the "
                "weights alone with torch.save(net.state_dict(), path)"
            )
        return f"{path} is not a valid PyTorch file (damaged, or another format)"
    return f"{path} is not a PyTorch state dict ({first_line(err)[:200]})"


def _infer_channels(state: dict[str, torch.Tensor], arch: str, shortcut: str | None) -> dict:
    """``in_channels``, ``out_channels`` and ``ngf`` from the first and last conv weights."""
    arch, options = _base_arch(arch)
    if arch.startswith("resnet"):
        n_blocks = 9 if arch == "resnet_9blocks" else 6
        antialias = options.get("antialias", False)
        names = {ours: official for official, ours in _resnet_pairs(n_blocks, shortcut, False, antialias)}
        first, last = f"{names['stem.conv']}.weight", f"{names['head.conv']}.weight"
        first_w, last_w = state.get(first), state.get(last)
        if not _conv_weights(first_w, last_w):
            return {}
        # a conv (4-D) at conv_block.6 means dropout shifted the second conv of each block
        dropout = any(re.search(r"conv_block\.6\.weight$", k) and v.dim() == 4 for k, v in state.items())
        return {
            "in_channels": first_w.shape[1],
            "ngf": first_w.shape[0],
            "out_channels": last_w.shape[0],
            "use_dropout": dropout,
        }
    first_w, last_w = state.get("model.model.0.weight"), state.get("model.model.3.weight")
    if not _conv_weights(first_w, last_w):
        return {}
    return {"in_channels": first_w.shape[1], "ngf": first_w.shape[0], "out_channels": last_w.shape[1]}


def _conv_weights(*weights: torch.Tensor | None) -> bool:
    """Whether every entry is a conv weight ``(out, in, kh, kw)`` (the shapes channels are read from)."""
    return all(w is not None and w.dim() == 4 for w in weights)


def build_official(arch: str, norm: str, shortcut: str | None = None, **kwargs) -> nn.Module:
    """The ponogan generator that holds an official ``arch``/``norm``/``shortcut`` network."""
    if arch not in ARCHS:
        raise OfficialImportError(f"unknown --arch {arch!r}; valid: {', '.join(ARCHS)}")
    if norm not in NORMS:
        raise OfficialImportError(f"unknown --norm {norm!r}; valid: {', '.join(NORMS)}")
    if shortcut not in (None, *SHORTCUTS):
        raise OfficialImportError(f"unknown --shortcut {shortcut!r}; valid: ms, dms (or none)")
    if shortcut is not None and (arch in ARCH_VARIANTS or not arch.startswith("resnet")):
        raise OfficialImportError(
            f"the official PONO code has PONO-{shortcut.upper()} only for the ResNet generators, not {arch}"
        )
    arch, extra = _base_arch(arch)
    options = {
        "norm": norm,
        "shortcut": shortcut,
        "use_dropout": not arch.startswith("resnet"),
        **extra,
        **kwargs,
    }
    if shortcut is not None:
        options["layout"] = "official"
    try:  # on the meta device first: a file's 4096-wide first conv must not allocate GBs
        check_network("generator", arch, options, bounded=True)
    except NetworkCheckError as err:
        raise OfficialImportError(f"the weights size a network ponogan refuses: {err}") from None
    return create_generator(arch, **options)


def _mismatch_hint(state: dict[str, torch.Tensor], arch: str, norm: str, shortcut: str | None) -> str:
    """Which ``--arch/--norm/--shortcut`` the keys do fit, if any."""
    for a in ARCHS:
        for n in NORMS:
            for s in (None, *SHORTCUTS):
                if (a, n, s) == (arch, norm, shortcut):
                    continue
                try:
                    with torch.device("meta"):  # the keys and shapes are all it needs: allocate nothing
                        model = build_official(a, n, s, **_infer_channels(state, a, s))
                    _renamed(state, model, a, n, s)
                except (OfficialImportError, ValueError):
                    continue
                flags = f"--arch {a} --norm {n}" + (f" --shortcut {s}" if s else "")
                return f"; the file fits {flags}"
    return ""


def convert_state_dict(
    state: dict[str, torch.Tensor],
    arch: str,
    norm: str,
    shortcut: str | None = None,
) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """Rename an official state dict: returns ``(ponogan generator, its state dict)`` (weights loaded).

    Drops the ``running_*`` entries that old PyTorch versions saved for InstanceNorm (the official
    loader drops them too); any other missing or extra key is an ``OfficialImportError``.
    """
    model = build_official(arch, norm, shortcut, **_infer_channels(state, arch, shortcut))
    converted = _renamed(state, model, arch, norm, shortcut)
    model.load_state_dict(converted, strict=True)
    return model.eval(), converted


def _renamed(
    state: dict[str, torch.Tensor], model: nn.Module, arch: str, norm: str, shortcut: str | None
) -> dict[str, torch.Tensor]:
    """``state`` under ``model``'s own key names, after checking that keys, dtypes and shapes match
    (``OfficialImportError`` naming the first difference); ``model`` may live on the meta device."""
    mapping = official_key_map(model, arch, shortcut)
    own = model.state_dict()
    converted, extra = {}, []
    for key, value in state.items():
        if key in mapping:
            converted[mapping[key]] = value
        elif not (norm == "instance" and _LEGACY_INSTANCE_NORM.search(key)):
            extra.append(key)
    missing = sorted(set(mapping) - set(state))
    if missing or extra:
        raise OfficialImportError(
            f"the weights do not match --arch {arch} --norm {norm}"
            + (f" --shortcut {shortcut}" if shortcut else "")
            + f": {len(missing)} missing keys (e.g. {missing[:2]}),"
            + f" {len(extra)} unexpected (e.g. {extra[:2]})"
        )
    for key, value in converted.items():
        if own[key].is_floating_point() and not value.is_floating_point():
            official = next(k for k, v in mapping.items() if v == key)
            raise OfficialImportError(
                f"weight {official} holds {str(value.dtype).removeprefix('torch.')} values; ponogan "
                "imports floating-point weights only (float32, float16 or bfloat16)"
            )
        if value.shape != own[key].shape:
            official = next(k for k, v in mapping.items() if v == key)
            raise OfficialImportError(
                f"weight {official} has shape {tuple(value.shape)}, expected "
                f"{tuple(own[key].shape)} for --arch {arch}"
            )
    return converted


def _role(path: Path) -> str | None:
    """``G_A`` / ``G_B`` from ``latest_net_G_A.pth``-style names, else ``None``."""
    match = re.search(r"net_(G_[AB])\.pth$", path.name)
    return match.group(1) if match else None


def _official_family(roles: tuple[str, ...]) -> str:
    """The family whose official checkpoints hold generators ``roles`` (``Family.official_roles``)."""
    from ponogan.families import all_families

    for family in all_families():
        if family.official_roles is not None and set(family.official_roles) == set(roles):
            return family.name
    raise OfficialImportError(f"no family imports official generators {', '.join(roles)}")


def import_official(
    weights: list[str | os.PathLike],
    out: str | os.PathLike,
    *,
    arch: str,
    norm: str,
    shortcut: str | None = None,
) -> Path:
    """Convert one official generator (family ``pix2pix``: one direction, role ``G``) or a CycleGAN
    pair ``*_G_A.pth`` + ``*_G_B.pth`` (family ``cyclegan``) into the run folder ``out``.

    ``out`` must not exist or be empty: nothing is overwritten.
    """
    paths = [Path(w) for w in weights]
    if len(paths) not in (1, 2):
        raise OfficialImportError("give one generator file, or the two CycleGAN files *_G_A.pth *_G_B.pth")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise OfficialImportError(f"{out} already exists and is not an empty folder; choose a new --out")
    roles = {"G": paths[0]} if len(paths) == 1 else {_role(p): p for p in paths}
    if len(paths) == 2 and set(roles) != {"G_A", "G_B"}:
        raise OfficialImportError("two files must be the CycleGAN pair named *_G_A.pth and *_G_B.pth")
    generators, channels = {}, {}
    for role, path in roles.items():
        state = _read_state_dict(path)
        try:
            model, _ = convert_state_dict(state, arch, norm, shortcut)
        except OfficialImportError as err:
            raise OfficialImportError(f"{path}: {err}{_mismatch_hint(state, arch, norm, shortcut)}") from None
        generators[role] = model
        channels[role] = model.spec["kwargs"]
    first = next(iter(channels.values()))
    variant = ARCH_VARIANTS.get(arch)
    code = variant.code if variant else "official PONO code" if shortcut else "pytorch-CycleGAN-and-pix2pix"
    config = {
        "family": variant.family if variant else _official_family(tuple(roles)),
        "run_name": out.name,
        "imported_from": {
            "files": [str(p) for p in paths],
            "arch": arch,
            "norm": norm,
            "shortcut": shortcut,
            "code": code,
        },
        "data": {"input_nc": first["in_channels"], "output_nc": first["out_channels"]},
    }
    save_pretrained(out, generators, config)
    return out


__all__ = [
    "ARCHS",
    "ARCH_VARIANTS",
    "OfficialImportError",
    "build_official",
    "convert_state_dict",
    "import_official",
    "official_key_map",
]
