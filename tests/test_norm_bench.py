"""The norm benchmark: its reference implementations compute the same function as ours, and a
tiny run writes the JSON with every timing and ratio."""

import importlib.util
import json
from pathlib import Path

import torch

from ponogan.norm import SwitchNorm2d, pono

BENCH = Path(__file__).resolve().parents[1] / "bench" / "bench_norm.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_norm", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_references_compute_our_functions():
    bench = load_bench()
    x = torch.randn(2, 6, 4, 5, dtype=torch.float64)
    for ref in (bench.pono_official(x), bench.pono_var_mean(x)):
        for a, b in zip(ref, pono(x, unbiased=True), strict=True):
            torch.testing.assert_close(a, b)
    sn = SwitchNorm2d(6).double()
    with torch.no_grad():
        sn.mean_weight.normal_()
        sn.var_weight.normal_()
    torch.testing.assert_close(bench.switch_official(x, sn), sn(x))


def test_bench_tiny_run_writes_json(tmp_path):
    out = tmp_path / "norm.json"
    assert load_bench().main(["--shape", "2", "4", "3", "3", "--repeats", "2", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["shape"] == [2, 4, 3, 3] and result["repeats"] == 2
    for key in ("clone", "pono_official", "pono_ours", "switch_official", "switch_ours"):
        assert result["median_ms"][key] > 0
    assert result["ratios"]["pono_official_over_ours"] > 0
    assert set(result["ratios"]) == set(result["ratios_of_min"]) == set(result["ratios_of_cpu_median"])
