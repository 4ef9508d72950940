"""Seconds per training step of every preset, at 64 and 256 px, fp32 and bf16 (on this machine's device).

Builds each preset's trainer exactly as ``train()`` does (same Accelerator, prepare, step) and feeds it
random batches of the preset's batch size, so the number is the pure optimizer-step cost without data
loading. Writes ``bench/results/presets.json`` and prints a markdown table.

    python bench/bench_presets.py                       # all presets, 64/256 px, no/bf16
    python bench/bench_presets.py --presets pix2pix_pono_ms_glyphs --sizes 64 --steps 5
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from ponogan.families.base import create_trainer
from ponogan.training.config import apply_overrides, load_config
from ponogan.training.loop import build_accelerator

ROOT = Path(__file__).resolve().parents[1]


def time_preset(path: Path, size: int, precision: str, steps: int, warmup: int) -> tuple[float, float]:
    """``(wall seconds, CPU seconds of this process)`` per step; on a shared machine the CPU time is the
    better estimate of the unloaded cost (wall ~ CPU / threads when the cores are free)."""
    cfg = load_config(path, {"train.mixed_precision": precision, "output_dir": "/tmp/ponogan-bench"})
    cfg = apply_overrides(
        cfg, {"data.options.image_size": size, "data.options.crop_size": size, "data.options.load_size": size}
    )
    accelerator = build_accelerator(cfg)
    torch.manual_seed(0)
    trainer = create_trainer(cfg, accelerator)
    trainer.prepare()
    n, opts = cfg.data.batch_size, cfg.data.options
    batch = {
        "A": torch.rand(n, opts.input_nc, size, size) * 2 - 1,
        "B": torch.rand(n, opts.output_nc, size, size) * 2 - 1,
    }
    batch = {k: v.to(accelerator.device) for k, v in batch.items()}
    for i in range(warmup + steps):
        if i == warmup:
            start, cpu_start = time.perf_counter(), time.process_time()
        with accelerator.accumulate(*trainer.nets.values()):
            trainer.step(batch)
    return (time.perf_counter() - start) / steps, (time.process_time() - cpu_start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--presets", nargs="*", default=None, help="preset names (default: every configs/*.yaml)"
    )
    parser.add_argument("--sizes", nargs="*", type=int, default=[64, 256])
    parser.add_argument("--precisions", nargs="*", default=["no", "bf16"])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--configs", default=str(ROOT / "configs"), help="folder of the presets")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "presets.json"))
    args = parser.parse_args()
    configs = Path(args.configs)
    names = args.presets or sorted(p.stem for p in configs.glob("*.yaml"))
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.is_file() else {}
    results.setdefault("threads", torch.get_num_threads())
    rows = results.setdefault("s_per_step", {})
    cpu_rows = results.setdefault("cpu_s_per_step", {})
    for name in names:
        for size in args.sizes:
            for precision in args.precisions:
                seconds, cpu = time_preset(configs / f"{name}.yaml", size, precision, args.steps, args.warmup)
                rows.setdefault(name, {})[f"{size}px_{precision}"] = round(seconds, 4)
                cpu_rows.setdefault(name, {})[f"{size}px_{precision}"] = round(cpu, 4)
                print(
                    f"{name:28s} {size:4d}px {precision:4s} {seconds:8.3f} s/step wall {cpu:8.3f} s/step CPU",
                    flush=True,
                )
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(json.dumps(results, indent=2) + "\n")
    cols = [f"{s}px_{p}" for s in args.sizes for p in args.precisions]
    print("\n| preset | " + " | ".join(c.replace("_no", " fp32").replace("_", " ") for c in cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for name in names:
        print(f"| {name} | " + " | ".join(f"{rows[name].get(c, float('nan')):.3f}" for c in cols) + " |")


if __name__ == "__main__":
    main()
