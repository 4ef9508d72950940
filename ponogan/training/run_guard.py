"""The run-folder rules of training: what a run may write into, resume from, and how it locks it.

Nothing a user has is overwritten (``check_run_dir``): a new run goes into a new or empty folder,
``--resume`` needs a training state to continue and a step to go to, and a folder with damaged
states, an exported model without a state or files a run does not write is refused with one line
saying what to do. One run at a time trains in a folder (``take_lock``, ``state.RunLock``); the log
of the steps a resumed run redoes is dropped (``truncate_log``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

from ponogan.core.atomic import atomic_write
from ponogan.core.run_folder import (
    CONFIG,
    LOCK,
    MODEL,
    SAMPLES_DIR,
    STATE_DIR,
    TOP_FILES,
    RunCard,
    RunFolder,
    RunFolderError,
)
from ponogan.training.errors import UsageError
from ponogan.training.state import (
    BrokenStateError,
    RunInUseError,
    RunLock,
    RunLockError,
    damaged_states,
    is_temp_name,
    latest_state,
    lock_holder,
    read_meta,
    state_folders,
)

# what a run writes into its folder (besides its writers' temp files); anything else is the user's
RUN_ENTRIES = TOP_FILES | {STATE_DIR, SAMPLES_DIR, LOCK}
IN_USE_HINT = "wait for it to finish (or stop it), or pass another --output-dir"


def exported_step(run_dir: Path) -> int | None:
    """The step of the run's exported model (``config.json``), None when there is none to read."""
    try:
        step = RunCard.load(RunFolder(run_dir).config, generators=False).step
    except RunFolderError:
        return None
    return step if step is not None and (run_dir / MODEL).is_file() else None


def nothing_to_train(run_dir: Path, step: int, max_steps: int) -> UsageError:
    """The refusal of a resume whose ``max_steps`` is not above the run's step."""
    return UsageError(
        f"nothing to train: {run_dir} is already at step {step} and max_steps is {max_steps}; pass "
        f"--max-steps above {step} to continue it"
    )


def all_damaged(run_dir: Path, damaged: list[tuple[Path, str]], resume: bool) -> UsageError:
    """The refusal of a run folder whose every training state is damaged, naming each one."""
    listing = "; ".join(f"{path.name} ({why})" for path, why in damaged)
    if resume:
        return UsageError(
            f"cannot resume: every training state of {run_dir} is damaged: {listing}; they are kept as "
            "they are; start a new run with another --output-dir"
        )
    return UsageError(
        f"{run_dir} holds a run whose every training state is damaged ({listing}); they are kept: "
        "train into another --output-dir"
    )


def _damage_of(state: Path) -> str:
    """What ``read_meta`` finds wrong with an incomplete state folder (the files it lacks)."""
    try:
        read_meta(state)
    except BrokenStateError as err:
        return str(err)
    return "damaged"


