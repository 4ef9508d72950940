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
leave behind, and only that: names that only ponogan's writers use. Nothing is unpickled on load:
``torch.load`` always runs with ``weights_only=True``, and a missing or damaged file, or a
``trainer_state.json`` whose step disagrees with its folder or its schedulers, raises
``BrokenStateError`` so ``--resume`` can fall back to an older state. A damaged state is never
deleted: ``set_aside`` renames it ``step_000500.damaged``, which no pruning, sweep or resume touches.

One run at a time uses a run folder: ``RunLock`` holds ``train.lock`` (pid, host, start time) with
``fcntl.flock`` for as long as the run goes; the kernel drops the lock when its process dies, so a
lock file left by a killed run is recognised as stale and taken over.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import re
import shutil
import socket
import stat
import time
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

from ponogan.core.atomic import set_file_mode, temp_target, write_text_atomic
from ponogan.core.messages import first_line
from ponogan.core.run_folder import (
    SAMPLES_DIR,
    STATE_DIR,
    STATE_LATEST,
    STATE_META,
    STATE_NETS,
    STATE_OPTIMIZERS,
    STATE_SCHEDULERS,
    TOP_FILES,
    RunFolder,
    rank_file,
)

# what a complete state holds (every rank adds its rank_<i>.pt; rank_0.pt always exists)
COMPLETE_FILES = (STATE_NETS, STATE_OPTIMIZERS, STATE_SCHEDULERS, rank_file(0), STATE_META)
_STATE_NAME = re.compile(r"step_(\d{6,})")
DAMAGED = ".damaged"  # step_000500.damaged (-2, -3... when that name is taken): a state set aside
_DAMAGED_NAME = re.compile(r"step_\d{6,}\.damaged(-\d+)?")
_SAMPLE_NAME = re.compile(r"step_\d+\.png")  # samples/step_<step>.png
# safetensors' own temp files (Rust ``tempfile``: ".tmp" + 6 letters or digits, next to its target)
_SAFETENSORS_TEMP = re.compile(r"\.tmp[A-Za-z0-9]{6}")
_STATE_TEMP = re.compile(r"\.(tmp|old|del)-(step_\d{6,})")  # being written / being replaced / pruned


class CheckpointError(RuntimeError):
    """A training state cannot be written, or does not fit this run; the message names the file."""


class BrokenStateError(CheckpointError):
    """A saved state has a missing or damaged file (truncated, garbage, pickled objects) or disagrees
    with itself (its step): ``--resume`` sets it aside and may fall back to an older state."""


class RunLockError(RuntimeError):
    """The run folder's lock cannot be taken; the message says why."""


class RunInUseError(RunLockError):
    """Another process is training in the run folder (``RunLock``); the message names it."""


def _step_of(path: Path) -> int:
    return int(_STATE_NAME.fullmatch(path.name).group(1))


