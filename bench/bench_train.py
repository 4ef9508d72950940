"""Seconds per training step and peak memory: our implementation against the original's way of writing PONO.

For each family x shortcut x image size, one worker process builds the family's real trainer
(``ponogan.training.create_trainer``: the same ``step`` the training loop runs, G and D forward,
backward and Adam updates) in up to four variants and times them **interleaved** (one step of each per
round, median over rounds after a warm-up):

* ``ours_fp32`` / ``ours_bf16``: the library as shipped, fp32 or bf16 autocast (accelerate's
  ``mixed_precision``);
* ``official_fp32`` / ``official_bf16``: the same networks with every PONO and Moment Shortcut swapped
  for the official code's plain ops (``x.mean`` / ``x.var`` PONO, ``x * std + mean``), so the ratio
  shows what our implementation buys. Without a shortcut there is no PONO: official = ours.

Peak memory comes from a separate process per variant (``ru_maxrss`` after two steps minus before
the first), since CPU allocations are invisible to ``tracemalloc``; on CUDA from
``torch.cuda.max_memory_allocated``. Networks are full size (CycleGAN: 2 ResNet-9 ngf 64 + 2 PatchGAN;
pix2pix: U-Net with ``log2(size)`` levels + PatchGAN; MUNIT: the paper's) at batch 1.

    python bench/bench_train.py --quick                         # 64 px, CycleGAN + pix2pix, 2 rounds
    python bench/bench_train.py --sizes 64 128 --families cyclegan pix2pix
    python bench/bench_train.py --sizes 256 --repeats 2 --shortcuts ms

Writes ``bench/results/train.json`` under the device key (``cpu`` or ``cuda``); a later invocation adds
its configs (replacing re-measured ones), so sizes can be measured in separate sessions.

CUT (``--families cut``) is the anti-aliased ResNet-9 + PatchGAN with its PatchNCE step. ``--nce`` times
only the PatchNCE loss, forward + backward through F's MLPs at CUT's five taps of a ``--sizes`` px
image: ours (``PatchSampleF`` + ``multilayer_nce_loss``) against a stand-in written from the official
formula (``PatchSampleF.forward`` + ``PatchNCELoss`` of the CUT code, per tap), with the same MLP
weights, features and patch positions, interleaved; writes ``bench/results/nce.json``.

    python bench/bench_train.py --families cut --sizes 64 --shortcuts none ms --variants ours_fp32
    python bench/bench_train.py --nce --sizes 64 128 --repeats 5
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import math
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from common import (
    RESULTS_DIR,
    busy_note,
    load_average,
    machine_info,
    max_rss_mb,
    read_json,
    set_threads,
    summarize,
    sync,
    time_interleaved,
    write_json,
)
from torch import nn
from torch.nn import functional as F

from ponogan.families.base import FamilyTrainer
from ponogan.models.patch_sample import PatchSampleF
from ponogan.norm import PONO, MomentShortcut
from ponogan.training import create_trainer, from_dict
from ponogan.training.loop import build_accelerator
from ponogan.training.losses_nce import NCE_TEMPERATURE, multilayer_nce_loss

SHORTCUTS = {"none": None, "ms": "ms", "dms": "dms"}
PRECISIONS = {"fp32": "no", "bf16": "bf16"}
VARIANTS = ("ours_fp32", "ours_bf16", "official_fp32", "official_bf16")
# opt-in (bench/gpu_check.sh): ours in channels-last memory, and under torch.compile
EXTRA_VARIANTS = ("cl_fp32", "cl_bf16", "compile_fp32", "compile_bf16")
DEFAULT_REPEATS = {64: 5, 128: 3, 256: 2}


# ---------------------------------------------------------------- the official code's way
class OfficialPONO(nn.Module):
    """PONO as the official code writes it: plain ``x.mean`` / ``x.var`` over channels, autograd backward.
    ``(N, C, H, W) -> (y, mean, std)`` like ``PONO`` (same eps and variance divisor, so same numbers)."""

    def __init__(self, eps: float = 1e-5, unbiased: bool = False, return_moments: bool = True):
        super().__init__()
        self.eps, self.unbiased, self.return_moments = eps, unbiased, return_moments

    def forward(self, x: torch.Tensor):
        mean = x.mean(dim=1, keepdim=True)
        std = (x.var(dim=1, keepdim=True, unbiased=self.unbiased) + self.eps).sqrt()
        y = (x - mean) / std
        return (y, mean, std) if self.return_moments else y


class OfficialMS(nn.Module):
    """MS as the official code writes it: ``x * gamma + beta`` with ``beta = mean``, ``gamma = std``."""

    def forward(self, x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        return x * std + mean


def to_official(net: nn.Module) -> int:
    """Swap every ``PONO`` (without affine) and ``MomentShortcut`` inside ``net`` for the official
    versions, in place; returns how many modules were swapped. DMS keeps its conv net (the official
    DMS is a different architecture) but gets the official PONO moments like everything else."""
    swapped = 0
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, PONO) and child.weight is None:
                setattr(parent, name, OfficialPONO(child.eps, child.unbiased, child.return_moments))
                swapped += 1
            elif isinstance(child, MomentShortcut):
                setattr(parent, name, OfficialMS())
                swapped += 1
    return swapped


# ---------------------------------------------------------------- building one trainer
@dataclass(frozen=True)
class FamilyNets:
    """A family's full-size networks: presets, options, and the option names of width and depth."""

    generator: str
    discriminator: str
    generator_kwargs: dict = field(default_factory=dict)
    discriminator_kwargs: dict = field(default_factory=dict)
    width_key: str = "ngf"
    blocks_key: str | None = "n_blocks"


