"""When a training run stops: ``max_steps``, ``stop_at_step``, ``max_minutes`` or SIGINT/SIGTERM.

``StopRules`` names the reason to stop after a step (or none); ``StopSignals`` turns a signal into a
flag the loop reads once a step, and makes sure a checkpoint being written is always completed. In a
multi-process run the loop agrees on the flags over all ranks before asking ``StopRules``.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ponogan.training.config import LoopConfig
from ponogan.training.state import latest_state


@dataclass(frozen=True)
class StopRules:
    """The step and time limits of one ``train`` call: ``max_steps``, a ``stop_at`` step (only one
    above the step it starts at counts) and a ``deadline`` on ``time.monotonic()`` (``max_minutes``
    from its start)."""

    max_steps: int
    stop_at: int | None = None
    deadline: float | None = None

    @classmethod
    def of(cls, train: LoopConfig, start_step: int, start_time: float) -> StopRules:
        """The rules of ``train`` for a run starting at ``start_step`` at ``start_time``."""
        stop_at = train.stop_at_step
        return cls(
            max_steps=train.max_steps,
            stop_at=stop_at if stop_at is not None and stop_at > start_step else None,
            deadline=None if train.max_minutes is None else start_time + 60 * train.max_minutes,
        )

    def timed_out(self) -> bool:
        """Whether the deadline has passed."""
        return self.deadline is not None and time.monotonic() >= self.deadline

    def reason(self, step: int, *, signal: bool, timed_out: bool) -> str | None:
        """Why to stop after ``step``: ``"signal"``, ``"max_minutes"``, ``"stop_at_step"`` or
        ``"max_steps"`` (in that order of precedence), None to go on."""
        reasons = {
            "signal": signal,
            "max_minutes": timed_out,
            "stop_at_step": self.stop_at is not None and step >= self.stop_at,
            "max_steps": step >= self.max_steps,
        }
        return next((why for why, hit in reasons.items() if hit), None)


class StopSignals:
    """SIGINT/SIGTERM set a flag (the loop saves and exits 0). A second signal aborts at once with a
    ``KeyboardInterrupt`` naming the latest checkpoint, except while one is being written
    (``saving()``): then it is only reported, so a save always completes."""

    def __init__(self, run_dir: Path, verbose: bool = True):
        self.run_dir = run_dir
        self.verbose = verbose
        self.received: str | None = None
        self._saving = False
        self._old: dict[int, Any] = {}

    def _say(self, text: str) -> None:
        if self.verbose:
            print(f"\n{text}", file=sys.stderr, flush=True)

    def _handle(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        if self.received is None:
            self.received = name
            self._say(
                f"{name}: finishing this step, then saving a checkpoint (send it again to stop at once "
                "without saving)"
            )
        elif self._saving:
            self._say(f"{name} again: still writing the checkpoint; the run stops once it is complete")
        else:
            last = latest_state(self.run_dir)
            raise KeyboardInterrupt(
                f"second {name}: stopped at once without saving; latest complete checkpoint: {last or 'none'}"
            )

    @contextlib.contextmanager
    def saving(self) -> Iterator[None]:
        """A block (writing a checkpoint) that a second signal does not interrupt."""
        self._saving = True
        try:
            yield
        finally:
            self._saving = False

    def __enter__(self) -> StopSignals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
