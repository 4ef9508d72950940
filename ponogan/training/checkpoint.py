"""Full training state on disk: atomic save, keep the last K, find and load the latest for ``--resume``.

Layout of one state (``<run>/state/step_000500/``)::

    nets.safetensors      every network (generators and discriminators), keys "<net>.<param>"
    optimizers.pt         {name: optimizer.state_dict()} (+ the fp16 grad scaler), torch.save
    schedulers.pt         {name: scheduler.state_dict()}
    rank_<i>.pt           per process: RNG states (python, numpy, torch, cuda), family extras
                          (image pools) and a digest of the weights that rank holds
    trainer_state.json    step, epoch, batch within the epoch, world size, elapsed time, config

A state is written into ``state/.tmp-step_000500`` and renamed into place only when every file is
complete; ``state/latest`` (the name of the newest state) is replaced afterwards. A crash at any
point leaves the previous state as the latest. Nothing is unpickled on load: ``torch.load`` always
runs with ``weights_only=True``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

STATE_DIR = "state"
LATEST = "latest"
META = "trainer_state.json"


def state_name(step: int) -> str:
    return f"step_{step:06d}"


# ---------------------------------------------------------------- RNG states
def capture_rng() -> dict[str, Any]:
    """Python, NumPy, torch CPU (and CUDA) RNG states in a form ``torch.load(weights_only=True)`` reads."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = state["numpy"]
    np.random.set_state((np_state["kind"], np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Run a block (sampling, evaluation) without moving any RNG the training draws from."""
    state = capture_rng()
    try:
        yield
    finally:
        restore_rng(state)


def weights_digest(nets: dict[str, nn.Module]) -> str:
    """SHA-256 of every parameter and buffer (in name order): equal digests = bitwise equal weights."""
    h = hashlib.sha256()
    for name in sorted(nets):
        for key, value in sorted(nets[name].state_dict().items()):
            h.update(f"{name}.{key}".encode())
            h.update(value.detach().to("cpu").contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


# ---------------------------------------------------------------- save / load
@dataclass
class TrainingState:
    """What the loop hands to ``save_state`` and gets back from ``load_state``."""

    nets: dict[str, nn.Module]
    optimizers: dict[str, Any]
    schedulers: dict[str, Any]
    scaler: Any = None


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_state(run_dir: Path, step: int, state: TrainingState, *, meta: dict[str, Any],
               rank_state: dict[str, Any], rank: int, world_size: int, barrier, keep_last: int) -> Path:
    """Write ``state/step_<step>/`` atomically from all ranks (``barrier()`` syncs them); returns it.

    Every rank writes its ``rank_<i>.pt``; rank 0 writes the shared files, renames the folder into
    place, points ``latest`` at it and prunes all but the newest ``keep_last`` states.
    """
    root = Path(run_dir) / STATE_DIR
    final = root / state_name(step)
    tmp = root / f".tmp-{state_name(step)}"
    if rank == 0:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    barrier()
    torch.save(rank_state, tmp / f"rank_{rank}.pt")
    if rank == 0:
        tensors = {f"{name}.{key}": value.detach().to("cpu").contiguous()
                   for name, net in state.nets.items() for key, value in net.state_dict().items()}
        save_file(tensors, tmp / "nets.safetensors")
        optim = {name: opt.state_dict() for name, opt in state.optimizers.items()}
        if state.scaler is not None:
            optim["__scaler__"] = state.scaler.state_dict()
        torch.save(optim, tmp / "optimizers.pt")
        torch.save({name: s.state_dict() for name, s in state.schedulers.items()}, tmp / "schedulers.pt")
    barrier()
    if rank == 0:
        (tmp / META).write_text(json.dumps({**meta, "step": step, "world_size": world_size}, indent=2))
        if final.exists():  # re-saving a step (e.g. the end of a resumed run that did no new step)
            old = root / f".old-{state_name(step)}"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        _atomic_text(root / LATEST, final.name + "\n")
        for stale in list_states(run_dir)[:-keep_last]:
            shutil.rmtree(stale, ignore_errors=True)
    barrier()
    return final


def list_states(run_dir: Path) -> list[Path]:
    """Complete states (folders with ``trainer_state.json``), oldest first."""
    root = Path(run_dir) / STATE_DIR
    if not root.is_dir():
        return []
    found = [p for p in root.glob("step_*") if p.is_dir() and (p / META).is_file()]
    return sorted(found, key=lambda p: p.name)


def latest_state(run_dir: Path) -> Path | None:
    """The state ``latest`` names, or the newest complete one if the pointer is missing or stale."""
    pointer = Path(run_dir) / STATE_DIR / LATEST
    if pointer.is_file():
        candidate = pointer.parent / pointer.read_text().strip()
        if candidate.name and (candidate / META).is_file():
            return candidate
    states = list_states(run_dir)
    return states[-1] if states else None


def _torch_load(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"training state file missing: {path}")
    return torch.load(path, map_location="cpu", weights_only=True)


def load_state(path: Path, state: TrainingState, *, rank: int, world_size: int) -> tuple[dict, dict]:
    """Load a state folder into ``state`` (in place); returns ``(meta, rank_state)`` for this rank."""
    path = Path(path)
    meta = json.loads((path / META).read_text())
    if meta.get("world_size", 1) != world_size:
        raise RuntimeError(f"{path} was written by {meta.get('world_size')} process(es); resume it with the "
                           f"same number (this run has {world_size}), or start a new run")
    tensors = load_file(str(path / "nets.safetensors"))
    for name, net in state.nets.items():
        prefix = f"{name}."
        own = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        if not own:
            raise RuntimeError(f"{path / 'nets.safetensors'} has no weights for network {name!r}; "
                               f"it holds {sorted({k.split('.')[0] for k in tensors})}")
        net.load_state_dict(own, strict=True)
    optim = _torch_load(path / "optimizers.pt")
    for name, opt in state.optimizers.items():
        opt.load_state_dict(optim[name])
    if state.scaler is not None and "__scaler__" in optim:
        state.scaler.load_state_dict(optim["__scaler__"])
    scheds = _torch_load(path / "schedulers.pt")
    for name, sched in state.schedulers.items():
        sched.load_state_dict(scheds[name])
    rank_state = _torch_load(path / f"rank_{rank}.pt")
    return meta, rank_state