FAMILY_NETS = {
    "pix2pix": FamilyNets("unet_256", "patchgan", blocks_key=None),  # U-Net depth follows the size
    "cyclegan": FamilyNets("resnet_9blocks", "patchgan", {"norm": "instance"}, {"norm": "instance"}),
    "munit": FamilyNets("munit", "multiscale", width_key="dim", blocks_key="n_res"),
    "cut": FamilyNets(
        "resnet_9blocks",
        "patchgan",
        {"norm": "instance", "antialias": True, "antialias_up": True},
        {"norm": "instance", "antialias": True},
    ),
}


def family_model(family: str, size: int, *, ngf: int | None, n_blocks: int | None, ndf: int | None) -> dict:
    """The ``model`` config section of ``family``'s networks for ``size`` px images (full size unless
    ``ngf`` / ``n_blocks`` / ``ndf`` shrink them, for tests)."""
    nets = FAMILY_NETS[family]
    gkw, dkw = dict(nets.generator_kwargs), dict(nets.discriminator_kwargs)
    if family == "pix2pix":
        gkw["num_downs"] = max(2, int(math.log2(size)))
    if ngf is not None:
        gkw[nets.width_key] = ngf
    if n_blocks is not None and nets.blocks_key:
        gkw[nets.blocks_key] = n_blocks
    if ndf is not None:
        dkw["ndf"] = ndf
    return {
        "generator": nets.generator,
        "generator_kwargs": gkw,
        "discriminator": nets.discriminator,
        "discriminator_kwargs": dkw,
    }


