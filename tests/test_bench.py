"""Smoke runs of the benchmark scripts (tiny settings) and checks of their non-timing logic."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import bench_infer  # noqa: E402
import bench_quality  # noqa: E402
import bench_train  # noqa: E402
from common import busy_note, summarize, time_interleaved  # noqa: E402

from ponogan.models import create_generator  # noqa: E402
from ponogan.norm import PONO, MomentShortcut  # noqa: E402


def test_time_interleaved_calls_each_case_in_turn():
    calls = []
    times = time_interleaved(
        {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=3, warmup=1
    )
    assert calls == ["a", "b"] + ["a", "b"] * 3
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3}
    s = summarize([3.0, 1.0, 2.0])
    assert (s["median_s"], s["min_s"], s["max_s"]) == (2.0, 1.0, 3.0)


def test_busy_note_flags_a_loaded_machine():
    cores = __import__("os").cpu_count() or 1
    assert busy_note([0.0, 0, 0], [0.1, 0, 0])["shared_cpu"] is False
    assert busy_note([5.0 * cores, 0, 0], [0.1, 0, 0])["shared_cpu"] is True


@pytest.mark.parametrize("shortcut", ["ms", "dms"])
def test_official_swap_computes_the_same_function(shortcut):
    torch.manual_seed(0)
    ours = create_generator("resnet_9blocks", ngf=4, n_blocks=1, shortcut=shortcut).double()
    official = copy.deepcopy(ours)
    swapped = bench_train.to_official(official)
    assert swapped == (4 if shortcut == "ms" else 2)  # 2 PONO (+ 2 MS; DMS keeps its conv net)
    assert not any(isinstance(m, PONO | MomentShortcut) for m in official.modules())
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)  # float64: compares the math, not rounding
    y_ours, y_off = ours(x), official(x)
    torch.testing.assert_close(y_off, y_ours)
    y_ours.square().sum().backward()
    y_off.square().sum().backward()
    for (name, p), q in zip(ours.named_parameters(), official.parameters(), strict=True):
        torch.testing.assert_close(q.grad, p.grad, msg=name)


def test_bench_train_quick_writes_timings_and_ratios(tmp_path):
    out = tmp_path / "train.json"
    bench_train.main(
        [
            "--quick",
            "--families",
            "cyclegan",
            "--shortcuts",
            "ms",
            "--ngf",
            "4",
            "--n-blocks",
            "1",
            "--ndf",
            "4",
            "--repeats",
            "1",
            "--warmup",
            "0",
            "--device",
            "cpu",
            "--variants",
            "ours_bf16",
            "official_fp32",
            "--threads",
            "1",
            "--out",
            str(out),
        ]
    )
    data = json.loads(out.read_text())["cpu"]
    (config,) = data["configs"]
    assert "error" not in config, config.get("error")
    assert set(config["timing"]) == {"ours_bf16", "official_fp32"}
    assert all(t["median_s"] > 0 for t in config["timing"].values())
    assert config["losses_finite"] is True
    assert set(config["ratios"]) == {"official_fp32/ours_bf16"}
    (session,) = data["sessions"]
    assert session["machine"]["torch"] == torch.__version__ and session["load"]["load_before"]


def test_bench_train_skips_official_variants_without_pono():
    assert bench_train.variants_for("none", list(bench_train.VARIANTS)) == ["ours_fp32", "ours_bf16"]
    assert bench_train.ratios({"ours_fp32": {"median_s": 2.0}, "ours_bf16": {"median_s": 1.0}}) == {
        "official_fp32/ours_fp32": 1.0,
        "official_fp32/ours_bf16": 2.0,
    }


def test_bench_infer_quick(tmp_path):
    out = tmp_path / "infer.json"
    bench_infer.main(
        [
            "--quick",
            "--ngf",
            "4",
            "--n-blocks",
            "1",
            "--size",
            "32",
            "--images",
            "3",
            "--settings",
            "b1_fp32",
            "b8_bf16",
            "default",
            "--device",
            "cpu",
            "--out",
            str(out),
        ]
    )
    data = json.loads(out.read_text())["cpu"]
    runs = {k: v for k, v in data["translate"].items() if k != "default_vs_best"}
    assert set(runs) == {"b1_fp32", "b8_bf16", "default"}
    assert all(r["images"] == 3 and r["images_per_s"] > 0 for r in runs.values())
    # the default setting is what `ponogan translate` picks here, compared with the best other setting
    assert (runs["default"]["batch"], runs["default"]["dtype"]) == tuple(data["defaults"].values())
    best = max(("b1_fp32", "b8_bf16"), key=lambda k: runs[k]["images_per_s"])
    ratio = data["translate"]["default_vs_best"]
    assert ratio["best"] == best
    assert ratio["ratio"] == round(runs["default"]["images_per_s"] / runs[best]["images_per_s"], 3)
    diff = data["bf16_vs_fp32_output"]
    assert diff["images"] == 3 and 0 <= diff["mean_abs_255"] <= diff["max_abs_255"] <= 255
    assert data["app_request"]["first_request_s"] > 0 and data["app_request"]["image_size"] == [32, 32]


def test_quality_plan_counts_each_run_once():
    specs = bench_quality.plan(["plain", "hard"], ["pix2pix", "cyclegan"], ["shortcut", "norm"], (0, 1, 2))
    names = [s.name for s in specs]
    assert len(names) == len(set(names)) == 2 * 3 * (3 + 3 + 4)
    assert not any(s.arm == "norm_batch" for s in specs)  # the pix2pix baseline is the batch-norm run


def _record(arm, seed, l1, iou):
    return {
        "variant": "hard",
        "family": "cyclegan",
        "group": "shortcut",
        "arm": arm,
        "seed": seed,
        "train_s": 1.0,
        "metrics": {"l1": l1, "psnr": 10.0, "ssim": 0.5, "mask_iou": iou, "centroid_err": 1.0},
    }


def test_quality_aggregate_and_comparison():
    records = [_record("baseline", s, 0.30 + 0.01 * s, 0.5) for s in range(3)]
    records += [_record("pono_ms", s, 0.20 + 0.01 * s, 0.4) for s in range(3)]
    rows = bench_quality.aggregate(records)
    base = next(r for r in rows if r["arm"] == "baseline")
    assert base["l1"]["mean"] == pytest.approx(0.31) and base["l1"]["std"] == pytest.approx(0.01)
    (cmp,) = bench_quality.compare_to_baseline(rows)
    assert cmp["vs_baseline"]["l1"]["better"] and cmp["vs_baseline"]["l1"]["beyond_spread"]
    assert not cmp["vs_baseline"]["mask_iou"]["better"]
    assert "pono_ms" in bench_quality.markdown_table(rows)


def test_bench_quality_tiny_run_is_resumable(tmp_path):
    args = [
        "--quick",
        "--steps",
        "1",
        "--seeds",
        "2",
        "--variants",
        "hard",
        "--families",
        "pix2pix",
        "--groups",
        "shortcut",
        "--image-size",
        "16",
        "--runs-dir",
        str(tmp_path / "runs"),
        "--out",
        str(tmp_path / "q.json"),
    ]
    result = bench_quality.main(args)
    assert result["n_runs"] == 6
    arms = {r["arm"]: r for r in result["summary"]}
    assert set(arms) == {"baseline", "pono_ms", "pono_dms"}
    assert all(r["seeds"] == [0, 1] for r in arms.values())
    assert 0.0 <= arms["pono_ms"]["mask_iou"]["mean"] <= 1.0
    assert (tmp_path / "q.md").read_text().count("| hard | pix2pix |") == 3
    marker = tmp_path / "runs" / "hard" / "pix2pix-pono_ms-s1" / "study.json"
    stamp = marker.stat().st_mtime_ns
    again = bench_quality.main(args)
    assert marker.stat().st_mtime_ns == stamp  # finished runs are skipped, not retrained
    assert again["runs"] == result["runs"]


def test_quality_multimodal_arms_use_their_presets_and_sides():
    budget = bench_quality.BUDGETS["quick"]
    assert bench_quality.family_side("munit", budget) == budget.image_size == 32
    assert bench_quality.family_side("drit", budget) == 128  # the smallest power of two >= min_side
    specs = bench_quality.plan(["hard"], ["munit", "drit"], ["shortcut"], (0, 1, 2))
    assert sorted({s.arm for s in specs}) == ["baseline", "pono_ms"] and len(specs) == 12
    spec = bench_quality.RunSpec("shortcut", "drit", "hard", 1, "ms", "")
    cfg = bench_quality.train_config(spec, budget, Path("unused"), resume=False)
    assert (cfg.family, cfg.model.shortcut, cfg.data.options.image_size) == ("drit", "ms", 128)
    assert (cfg.seed, cfg.data.options.variant, cfg.train.max_steps) == (1, "hard", budget.steps["drit"])
    args = bench_quality.parse_args(["--quick", "--steps", "5", "--family-steps", "munit=7", "drit=9"])
    assert bench_quality.make_budget(args)[1].steps == {
        **dict.fromkeys(budget.steps, 5),
        "munit": 7,
        "drit": 9,
    }
    with pytest.raises(SystemExit) as usage:
        bench_quality.parse_args(["--family-steps", "munit=0"])
    assert usage.value.code == 2


def test_bench_quality_munit_scores_with_the_loops_fixed_styles(tmp_path):
    budget = bench_quality.replace(bench_quality.BUDGETS["quick"], image_size=16, steps={"munit": 1})
    spec = bench_quality.RunSpec("shortcut", "munit", "hard", 0, "ms", "")
    split = bench_quality.test_split("hard", 16)
    record = bench_quality.run_one(spec, budget, tmp_path, {("hard", 16): split})
    assert record["arm"] == "pono_ms" and record["params_G"] > 0
    assert 0.0 <= record["metrics"]["mask_iou"] <= 1.0
    # the loop's own end-of-run evaluation: the first 16 test items, codes from train.style_seed
    loop_eval = json.loads((tmp_path / spec.name / "metrics.json").read_text())
    fake, _ = bench_quality.translate_run(spec, budget, tmp_path / spec.name, split["A"][:16])
    assert bench_quality.paired_metrics(fake, split["B"][:16])["l1"] == pytest.approx(loop_eval["l1"])
