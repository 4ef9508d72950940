"""Helpers shared by the benchmark scripts: machine facts, interleaved timing, peak memory, JSON output.

Timings on a shared machine are noisy, so every script times its candidates **interleaved** (one
repeat of each per round, so a burst of load from another process hits all of them alike) and
reports the median; the load average before and after each run goes into the JSON so a reader can
tell a quiet machine from a busy one.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from ponogan.core.atomic import write_text_atomic

RESULTS_DIR = Path(__file__).resolve().parent / "results"
BUSY_LOAD_PER_CORE = 1.25  # 1-min load per core above which results are flagged as from a busy machine


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (``uptime``), rounded."""
    return [round(v, 2) for v in os.getloadavg()]


def machine_info() -> dict:
    """What the numbers depend on: CPU count, torch version and threads, GPU if any, current load."""
    info = {
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average": load_average(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    return info


def busy_note(before: list[float], after: list[float]) -> dict:
    """``{"load_before", "load_after", "shared_cpu", "note"}``: flags runs where other processes competed
    for the CPU (1-minute load above ``BUSY_LOAD_PER_CORE`` per core at either end)."""
    cores = os.cpu_count() or 1
    busy = max(before[0], after[0]) > BUSY_LOAD_PER_CORE * cores
    note = (
        f"other processes shared the CPU (1-min load {before[0]} before, {after[0]} after, on {cores} "
        "cores): absolute times are inflated"
        if busy
        else "machine was quiet"
    )
    return {"load_before": before, "load_after": after, "shared_cpu": busy, "note": note}


def set_threads(threads: int | None) -> int:
    """Set torch's intra-op threads (None: leave torch's default); returns the count in use."""
    if threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def sync(device: str | torch.device) -> None:
    """Wait for queued GPU work so a timer measures it (no-op on CPU)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def time_interleaved(
    cases: dict[str, Callable[[], object]], repeats: int, warmup: int = 1, device: str | torch.device = "cpu"
) -> dict[str, list[float]]:
    """Seconds per call of each case: ``warmup`` untimed calls each, then ``repeats`` rounds that
    call every case once, in turn. Returns ``{name: [seconds per round]}``."""
    for run in cases.values():
        for _ in range(warmup):
            run()
    sync(device)
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, run in cases.items():
            t0 = time.perf_counter()
            run()
            sync(device)
            times[name].append(time.perf_counter() - t0)
    return times


def summarize(seconds: list[float]) -> dict:
    """Median, min, max and the raw list (rounded) of one case's timings."""
    return {
        "median_s": round(statistics.median(seconds), 5),
        "min_s": round(min(seconds), 5),
        "max_s": round(max(seconds), 5),
        "repeats": len(seconds),
        "all_s": [round(s, 5) for s in seconds],
    }


def max_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024 if sys.platform != "darwin" else kib / 2**20


def write_json(path: str | Path, data: dict) -> Path:
    """Write ``data`` as indented JSON atomically; returns the path."""
    return write_text_atomic(path, json.dumps(data, indent=2) + "\n")


def read_json(path: str | Path) -> dict | None:
    """The JSON object at ``path``, or None when the file is missing or unreadable (a run to redo)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None