def build_trainer(job: dict, variant: str) -> FamilyTrainer:
    """The family's trainer for ``variant`` (``<impl>_<precision>``), prepared by its own Accelerator."""
    impl, precision = variant.split("_")
    model = family_model(
        job["family"], job["size"], ngf=job.get("ngf"), n_blocks=job.get("n_blocks"), ndf=job.get("ndf")
    )
    model["shortcut"] = SHORTCUTS[job["shortcut"]]
    cfg = from_dict(
        {
            "family": job["family"],
            "seed": 0,
            "model": model,
            "data": {
                "batch_size": job["batch"],
                "options": {"image_size": job["size"], "paired": job["family"] == "pix2pix"},
            },
            "train": {"device": job["device"], "mixed_precision": PRECISIONS[precision], "max_steps": 1000},
        }
    )
    accelerator = build_accelerator(cfg)  # as training builds it: a fresh accelerate state per trainer
    torch.manual_seed(0)
    trainer = create_trainer(cfg, accelerator)
    if impl == "official":
        for net in trainer.nets.values():
            to_official(net)
    trainer.prepare()
    for name, net in trainer.nets.items():
        wrapped = hasattr(net, "_original_forward")
        if wrapped != (precision == "bf16"):
            raise RuntimeError(f"{variant}: net {name} autocast={wrapped}: accelerate state leaked")
    if impl == "cl":
        for net in trainer.nets.values():
            net.to(memory_format=torch.channels_last)
    if impl == "compile":
        trainer.nets = {name: torch.compile(net) for name, net in trainer.nets.items()}
    return trainer