def is_temp_name(name: str) -> bool:
    """Whether a name in a run folder (or its samples/) is a temp file of one of its writers: an
    ``atomic_write`` of a run file or a sample grid, or safetensors' own (see ``sweep_leftovers``)."""
    target = temp_target(name) or ""
    return target in TOP_FILES or bool(_SAMPLE_NAME.fullmatch(target) or _SAFETENSORS_TEMP.fullmatch(name))


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
    """Rename the finished ``tmp`` to ``final``; an existing complete ``final`` (a step saved again, after
    a resume from an older state) goes aside as ``.old-<name>`` until the swap is done, an incomplete
    one is damaged and set aside for good (``set_aside``)."""
    if final.exists() and not _is_complete(final):
        set_aside(final)
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
    folder = RunFolder(run_dir)
    root, final = folder.state_dir, folder.state(step)
    tmp = root / f".tmp-{final.name}"
    previous = latest_state(run_dir)
    try:
        if rank == 0:
            _write(root, lambda p: p.mkdir(parents=True, exist_ok=True))
            shutil.rmtree(tmp, ignore_errors=True)
            _write(tmp, Path.mkdir)
        barrier()
        _write(tmp / rank_file(rank), lambda p: torch.save(rank_state, p))
        if rank == 0:
            tensors = {
                f"{name}.{key}": value.detach().to("cpu").contiguous()
                for name, net in state.nets.items()
                for key, value in net.state_dict().items()
            }
            _write(tmp / STATE_NETS, lambda p: (save_file(tensors, p), set_file_mode(p)))
            optim = {name: opt.state_dict() for name, opt in state.optimizers.items()}
            if state.scaler is not None:
                optim["__scaler__"] = state.scaler.state_dict()
            _write(tmp / STATE_OPTIMIZERS, lambda p: torch.save(optim, p))
            scheds = {name: s.state_dict() for name, s in state.schedulers.items()}
            _write(tmp / STATE_SCHEDULERS, lambda p: torch.save(scheds, p))
        barrier()
        if rank == 0:
            text = json.dumps({**meta, "step": step, "world_size": world_size}, indent=2)
            _write(tmp / STATE_META, lambda p: p.write_text(text))
            _write(final, lambda p: _put_in_place(tmp, p))
            _write(root / STATE_LATEST, lambda p: write_text_atomic(p, final.name + "\n", fsync=True))
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
def missing_files(path: Path) -> list[str]:
    """The files of ``COMPLETE_FILES`` that the state folder ``path`` lacks."""
    return [name for name in COMPLETE_FILES if not (path / name).is_file()]


def _is_complete(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink() and not missing_files(path)


def state_folders(run_dir: Path) -> list[Path]:
    """Every real ``state/step_*`` folder, complete or not, oldest first."""
    root = Path(run_dir) / STATE_DIR
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if _STATE_NAME.fullmatch(p.name) and p.is_dir() and not p.is_symlink()]
    return sorted(found, key=_step_of)


def list_states(run_dir: Path) -> list[Path]:
    """Complete states (real ``state/step_*`` folders holding every file of a state), oldest first."""
    return [p for p in state_folders(run_dir) if not missing_files(p)]


def damaged_states(run_dir: Path) -> list[Path]:
    """The states ``set_aside`` renamed (``state/step_*.damaged``), by name."""
    root = Path(run_dir) / STATE_DIR
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if _DAMAGED_NAME.fullmatch(p.name))


def _pointer_name(run_dir: Path) -> str:
    pointer = Path(run_dir) / STATE_DIR / STATE_LATEST
    if pointer.is_file():
        with contextlib.suppress(OSError, UnicodeDecodeError):
            return pointer.read_text(encoding="utf-8").strip()
    return ""


def latest_state(run_dir: Path) -> Path | None:
    """The complete state ``state/latest`` names, else the newest complete one. The pointer is only a
    name matched against ``list_states``: an absolute path or ``..`` in it is never followed."""
    states = list_states(run_dir)
    named = [s for s in states if s.name == _pointer_name(run_dir)]
    return named[0] if named else (states[-1] if states else None)


def resume_order(run_dir: Path) -> list[Path]:
    """State folders to try on ``--resume``: the one ``state/latest`` names, then every other one,
    newest first; incomplete ones too, so that ``load_state`` says what they lack."""
    folders = state_folders(run_dir)
    named = [p for p in folders if p.name == _pointer_name(run_dir)]
    return [*named, *(p for p in reversed(folders) if p not in named)]


def set_aside(path: Path) -> Path:
    """Rename the damaged state folder ``path`` to ``<name>.damaged`` (``.damaged-2``... when taken),
    where nothing deletes, prunes or resumes from it; returns the new path."""
    for n in range(1, 1000):
        target = path.with_name(path.name + DAMAGED + (f"-{n}" if n > 1 else ""))
        if not os.path.lexists(target):
            os.rename(path, target)
            return target
    raise CheckpointError(f"cannot set {path} aside: {path.name}.damaged-1...999 all exist")


