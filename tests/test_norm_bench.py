"""The norm benchmark: its reference implementations compute the same function as ours, its timer
calls every case the stated number of times, and the JSON holds every case and the ratios of its
own timings. No timing thresholds: the machines are noisy."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from ponogan.norm import SwitchNorm2d, pono

BENCH = Path(__file__).resolve().parents[1] / "bench" / "bench_norm.py"
CASES = [
    "clone",
    "pono_official",
    "pono_var_mean",
    "pono_ours_formula",
    "pono_ours",
    "pono_official_channels_last",
    "pono_ours_channels_last",
    "switch_official",
    "switch_ours",
]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_norm", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_references_compute_our_functions(bench):
    x = torch.randn(2, 6, 4, 5, dtype=torch.float64)
    ours = pono(x, unbiased=True)
    for ref in (bench.pono_official(x), bench.pono_var_mean(x), pono(x, unbiased=True, fast=False)):
        for a, b in zip(ref, ours, strict=True):
            torch.testing.assert_close(a, b)
    sn = SwitchNorm2d(6).double()
    with torch.no_grad():
        sn.mean_weight.normal_()
        sn.var_weight.normal_()
    torch.testing.assert_close(bench.switch_official(x, sn), sn(x))


def test_timer_runs_warmup_then_one_call_per_case_per_round(bench):
    calls = []
    cases = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    wall, cpu = bench._time(cases, repeats=3, warmup=1)
    assert calls == ["a", "b"] + ["a", "b"] * 3  # warm-up, then interleaved rounds
    for times in (wall, cpu):
        assert set(times) == {"a", "b"} and all(len(v) == 3 and min(v) >= 0 for v in times.values())


def test_json_holds_every_case_and_the_ratios_of_its_timings(bench, tmp_path, monkeypatch):
    base = {name: float(i + 1) for i, name in enumerate(CASES)}  # ms of each case, all distinct

    def fake_time(cases, repeats):
        assert list(cases) == CASES and repeats == 2
        wall = {k: [3 * base[k], base[k], 2 * base[k]] for k in cases}  # median 2 b, min b
        cpu = {k: [5 * base[k]] for k in cases}
        return wall, cpu

    monkeypatch.setattr(bench, "_time", fake_time)
    out = tmp_path / "norm.json"
    assert bench.main(["--shape", "2", "4", "3", "3", "--repeats", "2", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["shape"] == [2, 4, 3, 3] and result["repeats"] == 2
    assert result["median_ms"] == {k: 2 * v for k, v in base.items()}
    assert result["min_ms"] == base
    assert result["cpu_median_ms"] == {k: 5 * v for k, v in base.items()}
    b = base
    expected = {
        "pono_official_over_ours": b["pono_official"] / b["pono_ours"],
        "pono_var_mean_over_ours": b["pono_var_mean"] / b["pono_ours"],
        "pono_official_over_ours_channels_last": b["pono_official_channels_last"]
        / b["pono_ours_channels_last"],
        "switch_official_over_ours": b["switch_official"] / b["switch_ours"],
        "pono_ours_over_clone": b["pono_ours"] / b["clone"],
    }
    for key in ("ratios", "ratios_of_min", "ratios_of_cpu_median"):  # ratios do not depend on scale
        assert result[key] == {k: round(v, 2) for k, v in expected.items()}


def test_tiny_real_run_times_every_case(bench, tmp_path):
    out = tmp_path / "norm.json"
    assert bench.main(["--shape", "2", "4", "3", "3", "--repeats", "1", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    for key in ("median_ms", "min_ms", "cpu_median_ms"):
        assert list(result[key]) == CASES
    assert set(result["ratios"]) == set(result["ratios_of_min"]) == set(result["ratios_of_cpu_median"])