def make_batch(job: dict, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    shape = (job["batch"], 3, job["size"], job["size"])
    return {k: (torch.rand(shape, generator=g) * 2 - 1).to(job["device"]) for k in ("A", "B")}


# ---------------------------------------------------------------- workers (one process each)
def worker_time(job: dict) -> dict:
    """Interleaved step timings of ``job["variants"]`` in this process."""
    trainers = {v: build_trainer(job, v) for v in job["variants"]}
    batch = make_batch(job)
    batch_cl = {k: v.contiguous(memory_format=torch.channels_last) for k, v in batch.items()}
    inputs = {v: batch_cl if v.startswith("cl_") else batch for v in trainers}
    cases = {v: (lambda t=t, b=inputs[v]: t.step(b)) for v, t in trainers.items()}
    times = time_interleaved(cases, job["repeats"], job["warmup"], device=job["device"])
    losses = {v: t.step(batch) for v, t in trainers.items()}
    finite = all(math.isfinite(x) for d in losses.values() for x in d.values())
    return {"timing": {v: summarize(s) for v, s in times.items()}, "losses_finite": finite}


def worker_memory(job: dict) -> dict:
    """Peak memory of ``job["steps"]`` training steps of one variant, above the memory after building."""
    variant = job["variants"][0]
    trainer = build_trainer(job, variant)
    batch = make_batch(job)
    gc.collect()
    if job["device"] == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated() / 2**20
    else:
        before = max_rss_mb()
    for _ in range(job["steps"]):
        trainer.step(batch)
    sync(job["device"])
    peak = torch.cuda.max_memory_allocated() / 2**20 if job["device"] == "cuda" else max_rss_mb()
    return {
        "variant": variant,
        "before_mb": round(before, 1),
        "peak_mb": round(peak, 1),
        "train_peak_mb": round(peak - before, 1),
        "measure": "cuda max_memory_allocated" if job["device"] == "cuda" else "ru_maxrss delta",
    }


# ---------------------------------------------------------------- PatchNCE: ours vs the official formula
def cut_tap_shapes(size: int, ngf: int = 64) -> list[tuple[int, int, int]]:
    """``(C, H, W)`` of CUT's default taps (``stem.pad, down1.conv, down2.conv, block1, block5``) of the
    anti-aliased ResNet-9 on a ``size`` px image: the padded input, the two stride-1 down convs, blocks."""
    return [(3, size + 6, size + 6), (2 * ngf, size, size), (4 * ngf, size // 2, size // 2)] + [
        (4 * ngf, size // 4, size // 4)
    ] * 2


def official_style_nce(mlps: nn.ModuleList, queries, keys, ids, temperature: float) -> torch.Tensor:
    """The official sampler and loss, per tap: channels-last flatten, the same positions for the whole
    batch, MLP, ``x / (sqrt(sum x^2) + 1e-7)``; positives by a batched ``(1 x D) @ (D x 1)``, negatives
    ``q @ k^T`` within each image with the diagonal at -10, ``/ T``, cross-entropy; mean over taps."""

    def sample(feat, mlp, tap_ids):
        flat = feat.permute(0, 2, 3, 1).flatten(1, 2)[:, tap_ids, :].flatten(0, 1)  # (N*P, C)
        x = mlp(flat)
        return x / (x.pow(2).sum(1, keepdim=True).pow(0.5) + 1e-7)

    total = 0.0
    for q_feat, k_feat, mlp, tap_ids in zip(queries, keys, mlps, ids, strict=True):
        q, k = sample(q_feat, mlp, tap_ids), sample(k_feat, mlp, tap_ids).detach()
        n_all, dim = q.shape
        positive = torch.bmm(q.view(n_all, 1, dim), k.view(n_all, dim, 1)).view(n_all, 1)
        qb, kb = q.view(q_feat.shape[0], -1, dim), k.view(q_feat.shape[0], -1, dim)
        p = qb.shape[1]
        negative = torch.bmm(qb, kb.transpose(2, 1))
        eye = torch.eye(p, dtype=torch.bool, device=q.device)[None, :, :]
        negative = negative.masked_fill(eye, -10.0).view(-1, p)
        logits = torch.cat((positive, negative), dim=1) / temperature
        target = torch.zeros(n_all, dtype=torch.long, device=q.device)
        total = total + F.cross_entropy(logits, target, reduction="none").mean()
    return total / len(queries)


def worker_nce(job: dict) -> dict:
    """Interleaved forward + backward of PatchNCE, ours vs the official-formula stand-in (same weights)."""
    device, batch, patches = job["device"], job["batch"], job["num_patches"]
    shapes = cut_tap_shapes(job["size"])
    g = torch.Generator().manual_seed(0)
    keys = [torch.randn(batch, *s, generator=g).to(device) for s in shapes]
    queries = [torch.randn(batch, *s, generator=g).to(device).requires_grad_() for s in shapes]
    torch.manual_seed(0)
    ours = PatchSampleF([s[0] for s in shapes]).to(device)
    official_mlps = copy.deepcopy(ours.mlps)
    ids = [torch.randperm(s[1] * s[2], generator=g)[:patches].to(device) for s in shapes]

    def run_ours():
        k, _ = ours(keys, patches, patch_ids=ids)
        q, _ = ours(queries, patches, patch_ids=ids)
        loss = multilayer_nce_loss(q, k, temperature=NCE_TEMPERATURE)
        loss.backward()
        return loss

    def run_official():
        loss = official_style_nce(official_mlps, queries, keys, ids, NCE_TEMPERATURE)
        loss.backward()
        return loss

    diff = abs(run_ours().item() - run_official().item())
    cases = {"ours": run_ours, "official": run_official}
    times = time_interleaved(cases, job["repeats"], job["warmup"], device=device)
    timing = {v: summarize(t) for v, t in times.items()}
    return {
        "timing": timing,
        "loss_abs_diff": diff,
        "ratio_official/ours": round(timing["official"]["median_s"] / timing["ours"]["median_s"], 3),
    }


WORKERS = {"time": worker_time, "memory": worker_memory, "nce": worker_nce}


def run_nce_benchmark(args: argparse.Namespace) -> dict:
    """``--nce``: one worker per size; the result per device, like ``train.json``."""
    configs = []
    load_before, t0 = load_average(), time.monotonic()
    for size in args.sizes:
        job = {
            "kind": "nce",
            "size": size,
            "batch": args.batch,
            "device": args.device,
            "num_patches": 256,
            "repeats": args.repeats or DEFAULT_REPEATS.get(size, 2),
            "warmup": args.warmup,
        }
        result = spawn(job, args.threads, args.timeout)
        configs.append({"size": size, "batch": args.batch, "num_patches": 256, **result})
        print(f"PatchNCE {size:4d}px  {result.get('ratio_official/ours', result.get('error'))}", flush=True)
    return {
        "command": "python bench/bench_train.py " + " ".join(args.argv),
        "threads": args.threads or torch.get_num_threads(),
        "machine": machine_info(),
        "load": busy_note(load_before, load_average()),
        "wall_s": round(time.monotonic() - t0, 1),
        "configs": configs,
    }


def spawn(job: dict, threads: int | None, timeout: float) -> dict:
    """Run one worker job in a fresh Python process; returns its JSON result (or an ``error``)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(job)]
    if threads:
        cmd += ["--threads", str(threads)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    for line in proc.stdout.splitlines()[::-1]:
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    return {"error": f"worker exited {proc.returncode}: {proc.stderr.strip()[-800:]}"}


# ---------------------------------------------------------------- the benchmark
def variants_for(shortcut: str, wanted: list[str]) -> list[str]:
    """Without a shortcut the official variants equal ours: time them once."""
    return [v for v in wanted if shortcut != "none" or not v.startswith("official")]


def ratios(timing: dict, stat: str = "median_s") -> dict:
    """Speed-ups (baseline time / candidate time) that answer the benchmark's questions, from the
    median (default) or another statistic of each variant's timings (``min_s``: the least disturbed
    step, a useful cross-check when another process's bursts make the medians bimodal)."""
    med = {v: t[stat] for v, t in timing.items()}
    out = {}
    base = med.get("official_fp32", med.get("ours_fp32"))
    if base is None:
        return out
    for v in ("ours_fp32", "ours_bf16", "official_bf16"):
        if v in med:
            out[f"official_fp32/{v}"] = round(base / med[v], 3)
    if "official_bf16" in med and "ours_bf16" in med:
        out["official_bf16/ours_bf16"] = round(med["official_bf16"] / med["ours_bf16"], 3)
    for v in EXTRA_VARIANTS:  # channels-last / compile against ours in the same precision
        ours = f"ours_{v.split('_')[1]}"
        if v in med and ours in med:
            out[f"{ours}/{v}"] = round(med[ours] / med[v], 3)
    return out


def targets(configs: list[dict]) -> dict:
    """The issue's targets at 128 px for CycleGAN PONO-MS: fp32 no slower than official fp32, bf16 >= 1.6x."""
    out = {}
    for c in configs:
        if c["family"] == "cyclegan" and c["shortcut"] == "ms" and c["size"] == 128:
            r = c.get("ratios", {})
            fp32, bf16 = r.get("official_fp32/ours_fp32"), r.get("official_fp32/ours_bf16")
            out["cyclegan_ms_128"] = {
                "fp32_speedup": fp32,
                "fp32_no_slower": None if fp32 is None else fp32 >= 1.0,
                "bf16_speedup_vs_official_fp32": bf16,
                "bf16_meets_1.6x": None if bf16 is None else bf16 >= 1.6,
            }
    return out


def run_benchmark(args: argparse.Namespace) -> dict:
    configs = []
    session = time.strftime("%Y-%m-%d %H:%M:%S")
    load_before, t0 = load_average(), time.monotonic()
    for size in args.sizes:
        repeats = args.repeats or DEFAULT_REPEATS.get(size, 2)
        for family in args.families:
            for shortcut in args.shortcuts:
                job = {
                    "family": family,
                    "shortcut": shortcut,
                    "size": size,
                    "batch": args.batch,
                    "device": args.device,
                    "ngf": args.ngf,
                    "n_blocks": args.n_blocks,
                    "ndf": args.ndf,
                    "variants": variants_for(shortcut, args.variants),
                    "repeats": repeats,
                    "warmup": args.warmup,
                    "steps": 2,
                }
                t_cfg = time.monotonic()
                entry = {k: job[k] for k in ("family", "shortcut", "size", "batch")}
                result = spawn({**job, "kind": "time"}, args.threads, args.timeout)
                entry.update(result)
                if "timing" in result:
                    entry["ratios"] = ratios(result["timing"])
                    entry["ratios_min"] = ratios(result["timing"], "min_s")
                if args.memory:
                    entry["memory"] = {
                        v: spawn({**job, "kind": "memory", "variants": [v]}, args.threads, args.timeout)
                        for v in job["variants"]
                    }
                entry["wall_s"] = round(time.monotonic() - t_cfg, 1)
                entry["session"] = session
                configs.append(entry)
                med = {v: t["median_s"] for v, t in result.get("timing", {}).items()}
                print(
                    f"{family:8s} {shortcut:4s} {size:4d}px  "
                    + "  ".join(f"{v} {s:.3f}s" for v, s in med.items())
                    + f"  {entry.get('ratios', result.get('error', ''))}",
                    flush=True,
                )
    return {
        "session": session,
        "command": "python bench/bench_train.py " + " ".join(args.argv),
        "device": args.device,
        "threads": args.threads or torch.get_num_threads(),
        "batch": args.batch,
        "machine": machine_info(),
        "load": busy_note(load_before, load_average()),
        "wall_s": round(time.monotonic() - t0, 1),
        "configs": configs,
    }


def merge(previous: dict | None, result: dict) -> dict:
    """Add one invocation's results to a device's record: configs measured again replace the old ones
    (keyed by family, shortcut, size, batch); every invocation's command and load are kept."""
    previous = previous or {"sessions": [], "configs": []}
    key = ("family", "shortcut", "size", "batch")
    fresh = {tuple(c[k] for k in key) for c in result["configs"]}
    configs = [c for c in previous["configs"] if tuple(c[k] for k in key) not in fresh] + result["configs"]
    configs.sort(key=lambda c: (c["size"], c["family"], c["shortcut"]))
    session = {k: v for k, v in result.items() if k != "configs"}
    return {"sessions": previous["sessions"] + [session], "configs": configs, "targets": targets(configs)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="64 px, CycleGAN and pix2pix, 2 rounds, no memory")
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    p.add_argument(
        "--families", nargs="+", default=["pix2pix", "cyclegan", "munit"], choices=list(FAMILY_NETS)
    )
    p.add_argument("--shortcuts", nargs="+", default=list(SHORTCUTS), choices=list(SHORTCUTS))
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS + EXTRA_VARIANTS))
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--repeats", type=int, default=None, help="timed rounds (default: 5/3/2 at 64/128/256 px)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--no-memory", dest="memory", action="store_false", help="skip the peak-memory processes")
    p.add_argument("--threads", type=int, default=None, help="torch threads of the workers")
    p.add_argument(
        "--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu"
    )
    p.add_argument("--ngf", type=int, default=None, help="override generator width (tests)")
    p.add_argument("--n-blocks", type=int, default=None, help="override residual blocks (tests)")
    p.add_argument("--ndf", type=int, default=None, help="override discriminator width (tests)")
    p.add_argument("--timeout", type=float, default=1800, help="seconds per worker process")
    p.add_argument("--out", default=str(RESULTS_DIR / "train.json"))
    p.add_argument("--nce", action="store_true", help="time PatchNCE ours vs the official formula only")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.argv = list(argv if argv is not None else sys.argv[1:])
    if args.quick:
        args.sizes = [64]
        args.families = [f for f in args.families if f != "munit"]
        args.repeats = args.repeats or 2
        args.memory = False
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    set_threads(args.threads)
    if args.worker:
        job = json.loads(args.worker)
        print("RESULT " + json.dumps(WORKERS[job["kind"]](job)), flush=True)
        return {}
    if args.nce:
        out = Path(args.out) if args.out != str(RESULTS_DIR / "train.json") else RESULTS_DIR / "nce.json"
        data = read_json(out) or {}
        data[args.device] = run_nce_benchmark(args)
        write_json(out, data)
        print(f"-> {out}")
        return data[args.device]
    result = run_benchmark(args)
    out = Path(args.out)
    data = read_json(out) or {}
    data[args.device] = merge(data.get(args.device), result)
    write_json(out, data)
    print(f"-> {out}  targets: {data[args.device]['targets']}")
    return data[args.device]


if __name__ == "__main__":
    main()