def sweep_leftovers(run_dir: Path) -> list[Path]:
    """Remove what killed runs leave in a run folder, by names only ponogan's writers use; returns them.

    Temp files of ``model.safetensors``/``config.json`` (also safetensors' own ``.tmpXXXXXX``) and of
    sample grids; ``state/.latest.tmp``; unfinished ``state/.tmp-step_*``, replaced ``.old-step_*`` and
    pruned ``state/.del-step_*`` folders. A complete ``.tmp-``/``.old-step_*`` whose ``step_*`` is
    missing (a kill between two renames) is renamed back into place instead. A ``state/step_*`` folder
    is never removed, complete or not (``--resume`` sets a damaged one aside), and symlinks are never
    followed or removed.
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
        if temp_target(path.name) == STATE_LATEST and path.is_file():
            remove(path)
        elif temp and path.is_dir():
            target = root / temp.group(2)
            if temp.group(1) != "del" and _is_complete(path) and not target.exists():
                os.replace(path, target)
            else:
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


def read_meta(path: Path) -> dict[str, Any]:
    """A state folder's ``trainer_state.json``, checked: every file of the state is there, and the
    step, epoch and batch are integers, the step that of the folder's name. ``BrokenStateError``
    otherwise (the state is damaged, or was edited by hand)."""
    path = Path(path)
    missing = missing_files(path)
    if missing:
        raise BrokenStateError(f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing")
    meta = _read(path / STATE_META, lambda p: json.loads(p.read_text(encoding="utf-8")))
    positions = ("step", "epoch", "batch")
    if not isinstance(meta, dict) or not all(isinstance(meta.get(k), int) for k in positions):
        raise BrokenStateError(f"{STATE_META} lacks its step, epoch or batch")
    named = _STATE_NAME.fullmatch(path.name)
    if named and int(named.group(1)) != meta["step"]:
        raise BrokenStateError(f"{STATE_META} says step {meta['step']}, but the folder is {path.name}")
    return meta


def _count(value: Any) -> float | None:
    """An optimizer's per-parameter step count (a number or a one-element tensor), else None."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _check_step_counts(step: int, optim: dict, scheds: dict) -> None:
    """``BrokenStateError`` when the schedulers did not step ``step`` times (the loop steps each once
    an optimizer step) or an optimizer stepped more often (it may step less: fp16 skips steps)."""
    for name, sched in scheds.items():
        count = sched.get("last_epoch") if isinstance(sched, dict) else None
        if isinstance(count, int) and count != step:
            raise BrokenStateError(
                f"{STATE_META} says step {step}, but scheduler {name!r} stepped {count} times"
            )
    for name, opt in optim.items():
        params = opt.get("state", {}) if isinstance(opt, dict) else {}
        counts = [_count(p.get("step")) for p in params.values() if isinstance(p, dict)]
        counts = [c for c in counts if c is not None]
        if counts and max(counts) > step:
            raise BrokenStateError(
                f"{STATE_META} says step {step}, but optimizer {name!r} stepped {max(counts):.0f} times"
            )


def load_state(path: Path, state: TrainingState, *, rank: int, world_size: int) -> tuple[dict, dict]:
    """Load a state folder into ``state`` (in place); returns ``(meta, rank_state)`` for this rank.

    Every file is read and the step counts checked before anything is applied. ``BrokenStateError``:
    a file is missing or damaged, or the step disagrees (the caller may fall back to an older state);
    ``CheckpointError``: the files are fine but do not fit this run (processes, networks, optimizers).
    """
    path = Path(path)
    meta = read_meta(path)
    if meta.get("world_size", 1) != world_size:
        raise CheckpointError(
            f"{path} was written by {meta.get('world_size')} process(es); resume it with "
            f"the same number (this run has {world_size}), or start a new run"
        )
    tensors = _read(path / STATE_NETS, lambda p: load_file(str(p)))
    optim = _read(path / STATE_OPTIMIZERS, _torch_load)
    scheds = _read(path / STATE_SCHEDULERS, _torch_load)
    rank_state = _read(path / rank_file(rank), _torch_load)
    if not isinstance(rank_state, dict):
        raise BrokenStateError(f"{rank_file(rank)} does not hold a per-process state")
    if not isinstance(optim, dict) or not isinstance(scheds, dict):
        raise BrokenStateError(f"{STATE_OPTIMIZERS} or {STATE_SCHEDULERS} does not hold a state per name")
    _check_step_counts(meta["step"], optim, scheds)
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