def check_run_dir(run_dir: Path, resume: bool, max_steps: int | None = None) -> None:
    """Refuse, with ``UsageError``, a run folder that would lose a user's files or has nothing to resume.

    A new run goes into a missing or empty folder, or one holding only what a run writes before its
    first checkpoint; a folder with training states needs ``--resume`` (and a ``max_steps`` above the
    latest state's step); a folder another run is training in (its lock is held), whose every state
    is damaged, with an exported model but no training state, or with files a run does not write, is
    never written into.
    """
    blocker = next((p for p in (run_dir, *run_dir.parents) if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise UsageError(f"--output-dir {run_dir}: {blocker} is a file, not a folder; pass a folder")
    if not run_dir.is_dir():
        if resume:
            raise UsageError(f"nothing to resume: {run_dir} does not exist; drop --resume to start a new run")
        return
    holder = lock_holder(run_dir)
    if holder is not None:
        raise UsageError(f"{run_dir} is in use by another training run ({holder}); {IN_USE_HINT}")
    latest = latest_state(run_dir)
    if latest is not None:
        if not resume:
            raise UsageError(
                f"{run_dir} already holds a run (checkpoint {latest.name}); pass "
                "--resume to continue it, or --output-dir DIR for a new run folder"
            )
        try:
            step = read_meta(latest)["step"]
        except BrokenStateError:  # a damaged latest state: resume sets it aside and checks again
            step = None
        # a model export behind its state (a kill or a full disk between the two) is still to be written
        exported = step is not None and exported_step(run_dir) == step
        if max_steps is not None and exported and max_steps <= step:
            raise nothing_to_train(run_dir, step, max_steps)
        return
    incomplete = [(p, _damage_of(p)) for p in state_folders(run_dir)]
    damaged = incomplete + [(p, "set aside earlier") for p in damaged_states(run_dir)]
    if damaged:
        raise all_damaged(run_dir, damaged, resume)
    # NOTE: accelerate's tensorboard tracker logs into <run>/<run folder name>
    names = sorted(p.name for p in run_dir.iterdir() if not is_temp_name(p.name))
    model = [n for n in names if n in (MODEL, CONFIG)]
    foreign = [n for n in names if n not in RUN_ENTRIES and n != run_dir.name]
    if model:
        what = f"{run_dir} holds an exported model ({', '.join(model)}) but no training state (state/step_*)"
        raise UsageError(
            f"nothing to resume: {what}"
            if resume
            else f"{what}; train into another --output-dir so it is not overwritten (--resume needs "
            "a run folder with a training state)"
        )
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise UsageError(
            f"--output-dir {run_dir} is not empty and is not a ponogan run folder (it holds "
            f"{shown}); use a new or empty folder"
        )
    if resume:
        raise UsageError(
            f"nothing to resume: {run_dir} has no training state (state/step_*) yet; drop "
            "--resume to start the run over"
        )


def take_lock(run_dir: Path, main: bool, agree: Callable[[bool], list[bool]]) -> RunLock | None:
    """The main process's ``RunLock`` on ``run_dir`` (None on the other ranks); every rank raises
    ``UsageError`` when another run holds it (``agree`` ORs a flag over the ranks). A stale lock (its
    run was killed) is taken over with one warning line."""
    lock, refusal = None, None
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        try:
            lock = RunLock.acquire(run_dir)
        except RunLockError as err:
            refusal = f"{err}; {IN_USE_HINT}" if isinstance(err, RunInUseError) else str(err)
    if agree(refusal is not None)[0]:
        raise UsageError(refusal or "the main process could not lock the run folder")
    if lock is not None and lock.stale:
        print(
            f"warning: {lock.path} was left by a run that is no longer running ({lock.stale}); "
            "taking the run folder over",
            file=sys.stderr,
        )
    return lock


def _log_record(line: bytes) -> dict | None:
    """A ``log.jsonl`` line as the record it holds; None when it is not UTF-8 JSON of a record with
    an integer step (or none)."""
    try:
        record = json.loads(line.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError too
        return None
    if not isinstance(record, dict) or not isinstance(record.get("step", 0), int):
        return None
    return record


def truncate_log(path: Path, step: int) -> None:
    """After a resume (or a restart of a run that never saved), drop the log records of the steps the
    run will redo, and a last line a kill cut short (no newline: the run's own unfinished write).
    Lines that are not UTF-8 JSON records are not the run's: they are kept where they are, skipped,
    and named in one warning line."""
    if not path.is_file():
        return
    *lines, torn = path.read_bytes().split(b"\n")
    kept, unreadable = [], []
    for number, line in enumerate(lines, 1):
        record = _log_record(line)
        if record is None and line.strip():
            unreadable.append(number)
            kept.append(line)
        elif record is not None and record.get("step", 0) <= step:
            kept.append(line)
    if unreadable:
        shown = ", ".join(map(str, unreadable[:5])) + (", ..." if len(unreadable) > 5 else "")
        print(
            f"warning: {path}: {len(unreadable)} line(s) are not UTF-8 JSON records (line {shown}); "
            "kept as they are and skipped",
            file=sys.stderr,
        )
    if kept != lines or torn:
        atomic_write(path, lambda temp: temp.write_bytes(b"".join(line + b"\n" for line in kept)))
