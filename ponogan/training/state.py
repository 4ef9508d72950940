"""Full training state on disk: atomic save, keep the last K, find and load the latest for ``--resume``.

Layout of one state (``<run>/state/step_000500/``)::

    nets.safetensors      every network (generators and discriminators), keys "<net>.<param>"
    optimizers.pt         {name: optimizer.state_dict()} (+ the fp16 grad scaler), torch.save
    schedulers.pt         {name: scheduler.state_dict()}
    rank_<i>.pt           per process: RNG states (python, numpy, torch, cuda), family extras
                          (image pools)
    trainer_state.json    step, epoch, batch within the epoch, world size, elapsed time, config

A state is written into ``state/.tmp-step_000500`` and renamed into place only when every file is
complete (``trainer_state.json`` is written last: it marks a state as complete and as ours);
``state/latest`` (the name of the newest state) is replaced afterwards. A crash at any point leaves
the previous state as the latest, and a failed write (disk full) raises ``CheckpointError`` saying
so. Old states are renamed to ``state/.del-step_*`` before they are deleted, so a kill mid-delete
never leaves half a state under a ``step_*`` name; ``sweep_leftovers`` removes what killed runs
leave behind. Nothing is unpickled on load: ``torch.load`` always runs with ``weights_only=True``,
and a damaged file raises ``BrokenStateError`` so ``--resume`` can fall back to an older state.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import re
import shutil
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from ponogan.atomic import temp_target, write_text_atomic
from ponogan.messages import first_line
from ponogan.models.hub import CONFIG_NAME, WEIGHTS_NAME

from .plots import LOG_NAME, LOSSES_NAME, METRICS_NAME

STATE_DIR = "state"
LATEST = "latest"
META = "trainer_state.json"
# what a complete state holds (every rank adds its rank_<i>.pt; rank_0.pt always exists)
COMPLETE_FILES = ("nets.safetensors", "optimizers.pt", "schedulers.pt", "rank_0.pt", META)
_STATE_NAME = re.compile(r"step_(\d{6,})")
METRICS_JSON = "metrics.json"
SAMPLES_DIR = "samples"
# the files a run writes at the top of its folder (next to state/ and samples/)
RUN_FILES = frozenset({WEIGHTS_NAME, CONFIG_NAME, LOG_NAME, METRICS_JSON, LOSSES_NAME, METRICS_NAME})
_SAMPLE_NAME = re.compile(r"step_\d+\.png")  # samples/step_<step>.png
# safetensors' own temp files (Rust ``tempfile``: ".tmp" + 6 letters or digits, next to its target)
_SAFETENSORS_TEMP = re.compile(r"\.tmp[A-Za-z0-9]{6}")
_STATE_TEMP = re.compile(r"\.(tmp|old|del)-(step_\d{6,})")  # being written / being replaced / pruned


class CheckpointError(RuntimeError):
    """A training state cannot be written, or does not fit this run; the message names the file."""


class BrokenStateError(CheckpointError):
    """A saved state has a missing or damaged file (truncated, garbage, pickled objects): ``--resume``
    may fall back to an older complete state."""


def state_name(step: int) -> str:
    return f"step_{step:06d}"


def _step_of(path: Path) -> int:
    return int(_STATE_NAME.fullmatch(path.name).group(1))


def is_temp_name(name: str) -> bool:
    """Whether a name in a run folder (or its samples/) is a temp file of one of its writers: an
    ``atomic_write`` of a run file or a sample grid, or safetensors' own (see ``sweep_leftovers``)."""
    target = temp_target(name) or ""
    return target in RUN_FILES or bool(_SAMPLE_NAME.fullmatch(target) or _SAFETENSORS_TEMP.fullmatch(name))


