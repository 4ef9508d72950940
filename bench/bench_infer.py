"""Inference speed: images per second of ``ponogan translate`` and the latency of one app request.

A folder of 256 px images (held-out glyphs of the ``hard`` variant, colour on clutter) is translated by
``ponogan translate`` (its ``run``, in this process, so Python start-up is not counted; decoding,
batching, the forward passes and PNG writing are) at batch 1 and 8, fp32 and bf16 autocast. The four
settings run interleaved, one full pass each per round, median over rounds. The app request is the
call the Gradio app makes for one upload (``PipelineCache.get(run)`` then ``pipe([image])[0]``): the
first request (loads the checkpoint) and warm ones.

The model is a CycleGAN ResNet-9 (ngf 64) with PONO-MS at random weights (speed does not depend on
training), unless ``--checkpoint`` names a run folder.

    python bench/bench_infer.py                   # 16 images, 3 rounds
    python bench/bench_infer.py --quick           # 4 images, 1 round (smoke test)

Writes ``bench/results/infer.json`` (results under the device key).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
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
    read_json,
    set_threads,
    summarize,
    time_interleaved,
    write_json,
)

from ponogan.app.support import PipelineCache
from ponogan.cli import translate
from ponogan.core.runtime import default_inference_settings
from ponogan.data import DataOptions, build_dataset, tensor_to_pil
from ponogan.inference.pipeline import TranslationPipeline
from ponogan.models import create_generator, save_pretrained

SETTINGS = {
    "b1_fp32": (1, "float32"),
    "b8_fp32": (8, "float32"),  # name: (batch size, --dtype)
    "b1_bf16": (1, "bf16"),
    "b8_bf16": (8, "bf16"),
    "default": (None, None),
}  # no --batch-size / --dtype: what `ponogan translate` picks


def make_checkpoint(run_dir: Path, *, ngf: int, n_blocks: int, image_size: int) -> Path:
    """A CycleGAN PONO-MS run folder (``G_A``, ``G_B``) at random weights, readable by the pipeline."""
    torch.manual_seed(0)
    gens = {
        role: create_generator("resnet_9blocks", ngf=ngf, n_blocks=n_blocks, shortcut="ms")
        for role in ("G_A", "G_B")
    }
    config = {
        "family": "cyclegan",
        "run_name": "bench_infer",
        "step": 0,
        "data": {"mode": "glyphs", "image_size": image_size, "input_nc": 3, "output_nc": 3},
    }
    return save_pretrained(run_dir, gens, config)


def make_images(folder: Path, count: int, size: int) -> list[Path]:
    """``count`` PNGs of ``size`` px: test-split glyphs of the hard variant (target domain B)."""
    folder.mkdir(parents=True, exist_ok=True)
    ds = build_dataset("glyphs", None, "test", DataOptions(image_size=size, variant="hard"))
    paths = []
    for i in range(count):
        path = folder / f"img_{i:03d}.png"
        tensor_to_pil(ds[i % len(ds)]["B"]).save(path)
        paths.append(path)
    return paths


def translate_args(checkpoint: Path, images: Path, output: Path, batch: int, dtype: str, device: str):
    """The parsed arguments of ``ponogan translate --checkpoint ... --overwrite``."""
    parser = argparse.ArgumentParser()
    translate.add_arguments(parser)
    chosen = ([] if batch is None else ["--batch-size", str(batch)]) + (
        [] if dtype is None else ["--dtype", dtype]
    )
    return parser.parse_args(
        [
            "--checkpoint",
            str(checkpoint),
            "--input",
            str(images),
            "--output",
            str(output),
            *chosen,
            "--device",
            device,
            "--overwrite",
        ]
    )


def bench_translate(checkpoint: Path, images: Path, work: Path, count: int, args) -> dict:
    """Images per second of each setting, from interleaved full passes over the folder."""
    cases = {}
    for name in args.settings:
        batch, dtype = SETTINGS[name]
        ns = translate_args(checkpoint, images, work / name, batch, dtype, args.device)

        def run(ns=ns, name=name):
            log = io.StringIO()
            with contextlib.redirect_stderr(log):  # its progress bar and summary line
                code = translate.run(ns)
            if code != 0:
                raise RuntimeError(f"ponogan translate ({name}) exited with {code}: {log.getvalue()[-500:]}")

        cases[name] = run
    times = time_interleaved(cases, args.repeats, warmup=1, device=args.device)
    out = {}
    defaults = default_inference_settings(args.device)
    for name, seconds in times.items():
        med = statistics.median(seconds)
        batch, dtype = SETTINGS[name]
        out[name] = {
            **summarize(seconds),
            "images": count,
            "images_per_s": round(count / med, 3),
            "batch": batch or defaults["batch_size"],
            "dtype": dtype or defaults["dtype"],
        }
    if "default" in out and len(out) > 1:
        best = max((v["images_per_s"], k) for k, v in out.items() if k != "default")
        out["default_vs_best"] = {
            "best": best[1],
            "ratio": round(out["default"]["images_per_s"] / best[0], 3),
        }
    return out


def bf16_output_difference(checkpoint: Path, paths: list[Path], device: str) -> dict:
    """How much bf16 autocast changes the output images: max and mean |difference| in 0-255 levels."""
    from PIL import Image

    images = [Image.open(p).convert("RGB") for p in paths]
    outs = {
        d: TranslationPipeline.from_pretrained(checkpoint, device=device, dtype=d)(images, direction="AtoB")
        for d in ("float32", "bf16")
    }
    diffs = [
        np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)) for a, b in zip(*outs.values(), strict=True)
    ]
    return {
        "images": len(images),
        "max_abs_255": int(max(d.max() for d in diffs)),
        "mean_abs_255": round(float(np.mean([d.mean() for d in diffs])), 4),
    }


def bench_app_request(checkpoint: Path, image_path: Path, args) -> dict:
    """Latency of the app's translate call: the first request (checkpoint load + compute), then warm ones."""
    from PIL import Image

    image = Image.open(image_path).convert("RGB")
    cache = PipelineCache(device=args.device)
    t0 = time.perf_counter()
    cache.get(checkpoint)([image], direction="AtoB")[0]
    first = time.perf_counter() - t0

    def request():
        return cache.get(checkpoint)([image], direction="AtoB")[0]

    warm = time_interleaved({"request": request}, max(args.repeats * 2, 1), warmup=1, device=args.device)
    return {
        "first_request_s": round(first, 4),
        "warm": summarize(warm["request"]),
        "image_size": list(image.size),
        "path": "PipelineCache.get(run) -> pipe([image])[0] (app.py)",
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="4 images, 1 round")
    p.add_argument("--images", type=int, default=16, help="images in the folder")
    p.add_argument("--size", type=int, default=256, help="image side in pixels")
    p.add_argument("--repeats", type=int, default=3, help="timed rounds")
    p.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    p.add_argument("--checkpoint", default=None, help="run folder to use (default: a random-weight model)")
    p.add_argument("--ngf", type=int, default=64)
    p.add_argument("--n-blocks", type=int, default=9)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument(
        "--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu"
    )
    p.add_argument("--bf16-images", type=int, default=4, help="images for the bf16-vs-fp32 output difference")
    p.add_argument("--out", default=str(RESULTS_DIR / "infer.json"))
    args = p.parse_args(argv)
    args.argv = list(argv if argv is not None else sys.argv[1:])
    if args.quick:
        args.images, args.repeats = min(args.images, 4), 1
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    threads = set_threads(args.threads)
    load_before, t0 = load_average(), time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench_infer_") as tmp:
        work = Path(tmp)
        checkpoint = (
            Path(args.checkpoint)
            if args.checkpoint
            else make_checkpoint(work / "run", ngf=args.ngf, n_blocks=args.n_blocks, image_size=args.size)
        )
        paths = make_images(work / "images", args.images, args.size)
        translate_result = bench_translate(checkpoint, work / "images", work / "out", len(paths), args)
        bf16 = (
            bf16_output_difference(checkpoint, paths[: args.bf16_images], args.device)
            if args.bf16_images
            else None
        )
        app_result = bench_app_request(checkpoint, paths[0], args)
    result = {
        "command": "python bench/bench_infer.py " + " ".join(args.argv),
        "device": args.device,
        "threads": threads,
        "model": args.checkpoint
        or f"cyclegan resnet_9blocks ngf {args.ngf} n_blocks {args.n_blocks} PONO-MS (random weights)",
        "image_size": args.size,
        "translate": translate_result,
        "app_request": app_result,
        "bf16_vs_fp32_output": bf16,
        "defaults": default_inference_settings(args.device),
        "machine": machine_info(),
        "load": busy_note(load_before, load_average()),
        "wall_s": round(time.monotonic() - t0, 1),
    }
    out = Path(args.out)
    data = read_json(out) or {}
    data[args.device] = result
    write_json(out, data)
    for name, r in translate_result.items():
        if "images_per_s" in r:
            print(f"translate {name}: {r['images_per_s']:.2f} images/s")
    if "default_vs_best" in translate_result:
        print(
            f"default / best ({translate_result['default_vs_best']['best']}): "
            f"{translate_result['default_vs_best']['ratio']:.2f}"
        )
    warm = app_result["warm"]["median_s"]
    print(f"app request: first {app_result['first_request_s']:.2f} s, warm {warm:.3f} s -> {out}")
    return result


if __name__ == "__main__":
    main()