# ---------------------------------------------------------------- one run per folder
try:
    import fcntl
except ImportError:  # NOTE: Windows has no flock; there the lock file only records the holder
    fcntl = None


# never follow a link named train.lock, nor wait on a FIFO
_LOCK_OPEN = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


def _holder_text(fd: int) -> str:
    """Who a lock file names: "pid 123 on host, started 2026-01-02 10:00 UTC" (empty: nobody)."""
    data = os.pread(fd, 4096, 0)
    try:
        holder = json.loads(data.decode("utf-8")) if data.strip() else {}
    except ValueError:
        holder = None
    if not isinstance(holder, dict):
        return "an unknown process" if data.strip() else ""
    if not holder:
        return ""
    return f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, started {holder.get('started', '?')}"


def _try_flock(fd: int) -> bool:
    """Take an exclusive ``flock`` on ``fd`` without waiting; False when another process holds one."""
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def lock_holder(run_dir: Path) -> str | None:
    """Who holds the run folder's lock (``_holder_text``), or None when no process does. Creates
    nothing: a folder without ``train.lock`` is free."""
    path = RunFolder(run_dir).lock
    try:
        fd = os.open(path, os.O_RDONLY | _LOCK_OPEN)
    except OSError:
        return None
    try:
        return None if _try_flock(fd) else _holder_text(fd) or "another process"
    finally:
        os.close(fd)  # also drops the probe's own flock


class RunLock:
    """The exclusive lock of one training run on its folder: ``train.lock`` with an ``flock`` held by
    the main process until ``release`` (or its death), and the holder's pid, host and start time in
    it. ``stale``: who an earlier lock file named, when its process died without releasing it."""

    def __init__(self, path: Path, fd: int, stale: str):
        self.path, self.fd, self.stale = path, fd, stale

    @classmethod
    def acquire(cls, run_dir: Path) -> RunLock:
        """Take the lock of ``run_dir`` (an existing folder); ``RunInUseError`` naming the holder when
        another process has it, ``RunLockError`` when ``train.lock`` cannot be opened as a file."""
        path = RunFolder(run_dir).lock
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | _LOCK_OPEN, 0o666)  # the umask applies
            except OSError as err:  # a link named train.lock, no write permission
                raise RunLockError(f"cannot open the run folder's lock {path} ({err.strerror})") from err
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                raise RunLockError(f"{path} is not a regular file; move it away (the run is locked there)")
            if not _try_flock(fd):
                holder = _holder_text(fd) or "another process (starting up)"
                os.close(fd)
                raise RunInUseError(f"{run_dir} is in use by another training run ({holder})")
            with contextlib.suppress(FileNotFoundError):
                if os.stat(path).st_ino == os.fstat(fd).st_ino:
                    break
            os.close(fd)  # its holder removed the file between our open and flock: take the new one
        stale = _holder_text(fd)
        started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": started})
        os.ftruncate(fd, 0)
        os.pwrite(fd, (record + "\n").encode("utf-8"), 0)
        return cls(path, fd, stale)

    def release(self) -> None:
        """Remove the lock file (while still holding it, so no one takes a file about to vanish) and
        drop the lock. Idempotent."""
        if self.fd < 0:
            return
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_ino == os.fstat(self.fd).st_ino:
                os.unlink(self.path)
        os.close(self.fd)
        self.fd = -1

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()