# ---------------------------------------------------------------- RNG states
def capture_rng() -> dict[str, Any]:
    """Python, NumPy, torch CPU (and CUDA) RNG states in a form ``torch.load(weights_only=True)`` reads."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = state["numpy"]
    np.random.set_state(
        (
            np_state["kind"],
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
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


# ---------------------------------------------------------------- save
@dataclass
class TrainingState:
    """What the loop hands to ``save_state`` and gets back from ``load_state``."""

    nets: dict[str, nn.Module]
    optimizers: dict[str, Any]
    schedulers: dict[str, Any]
    scaler: Any = None


def _free_bytes(path: Path) -> int:
    folder = next((p for p in (path, *path.parents) if p.is_dir()), Path("."))
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return 1 << 62


def describe_write_error(path: Path, err: BaseException) -> str:
    """One line for a failed write of ``path``: "the disk is full" for ENOSPC/EDQUOT or when hardly any
    space is left (``torch.save`` reports a full disk as ``basic_ios::clear``), else the reason."""
    path = Path(getattr(err, "filename", None) or path)
    if getattr(err, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or _free_bytes(path) < 1 << 20:
        return f"the disk is full: could not write {path}"
    reason = err.strerror if isinstance(err, OSError) and err.strerror else first_line(err)
    return f"could not write {path}: {reason}"


def _write(path: Path, write: Callable[[Path], Any]) -> None:
    """``write(path)``, with a failure (disk full, I/O error) turned into a one-line ``CheckpointError``."""
    try:
        write(path)
    except (OSError, RuntimeError, SafetensorError) as err:
        raise CheckpointError(describe_write_error(path, err)) from err


def _put_in_place(tmp: Path, final: Path) -> None:
    """Rename the finished ``tmp`` to ``final``; an existing ``final`` (a step saved again, e.g. at the
    end of a resumed run that did no new step) goes aside as ``.old-<name>`` until the swap is done."""
    if not final.exists():
        os.replace(tmp, final)
        return
    old = final.with_name(f".old-{final.name}")
    shutil.rmtree(old, ignore_errors=True)
    os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def _discard(state: Path) -> None:
    """Delete a state folder: renamed to ``.del-<name>`` first, so a kill mid-delete leaves a name
    ``sweep_leftovers`` removes, never a half state named ``step_*``."""
    doomed = state.with_name(f".del-{state.name}")
    shutil.rmtree(doomed, ignore_errors=True)
    try:
        os.replace(state, doomed)
    except OSError:
        return
    shutil.rmtree(doomed, ignore_errors=True)


def save_state(
    run_dir: Path,
    step: int,
    state: TrainingState,
    *,
    meta: dict[str, Any],
    rank_state: dict[str, Any],
    rank: int,
    world_size: int,
    barrier,
    keep_last: int,
) -> Path:
    """Write ``state/step_<step>/`` atomically from all ranks (``barrier()`` syncs them); returns it.

    Every rank writes its ``rank_<i>.pt``; rank 0 writes the shared files, renames the folder into
    place, points ``latest`` at it and prunes all but the newest ``keep_last`` states up to ``step``
    (newer ones, left by a resume from an older state, are not counted against the good ones).
    A failed write raises ``CheckpointError`` naming the file, after removing the partial folder;
    the previous state is untouched.
    """
    root = Path(run_dir) / STATE_DIR
    final = root / state_name(step)
    tmp = root / f".tmp-{state_name(step)}"
    previous = latest_state(run_dir)
    try:
        if rank == 0:
            _write(root, lambda p: p.mkdir(parents=True, exist_ok=True))
            shutil.rmtree(tmp, ignore_errors=True)
            _write(tmp, Path.mkdir)
        barrier()
        _write(tmp / f"rank_{rank}.pt", lambda p: torch.save(rank_state, p))
        if rank == 0:
            tensors = {
                f"{name}.{key}": value.detach().to("cpu").contiguous()
                for name, net in state.nets.items()
                for key, value in net.state_dict().items()
            }
            _write(tmp / "nets.safetensors", lambda p: save_file(tensors, p))
            optim = {name: opt.state_dict() for name, opt in state.optimizers.items()}
            if state.scaler is not None:
                optim["__scaler__"] = state.scaler.state_dict()
            _write(tmp / "optimizers.pt", lambda p: torch.save(optim, p))
            scheds = {name: s.state_dict() for name, s in state.schedulers.items()}
            _write(tmp / "schedulers.pt", lambda p: torch.save(scheds, p))
        barrier()
        if rank == 0:
            text = json.dumps({**meta, "step": step, "world_size": world_size}, indent=2)
            _write(tmp / META, lambda p: p.write_text(text))
            _write(final, lambda p: _put_in_place(tmp, p))
            _write(root / LATEST, lambda p: write_text_atomic(p, final.name + "\n", fsync=True))
    except CheckpointError as err:
        if rank == 0:
            shutil.rmtree(tmp, ignore_errors=True)
        kept = f"the previous state {previous} is intact" if previous else "no earlier state was saved"
        hint = "free space or fix the cause, then continue with --resume"
        raise CheckpointError(f"{err}; {kept} ({hint})") from err.__cause__
    if rank == 0:
        for stale in [s for s in list_states(run_dir) if _step_of(s) <= step][:-keep_last]:
            _discard(stale)
    barrier()
    return final


# ---------------------------------------------------------------- find
def _is_complete(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink() and all((path / f).is_file() for f in COMPLETE_FILES)


def list_states(run_dir: Path) -> list[Path]:
    """Complete states (real ``state/step_*`` folders holding every file of a state), oldest first."""
    root = Path(run_dir) / STATE_DIR
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if _STATE_NAME.fullmatch(p.name) and _is_complete(p)]
    return sorted(found, key=_step_of)


def latest_state(run_dir: Path) -> Path | None:
    """The complete state ``state/latest`` names, else the newest complete one. The pointer is only a
    name matched against ``list_states``: an absolute path or ``..`` in it is never followed."""
    states = list_states(run_dir)
    pointer = Path(run_dir) / STATE_DIR / LATEST
    name = ""
    if pointer.is_file():
        with contextlib.suppress(OSError, UnicodeDecodeError):
            name = pointer.read_text(encoding="utf-8").strip()
    named = [s for s in states if s.name == name]
    return named[0] if named else (states[-1] if states else None)


def resume_order(run_dir: Path) -> list[Path]:
    """States to try on ``--resume``: the latest first, then the other complete ones, newest first."""
    latest = latest_state(run_dir)
    if latest is None:
        return []
    return [latest, *(s for s in reversed(list_states(run_dir)) if s != latest)]


def _marker_step(path: Path) -> int | None:
    try:
        step = json.loads((path / META).read_text(encoding="utf-8")).get("step")
    except (OSError, ValueError, AttributeError):
        return None
    return step if isinstance(step, int) else None


def sweep_leftovers(run_dir: Path) -> list[Path]:
    """Remove what killed runs leave in a run folder, by names only ponogan's writers use; returns them.

    Temp files of ``model.safetensors``/``config.json`` (also safetensors' own ``.tmpXXXXXX``) and of
    sample grids; ``state/.latest.tmp``; unfinished ``state/.tmp-step_*`` and pruned
    ``state/.del-step_*`` folders; ``state/step_*`` folders that lost files while being deleted, only
    when their ``trainer_state.json`` marker (written last, with the step) shows a complete state of
    ours was there. A complete ``.tmp-``/``.old-step_*`` whose ``step_*`` is missing (a kill between
    two renames) is renamed back into place instead. Symlinks are never followed or removed.
    """
    run_dir = Path(run_dir)
    removed: list[Path] = []

    def remove(path: Path) -> None:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)

    for folder in (run_dir, run_dir / SAMPLES_DIR):
        if folder.is_dir() and not folder.is_symlink():
            for path in folder.iterdir():
                if is_temp_name(path.name) and path.is_file() and not path.is_symlink():
                    remove(path)
    root = run_dir / STATE_DIR
    if not root.is_dir() or root.is_symlink():
        return removed
    # newest first: a finished .tmp- beats the .old- copy of the same step
    for path in sorted(root.iterdir(), key=lambda p: (not p.name.startswith(".tmp-"), p.name)):
        if path.is_symlink():
            continue
        temp = _STATE_TEMP.fullmatch(path.name)
        if temp_target(path.name) == LATEST and path.is_file():
            remove(path)
        elif temp and path.is_dir():
            target = root / temp.group(2)
            if temp.group(1) != "del" and _is_complete(path) and not target.exists():
                os.replace(path, target)
            else:
                remove(path)
        elif (
            _STATE_NAME.fullmatch(path.name)
            and path.is_dir()
            and not _is_complete(path)
            and _marker_step(path) == _step_of(path)
        ):
            remove(path)
    return removed


# ---------------------------------------------------------------- load
def _read(path: Path, reader: Callable[[Path], Any]) -> Any:
    """``reader(path)``; a missing or damaged file (truncated, garbage, pickled objects) raises
    ``BrokenStateError`` with one line saying which file and what is wrong with it."""
    if not path.is_file():
        raise BrokenStateError(f"{path.name} is missing")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on pickle protocols: the error says enough
            return reader(path)
    except Exception as err:  # any way a damaged file fails to parse means the same: it is broken
        message = str(err)
        if "Unsupported global" in message:
            found = re.search(r"GLOBAL (\S+)", message)
            what = found.group(1) if found else "not tensors"
            raise BrokenStateError(
                f"{path.name} holds pickled Python objects ({what}), which ponogan never loads"
            ) from err
        if "Weights only load failed" in message:
            with open(path, "rb") as f:  # a plain pickle starts with the PROTO opcode; torch.save writes zips
                plain = f.read(1) == b"\x80"
            what = "holds pickled Python objects (a plain pickle)" if plain else "is not a valid torch file"
            raise BrokenStateError(
                f"{path.name} {what}, which ponogan never loads" if plain else f"{path.name} {what} (damaged)"
            ) from err
        if path.stat().st_size == 0:
            raise BrokenStateError(f"{path.name} is empty") from err
        raise BrokenStateError(f"{path.name} is damaged ({first_line(err)})") from err


def _torch_load(path: Path) -> Any:
    return torch.load(path, map_location="cpu", weights_only=True)


def load_state(path: Path, state: TrainingState, *, rank: int, world_size: int) -> tuple[dict, dict]:
    """Load a state folder into ``state`` (in place); returns ``(meta, rank_state)`` for this rank.

    Every file is read before anything is applied. ``BrokenStateError``: a file is missing or damaged
    (the caller may fall back to an older state); ``CheckpointError``: the files are fine but do not
    fit this run (number of processes, networks, optimizers).
    """
    path = Path(path)
    meta = _read(path / META, lambda p: json.loads(p.read_text(encoding="utf-8")))
    positions = ("step", "epoch", "batch")
    if not isinstance(meta, dict) or not all(isinstance(meta.get(k), int) for k in positions):
        raise BrokenStateError(f"{META} lacks its step, epoch or batch")
    if meta.get("world_size", 1) != world_size:
        raise CheckpointError(
            f"{path} was written by {meta.get('world_size')} process(es); resume it with "
            f"the same number (this run has {world_size}), or start a new run"
        )
    tensors = _read(path / "nets.safetensors", lambda p: load_file(str(p)))
    optim = _read(path / "optimizers.pt", _torch_load)
    scheds = _read(path / "schedulers.pt", _torch_load)
    rank_state = _read(path / f"rank_{rank}.pt", _torch_load)
    if not isinstance(rank_state, dict):
        raise BrokenStateError(f"rank_{rank}.pt does not hold a per-process state")
    try:
        for name, net in state.nets.items():
            prefix = f"{name}."
            own = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
            if not own:
                raise CheckpointError(
                    f"nets.safetensors has no weights for network {name!r}; "
                    f"it holds {sorted({k.split('.')[0] for k in tensors})}"
                )
            net.load_state_dict(own, strict=True)
        for name, opt in state.optimizers.items():
            opt.load_state_dict(optim[name])
        if state.scaler is not None and "__scaler__" in optim:
            state.scaler.load_state_dict(optim["__scaler__"])
        for name, sched in state.schedulers.items():
            sched.load_state_dict(scheds[name])
    except (RuntimeError, ValueError, KeyError, TypeError) as err:
        if isinstance(err, CheckpointError):
            raise
        raise CheckpointError(
            f"{path.name} does not fit this run's networks ({first_line(err)}); resume "
            "with the run's own config (no --config)"
        ) from err
    return meta, rank_state
