"""Forward+backward timings of PONO and Switchable Norm against the official algorithms.

Every candidate runs in the same process on the same input, interleaved (one call of each per
round, so machine noise hits all of them alike); the median over rounds is reported, with
``x.clone()`` as the memory-bandwidth yardstick. Writes ``bench/results/norm.json``.

    python bench/bench_norm.py                      # (4, 64, 128, 128), 30 rounds
    python bench/bench_norm.py --quick              # a small smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from ponogan.norm import SwitchNorm2d
from ponogan.norm.pono import pono


def pono_official(x: torch.Tensor, eps: float = 1e-5):
    """PONO as in the official PyTorch code (unbiased variance): ``(y, mean, std)``."""
    mean = x.mean(dim=1, keepdim=True)
    std = (x.var(dim=1, keepdim=True) + eps).sqrt()
    return (x - mean) / std, mean, std


def pono_var_mean(x: torch.Tensor, eps: float = 1e-5):
    """The same formula with one ``torch.var_mean`` call."""
    var, mean = torch.var_mean(x, dim=1, keepdim=True)
    std = (var + eps).sqrt()
    return (x - mean) / std, mean, std


def switch_official(x: torch.Tensor, sn: SwitchNorm2d) -> torch.Tensor:
    """The official SN algorithm in training mode (IN moments from ``x.view(N, C, -1)``, LN and BN
    derived from them, softmax mixing, then ``(x - mean) / sqrt(var + eps) * gamma + beta``), with
    the paper's biased variance so that it computes the same function as ``SwitchNorm2d``."""
    n, c, h, w = x.shape
    v = x.view(n, c, -1)
    mean_in = v.mean(-1, keepdim=True)
    var_in = v.var(-1, keepdim=True, unbiased=False)
    temp = var_in + mean_in**2
    mean_ln = mean_in.mean(1, keepdim=True)
    var_ln = temp.mean(1, keepdim=True) - mean_ln**2
    mean_bn = mean_in.mean(0, keepdim=True)
    var_bn = temp.mean(0, keepdim=True) - mean_bn**2
    mw = torch.softmax(sn.mean_weight, 0)
    vw = torch.softmax(sn.var_weight, 0)
    mean = mw[0] * mean_in + mw[1] * mean_ln + mw[2] * mean_bn
    var = vw[0] * var_in + vw[1] * var_ln + vw[2] * var_bn
    v = (v - mean) / (var + sn.eps).sqrt()
    return v.view(n, c, h, w) * sn.weight + sn.bias


def _fwd_bwd(fn: Callable, x0: torch.Tensor, grads: list[torch.Tensor]) -> Callable[[], None]:
    def run() -> None:
        x = x0.detach().requires_grad_(True)
        out = fn(x)
        out = out if isinstance(out, tuple) else (out,)
        torch.autograd.backward(out, grads[: len(out)])

    return run


def _time(cases: dict[str, Callable[[], None]], repeats: int, warmup: int = 2):
    """Wall-clock and process CPU milliseconds of each case, one call of every case per round.
    CPU time (all threads) is less sensitive to other jobs taking the cores than wall time."""
    for run in cases.values():
        for _ in range(warmup):
            run()
    wall: dict[str, list[float]] = {k: [] for k in cases}
    cpu: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(repeats):
        for name, run in cases.items():
            c0, t0 = time.process_time(), time.perf_counter()
            run()
            wall[name].append((time.perf_counter() - t0) * 1e3)
            cpu[name].append((time.process_time() - c0) * 1e3)
    return wall, cpu


def run_bench(shape: tuple[int, int, int, int], repeats: int) -> dict:
    """Time every case at ``shape`` and return the JSON-ready result."""
    torch.manual_seed(0)
    n, c, h, w = shape
    x = torch.randn(shape) * 2 + 0.5
    g_y = torch.randn(shape)
    g_m = torch.randn(n, 1, h, w)
    g_s = torch.randn(n, 1, h, w)
    sn = SwitchNorm2d(c)
    with torch.no_grad():
        sn.mean_weight.copy_(torch.randn(3))
        sn.var_weight.copy_(torch.randn(3))
    x_cl = x.contiguous(memory_format=torch.channels_last)
    grads = [g_y, g_m, g_s]
    grads_cl = [g_y.contiguous(memory_format=torch.channels_last), g_m, g_s]
    cases = {
        "clone": lambda: x.clone(),
        "pono_official": _fwd_bwd(pono_official, x, grads),
        "pono_var_mean": _fwd_bwd(pono_var_mean, x, grads),
        "pono_ours_formula": _fwd_bwd(lambda t: pono(t, unbiased=True, fast=False), x, grads),
        "pono_ours": _fwd_bwd(lambda t: pono(t, unbiased=True), x, grads),
        "pono_official_channels_last": _fwd_bwd(pono_official, x_cl, grads_cl),
        "pono_ours_channels_last": _fwd_bwd(lambda t: pono(t, unbiased=True), x_cl, grads_cl),
        "switch_official": _fwd_bwd(lambda t: switch_official(t, sn), x, [g_y]),
        "switch_ours": _fwd_bwd(sn, x, [g_y]),
    }
    load_before = os.getloadavg()[0]
    times, cpu = _time(cases, repeats)
    median = {k: statistics.median(v) for k, v in times.items()}
    fastest = {k: min(v) for k, v in times.items()}
    cpu_median = {k: statistics.median(v) for k, v in cpu.items()}
    return {
        "shape": list(shape),
        "dtype": "float32",
        "repeats": repeats,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "what": "forward+backward milliseconds over interleaved repeats; clone is x.clone() alone",
        "median_ms": _rounded(median),
        "min_ms": _rounded(fastest),
        "cpu_median_ms": _rounded(cpu_median),
        "ratios": _ratios(median),
        "ratios_of_min": _ratios(fastest),
        "ratios_of_cpu_median": _ratios(cpu_median),
    }


def _rounded(ms: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 3) for k, v in ms.items()}


def _ratios(ms: dict[str, float]) -> dict[str, float]:
    """Speed-ups of ours over each reference (reference time / our time)."""
    ms = {k: max(v, 1e-9) for k, v in ms.items()}
    ratios = {
        "pono_official_over_ours": ms["pono_official"] / ms["pono_ours"],
        "pono_var_mean_over_ours": ms["pono_var_mean"] / ms["pono_ours"],
        "pono_official_over_ours_channels_last": ms["pono_official_channels_last"]
        / ms["pono_ours_channels_last"],
        "switch_official_over_ours": ms["switch_official"] / ms["switch_ours"],
        "pono_ours_over_clone": ms["pono_ours"] / ms["clone"],
    }
    return {k: round(v, 2) for k, v in ratios.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=4, default=(4, 64, 128, 128), metavar=("N", "C", "H", "W"))
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="small shape, few repeats (smoke test)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "norm.json")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    shape, repeats = (tuple(args.shape), args.repeats)
    if args.quick:
        shape, repeats = (2, 16, 32, 32), 5
    if repeats < 1 or min(shape) < 1:
        parser.error("--repeats and every --shape entry must be positive")
    result = run_bench(shape, repeats)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    width = max(map(len, result["median_ms"]))
    for name, ms in result["median_ms"].items():
        print(f"{name:<{width}}  {ms:9.2f} ms")
    for name, ratio in result["ratios"].items():
        print(
            f"{name:<{width}}  {ratio:9.2f}x  (of min times: {result['ratios_of_min'][name]:.2f}x, "
            f"of CPU times: {result['ratios_of_cpu_median'][name]:.2f}x)"
        )
    print(f"load average before/after: {result['load_average_1min']}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
