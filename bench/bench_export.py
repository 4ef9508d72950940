"""Exported model speed: onnxruntime on the ``ponogan export`` ONNX file vs the PyTorch generator.

A CycleGAN ResNet-9 (ngf 64) with PONO-MS at random weights (speed does not depend on training) is
exported with ``ponogan.inference.export.export`` and timed, interleaved, on one 256 px image:
PyTorch eager fp32
(the ``ponogan translate`` forward) and onnxruntime's CPU provider, plus the max |difference|.

    python bench/bench_export.py            # 5 rounds
    python bench/bench_export.py --quick    # 64 px, ngf 16, 2 rounds (smoke test)

Writes ``bench/results/export.json``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import (
    RESULTS_DIR,
    busy_note,
    load_average,
    machine_info,
    set_threads,
    summarize,
    time_interleaved,
    write_json,
)

from ponogan.inference.export import export
from ponogan.models import create_generator, save_pretrained


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--ngf", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default=str(RESULTS_DIR / "export.json"))
    args = p.parse_args(argv)
    if args.quick:
        args.size, args.ngf, args.repeats = 64, 16, 2
    threads = set_threads(args.threads)
    import onnxruntime as ort

    load_before, t0 = load_average(), time.monotonic()
    torch.manual_seed(0)
    gen = create_generator("resnet_9blocks", ngf=args.ngf, shortcut="ms").eval()
    with tempfile.TemporaryDirectory(prefix="bench_export_") as tmp:
        run = save_pretrained(Path(tmp) / "run", {"G": gen}, {"family": "pix2pix"})
        onnx_path = export(run, Path(tmp) / "model.onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        x = torch.rand(1, 3, args.size, args.size) * 2 - 1

        def eager():
            with torch.no_grad():
                return gen(x)

        def onnxruntime():
            return session.run(None, {"x": x.numpy()})[0]

        diff = float(np.abs(onnxruntime() - eager().numpy()).max())
        times = time_interleaved({"pytorch_fp32": eager, "onnxruntime": onnxruntime}, args.repeats, warmup=1)
    timing = {k: summarize(v) for k, v in times.items()}
    result = {
        "command": "python bench/bench_export.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "model": f"resnet_9blocks ngf {args.ngf} PONO-MS, {args.size} px, batch 1",
        "threads": threads,
        "timing": timing,
        "max_abs_diff": diff,
        "onnxruntime_speedup": round(
            timing["pytorch_fp32"]["median_s"] / timing["onnxruntime"]["median_s"], 3
        ),
        "onnxruntime": ort.__version__,
        "machine": machine_info(),
        "load": busy_note(load_before, load_average()),
        "wall_s": round(time.monotonic() - t0, 1),
    }
    write_json(Path(args.out), result)
    print(
        f"pytorch {timing['pytorch_fp32']['median_s']:.3f} s, "
        f"onnxruntime {timing['onnxruntime']['median_s']:.3f} s "
        f"({result['onnxruntime_speedup']}x), max |diff| {diff:.2e} -> {args.out}"
    )
    return result


if __name__ == "__main__":
    main()
