"""The PONO-MS quality study: does the Moment Shortcut help on the built-in glyph task?

On both glyph variants (``plain``: black on white; ``hard``: B in textured colour on clutter, larger
jitter with rotation) it trains, with identical budgets (steps, sizes, seeds):

* group ``shortcut``: pix2pix (U-Net) and CycleGAN (ResNet) each as baseline / +PONO-MS / +PONO-DMS;
  opt-in (``--families cut fastcut``): CUT and FastCUT (anti-aliased ResNet, ``layout: ponogan``) as
  baseline / +PONO-MS, on the CycleGAN arms' budget;
* multimodal (opt-in, ``--families munit drit``): MUNIT and DRIT as baseline / +PONO-MS, each from
  its glyph presets (``configs/<family>[_pono_ms]_glyphs.yaml``: the preset's nets, batch and losses;
  the budget sets steps, seeds, variant and data). Each family trains at its own side: the budget's
  image size, or the smallest power of two its spec's ``min_side`` allows (DRIT: 128 px). Their
  translation is scored with the run's fixed style / attribute codes (``train.style_seed``, one code
  per test item), exactly as the training loop's evaluation draws them (the trainer's ``translate``);
* group ``norm``: the pix2pix baseline generator with each normalizer (batch is pix2pix's own, so the
  baseline run of the ``shortcut`` group stands for it; instance, group, switch and layer are extra);
* group ``precision`` (opt-in): the PONO-MS models again under bf16 autocast, to check training
  stays stable at the fast setting.

Faithful defaults: the nets start from the originals' initialisation (``init_weights``, per family),
the CycleGAN PONO arms use the official PONO layout (BatchNorm in the PONO stages, PONO over C - 1,
the official DMS). Results of the study before these defaults are kept in ``quality_v0.json``.

Every run goes through the real training loop (``ponogan.training.train``) and is then scored on the
held-out characters of the test split: L1 / PSNR / SSIM against the ground truth, plus glyph-mask IoU
and centroid error (structure measures that need no network weights). Runs are sequential in one
process and resumable: a run whose ``study.json`` exists is skipped, a finished but unscored run is
only scored, a half-trained one resumes from its last checkpoint.

    python bench/bench_quality.py --quick                 # 32 px, small nets: < 15 min on 2 cores
    python bench/bench_quality.py --mode medium --figures # 32 px, ~10x the steps: about an hour
    python bench/bench_quality.py                         # full: 64 px, ngf 32 (hours on 2 cores)
    # MUNIT and DRIT (baseline / PONO-MS; with --variants hard: ~45 min on one core)
    python bench/bench_quality.py --mode medium --families munit drit --family-steps munit=400 drit=900

Writes ``bench/results/quality.json`` and ``quality.md`` (``--out`` to change), runs under
``checkpoints/study/<mode>/``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import math
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from accelerate import Accelerator
from common import RESULTS_DIR, busy_note, load_average, machine_info, read_json, set_threads, write_json
from PIL import Image
from torchvision.utils import make_grid

from ponogan.data import DataOptions, build_dataset
from ponogan.families import get_family
from ponogan.families.base import create_trainer
from ponogan.metrics import centroid_error, mask_iou, paired_metrics
from ponogan.models import load_pretrained
from ponogan.training import from_dict, latest_state, load_config, train
from ponogan.training.presets import find_preset

REPO = Path(__file__).resolve().parents[1]
METRICS = ("l1", "psnr", "ssim", "mask_iou", "centroid_err")
HIGHER_IS_BETTER = {"l1": False, "psnr": True, "ssim": True, "mask_iou": True, "centroid_err": False}
SHORTCUT_LABELS = {None: "baseline", "ms": "pono_ms", "dms": "pono_dms"}
# each family's own generator (resnet_aa: CUT's anti-aliased ResNet)
FAMILY_GENERATORS = {"pix2pix": "unet", "cyclegan": "resnet", "cut": "resnet_aa", "fastcut": "resnet_aa"}
# study families trained from their glyph presets: {family: {shortcut: preset}} (nets, batch, losses)
FAMILY_PRESETS = {
    "munit": {None: "munit_glyphs", "ms": "munit_pono_ms_glyphs"},
    "drit": {None: "drit_glyphs", "ms": "drit_pono_ms_glyphs"},
}
STUDY_FAMILIES = (*FAMILY_GENERATORS, *FAMILY_PRESETS)
BASE_NORMS = {
    "pix2pix": "batch",
    "cyclegan": "instance",
    "cut": "instance",
    "fastcut": "instance",
    "munit": "",
    "drit": "",
}
STUDY_NORMS = ("batch", "instance", "group", "switch", "layer")
GENERATOR_ROLE = {"pix2pix": "G", "cyclegan": "G_A", "cut": "G", "fastcut": "G"}
# study families that are a mode of another ponogan family: {study family: (family, loss section)}
FAMILY_MODES = {"cut": ("cut", {"mode": "cut"}), "fastcut": ("cut", {"mode": "fastcut"})}
# the shortcuts a family's arms compare (all of SHORTCUT_LABELS when not listed)
FAMILY_SHORTCUTS = {"cut": (None, "ms"), "fastcut": (None, "ms"), "munit": (None, "ms"), "drit": (None, "ms")}


def ponogan_family(family: str) -> str:
    """The ponogan family a study family trains (``fastcut`` -> ``cut``)."""
    return FAMILY_MODES.get(family, (family,))[0]


def family_side(family: str, budget: Budget) -> int:
    """The square side a study family trains and is scored at: the budget's image size when the
    family's spec takes it, else the smallest power of two >= the spec's ``min_side`` (DRIT: 128)."""
    min_side = get_family(ponogan_family(family)).min_side
    if budget.image_size >= min_side:
        return budget.image_size
    return 1 << (min_side - 1).bit_length()


def family_shortcuts(family: str) -> tuple:
    return FAMILY_SHORTCUTS.get(family, tuple(SHORTCUT_LABELS))


@dataclass(frozen=True)
class Budget:
    """Sizes and lengths shared by every run of one study mode (identical across the compared arms)."""

    image_size: int = 64
    batch_size: int = 8
    steps: dict = field(
        default_factory=lambda: {
            "pix2pix": 1200,
            "cyclegan": 600,
            "cut": 600,
            "fastcut": 600,
            "munit": 500,
            "drit": 1500,
        }
    )
    seeds: tuple[int, ...] = (0, 1, 2)
    ngf: int = 32
    n_blocks: int = 4  # ResNet residual blocks
    ndf: int = 32
    d_layers: int = 3
    data_length: int = 4000


BUDGETS: dict[str, Budget] = {
    # smoke-level: every arm, both variants, 3 seeds in < 15 min on 2 busy cores; too short to rank arms
    "quick": Budget(
        image_size=32,
        batch_size=8,
        steps={"pix2pix": 60, "cyclegan": 30, "cut": 30, "fastcut": 30, "munit": 30, "drit": 30},
        ngf=16,
        n_blocks=2,
        ndf=16,
        d_layers=2,
    ),
    # what this machine affords in under an hour: small nets at 32 px, long enough to translate legibly
    "medium": Budget(
        image_size=32,
        batch_size=4,
        steps={"pix2pix": 400, "cyclegan": 300, "cut": 300, "fastcut": 300, "munit": 300, "drit": 300},
        ngf=16,
        n_blocks=3,
        ndf=16,
        d_layers=2,
    ),
    # the prototype's scale (64 px, ngf 32, 4 blocks): hours on 2 CPU cores, minutes on a GPU
    "full": Budget(),
}


@dataclass(frozen=True)
class RunSpec:
    """One training run of the study."""

    group: str
    family: str
    variant: str
    seed: int
    shortcut: str | None = None
    norm: str = ""
    precision: str = "no"

    @property
    def arm(self) -> str:
        """The compared condition, e.g. ``pono_ms``, ``norm_group``, ``pono_ms_bf16``."""
        if self.group == "norm":
            return f"norm_{self.norm}"
        label = SHORTCUT_LABELS[self.shortcut]
        return f"{label}_bf16" if self.precision == "bf16" else label

    @property
    def name(self) -> str:
        return f"{self.variant}/{self.family}-{self.arm}-s{self.seed}"


def plan(
    variants: list[str], families: list[str], groups: list[str], seeds: tuple[int, ...]
) -> list[RunSpec]:
    """Every run of the study, ordered so that each (variant, family) comparison completes before the
    next starts (useful when a study is spread over several sessions). The ``batch`` norm run *is*
    the pix2pix baseline, so it is not repeated."""
    specs: list[RunSpec] = []
    for variant in variants:
        for family in families:
            base = BASE_NORMS[family]
            if "shortcut" in groups:
                specs += [
                    RunSpec("shortcut", family, variant, seed, sc, base)
                    for seed in seeds
                    for sc in family_shortcuts(family)
                ]
            if "norm" in groups and family == "pix2pix":
                specs += [
                    RunSpec("norm", family, variant, seed, None, n)
                    for seed in seeds
                    for n in STUDY_NORMS
                    if n != base
                ]
            if "precision" in groups:
                specs += [RunSpec("precision", family, variant, seed, "ms", base, "bf16") for seed in seeds]
    return specs


def generator_kwargs(spec: RunSpec, budget: Budget) -> tuple[str, dict]:
    """Preset name and options of the run's generator (U-Net depth follows the image size)."""
    if FAMILY_GENERATORS[spec.family] == "unet":
        return "unet_256", {
            "ngf": budget.ngf,
            "num_downs": int(math.log2(budget.image_size)),
            "norm": spec.norm,
        }
    kwargs = {"ngf": budget.ngf, "n_blocks": budget.n_blocks, "norm": spec.norm}
    if FAMILY_GENERATORS[spec.family] == "resnet_aa":  # PONO-MS with CUT: instance norm throughout
        kwargs.update(antialias=True, antialias_up=True)
        if spec.shortcut is not None:
            kwargs["layout"] = "ponogan"
    elif spec.shortcut is not None:  # the official PONO code's ResNet (the U-Net has no official PONO)
        kwargs["layout"] = "official"
    return "resnet_9blocks", kwargs


def loss_section(spec: RunSpec, budget: Budget) -> dict:
    """The run's ``loss`` overrides: CUT's mode and its NCE taps (the official ones, with the first
    and the middle residual block of the budget's ResNet; empty for the other families)."""
    if spec.family not in FAMILY_MODES:
        return {}
    taps = ["stem.pad", "down1.conv", "down2.conv", "block1", f"block{budget.n_blocks // 2 + 1}"]
    return {**FAMILY_MODES[spec.family][1], "nce_layers": list(dict.fromkeys(taps))}


def run_settings(spec: RunSpec, budget: Budget, run_dir: Path, *, resume: bool, device: str) -> dict:
    """What every run of the study sets, as dotted config keys: name, seed, data, steps, no mid-run
    I/O. The loop's own end-of-run evaluation is capped (``score`` below covers the whole test split)."""
    steps = budget.steps[spec.family]
    return {
        "run_name": spec.name.replace("/", "-"),
        "output_dir": str(run_dir),
        "seed": spec.seed,
        "data.eval_batch_size": 32,
        "data.eval_max_items": 16,
        "data.options.image_size": family_side(spec.family, budget),
        "data.options.variant": spec.variant,
        "data.options.seed": spec.seed,
        "data.options.length": budget.data_length,
        "train.max_steps": steps,
        "train.mixed_precision": spec.precision,
        "train.device": device,
        "train.sample_every": 0,
        "train.eval_every": 0,
        "train.save_every": max(steps // 2, 1),
        "train.keep_last": 1,
        "train.log_every": 10,
        "train.num_samples": 8,
        "train.resume": resume,
    }


def preset_config(spec: RunSpec, budget: Budget, run_dir: Path, *, resume: bool, device: str = "cpu"):
    """The ``TrainConfig`` of a run of a preset-trained family (MUNIT, DRIT): its glyph preset for the
    arm's shortcut (nets, batch, optimiser, losses, ``train.style_seed``) with the study's settings."""
    preset = find_preset(FAMILY_PRESETS[spec.family][spec.shortcut])
    return load_config(preset, run_settings(spec, budget, run_dir, resume=resume, device=device))


def train_config(spec: RunSpec, budget: Budget, run_dir: Path, *, resume: bool, device: str = "cpu"):
    """The ``TrainConfig`` of one run: the family's paper losses, the budget's sizes, no mid-run I/O.
    The loop's own end-of-run evaluation is capped (``score`` below covers the whole test split)."""
    if spec.family in FAMILY_PRESETS:
        return preset_config(spec, budget, run_dir, resume=resume, device=device)
    generator, gkw = generator_kwargs(spec, budget)
    dkw = {"ndf": budget.ndf, "n_layers": budget.d_layers, "norm": BASE_NORMS[spec.family]}
    if FAMILY_GENERATORS[spec.family] == "resnet_aa":
        dkw["antialias"] = True
    return from_dict(
        {
            "family": FAMILY_MODES.get(spec.family, (spec.family,))[0],
            "loss": loss_section(spec, budget),
            "run_name": spec.name.replace("/", "-"),
            "output_dir": str(run_dir),
            "seed": spec.seed,
            "model": {
                "generator": generator,
                "shortcut": spec.shortcut,
                "generator_kwargs": gkw,
                "discriminator": "patchgan",
                "discriminator_kwargs": dkw,
            },
            "data": {
                "batch_size": budget.batch_size,
                "eval_batch_size": 32,
                "eval_max_items": 16,
                "options": {
                    "image_size": budget.image_size,
                    "variant": spec.variant,
                    "paired": spec.family == "pix2pix",
                    "seed": spec.seed,
                    "length": budget.data_length,
                },
            },
            "train": {
                "max_steps": budget.steps[spec.family],
                "mixed_precision": spec.precision,
                "device": device,
                "sample_every": 0,
                "save_every": max(budget.steps[spec.family] // 2, 1),
                "keep_last": 1,
                "log_every": 10,
                "num_samples": 8,
                "resume": resume,
            },
        }
    )


# ---------------------------------------------------------------- scoring
def test_split(variant: str, image_size: int) -> dict[str, torch.Tensor]:
    """The held-out test split as tensors: ``A``, ``B`` ``(N, 3, S, S)``, ``B_mask`` ``(N, 1, S, S)``."""
    ds = build_dataset("glyphs", None, "test", DataOptions(image_size=image_size, variant=variant))
    items = [ds[i] for i in range(len(ds))]
    return {k: torch.stack([it[k] for it in items]) for k in ("A", "B", "B_mask")}


@torch.no_grad()
def translate(generator: torch.nn.Module, images: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    """``generator`` over ``images (N, C, H, W)`` in eval mode, in chunks; float32 output."""
    generator.eval()
    return torch.cat([generator(chunk).float() for chunk in images.split(batch_size)])


def score(fake: torch.Tensor, split: dict[str, torch.Tensor]) -> dict[str, float]:
    """L1/PSNR/SSIM vs the ground truth, glyph-mask IoU and centroid error (pixels) vs the true mask."""
    target_mask = split["B_mask"] > 0.5
    return {
        **paired_metrics(fake, split["B"]),
        "mask_iou": mask_iou(fake, target_mask),
        "centroid_err": centroid_error(fake, target_mask),
    }


def load_generator(run_dir: Path, family: str) -> torch.nn.Module:
    generators, _ = load_pretrained(run_dir)
    return generators[GENERATOR_ROLE[family]]


@torch.no_grad()
def translate_fixed_codes(cfg, run_dir: Path, images: torch.Tensor, batch_size: int = 32):
    """A -> B of a multimodal run over ``images (N, C, H, W)``, test item ``i`` with its fixed style /
    attribute code: the family's trainer, built from the run's config with the saved generators loaded,
    translates as the loop's evaluation does (codes drawn from ``train.style_seed`` and the item's index).
    Returns ``(fake (N, C, H, W) float32, parameters of the saved generators)``."""
    trainer = create_trainer(cfg, Accelerator(cpu=True))
    saved, _ = load_pretrained(run_dir)
    for role, net in trainer.generators().items():
        net.load_state_dict(saved[role].state_dict())
    for net in trainer.nets.values():
        net.eval()
    index = torch.arange(images.shape[0])
    chunks = zip(images.split(batch_size), index.split(batch_size), strict=True)
    fake = torch.cat([trainer.translate(x, i).float() for x, i in chunks])
    return fake, sum(p.numel() for net in saved.values() for p in net.parameters())


def translate_run(spec: RunSpec, budget: Budget, run_dir: Path, images: torch.Tensor):
    """``(A -> B of the test images, generator parameters)`` of a finished run: a multimodal family's
    with its fixed codes (``translate_fixed_codes``), the others' through their A -> B generator."""
    if get_family(ponogan_family(spec.family)).multimodal:
        cfg = train_config(spec, budget, run_dir, resume=False)
        return translate_fixed_codes(cfg, run_dir, images)
    generator = load_generator(run_dir, spec.family)
    return translate(generator, images), sum(p.numel() for p in generator.parameters())


def run_one(
    spec: RunSpec, budget: Budget, root: Path, splits: dict, *, verbose: bool = False, device: str = "cpu"
) -> dict:
    """Train (or resume) and score one run; its ``study.json`` is the record (and the skip marker)."""
    run_dir = root / spec.name
    record = read_json(run_dir / "study.json")
    if record is not None:
        return record
    t0, load_start = time.monotonic(), load_average()
    if not (run_dir / "metrics.json").is_file() or not (run_dir / "model.safetensors").is_file():
        resume = latest_state(run_dir) is not None
        quiet = contextlib.nullcontext() if verbose else contextlib.redirect_stderr(io.StringIO())
        with quiet:  # the loop's progress bar, one per run
            train(train_config(spec, budget, run_dir, resume=resume, device=device))
    train_s = time.monotonic() - t0
    split = splits[(spec.variant, family_side(spec.family, budget))]
    fake, params = translate_run(spec, budget, run_dir, split["A"])
    metrics = score(fake, split)
    log = [r for r in _read_log(run_dir) if "time_s" in r]
    record = {
        **asdict(spec),
        "arm": spec.arm,
        "name": spec.name,
        "metrics": metrics,
        "train_s": round(log[-1]["time_s"], 1) if log else round(train_s, 1),
        "final_losses": {
            k: v for k, v in (log[-1] if log else {}).items() if k not in ("step", "epoch", "lr", "time_s")
        },
        "params_G": params,
        "load_start": load_start,
        "load_end": load_average(),
    }
    write_json(run_dir / "study.json", record)
    return record


def _read_log(run_dir: Path) -> list[dict]:
    path = run_dir / "log.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ---------------------------------------------------------------- aggregation and report
def aggregate(records: list[dict]) -> list[dict]:
    """Mean and sample std over seeds of every metric, per (variant, family, arm)."""
    cells: dict[tuple, list[dict]] = {}
    for r in records:
        cells.setdefault((r["variant"], r["family"], r["group"], r["arm"]), []).append(r)
    rows = []
    for (variant, family, group, arm), runs in cells.items():
        row = {
            "variant": variant,
            "family": family,
            "group": group,
            "arm": arm,
            "seeds": sorted(r["seed"] for r in runs),
            "train_s_mean": round(statistics.mean(r["train_s"] for r in runs), 1),
        }
        for m in METRICS:
            values = [r["metrics"][m] for r in runs]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            row[m] = {"mean": statistics.mean(values), "std": spread, "values": values}
        rows.append(row)
    return rows


def compare_to_baseline(rows: list[dict]) -> list[dict]:
    """Per variant and family: each arm's mean minus the baseline's, and whether the gap exceeds the
    seeds' spread (|diff| > std_arm + std_baseline): a crude but honest significance flag."""
    base = {(r["variant"], r["family"]): r for r in rows if r["arm"] == "baseline"}
    out = []
    for r in rows:
        b = base.get((r["variant"], r["family"]))
        if b is None or r is b:
            continue
        diffs = {}
        for m in METRICS:
            d = r[m]["mean"] - b[m]["mean"]
            better = d > 0 if HIGHER_IS_BETTER[m] else d < 0
            beyond = abs(d) > r[m]["std"] + b[m]["std"]
            diffs[m] = {"diff": d, "better": better, "beyond_spread": beyond}
        out.append({"variant": r["variant"], "family": r["family"], "arm": r["arm"], "vs_baseline": diffs})
    return out


def markdown_table(rows: list[dict]) -> str:
    """One table: rows (variant, family, arm), columns mean ± std of each metric."""
    head = (
        "| variant | family | arm | seeds | L1 ↓ | PSNR ↑ | SSIM ↑ | mask IoU ↑ | centroid err (px) ↓ "
        "| train s/run |"
    )
    lines = [head, "|" + "---|" * 10]
    digits = {"l1": 4, "psnr": 2, "ssim": 3, "mask_iou": 3, "centroid_err": 2}
    order = {
        a: i
        for i, a in enumerate(
            ["baseline", "pono_ms", "pono_dms", "pono_ms_bf16"] + [f"norm_{n}" for n in STUDY_NORMS]
        )
    }
    for r in sorted(rows, key=lambda r: (r["variant"], r["family"], order.get(r["arm"], 99))):
        cells = [f"{r[m]['mean']:.{digits[m]}f} ± {r[m]['std']:.{digits[m]}f}" for m in METRICS]
        lines.append(
            f"| {r['variant']} | {r['family']} | {r['arm']} | {len(r['seeds'])} | "
            + " | ".join(cells)
            + f" | {r['train_s_mean']} |"
        )
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- figures
def save_png(grid: torch.Tensor, path: Path, min_width: int = 480) -> Path:
    """Save a ``(3, H, W)`` grid in [0, 1] as a 256-colour PNG (the write-up keeps figures small),
    enlarged by an integer factor (nearest neighbour) to at least ``min_width`` pixels."""
    array = (grid.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    image = Image.fromarray(array)
    factor = max(1, -(-min_width // image.width))
    image = image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)
    image.quantize(256, dither=Image.Dither.NONE).save(path, optimize=True)
    return path


def _rgb(x: torch.Tensor) -> torch.Tensor:
    x = x.detach().float().cpu().clamp(-1, 1) * 0.5 + 0.5
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def _heat(maps: torch.Tensor, size: int) -> torch.Tensor:
    """``(N, 1, h, w)`` moment maps -> ``(N, 3, size, size)`` grey images, each min-max scaled."""
    flat = maps.flatten(1)
    lo, hi = flat.min(1).values.view(-1, 1, 1, 1), flat.max(1).values.view(-1, 1, 1, 1)
    scaled = (maps - lo) / (hi - lo).clamp_min(1e-8)
    return torch.nn.functional.interpolate(scaled, size=(size, size), mode="nearest").expand(-1, 3, -1, -1)


def write_figures(
    root: Path,
    variants: list[str],
    families: list[str],
    budget: Budget,
    splits: dict,
    out_dir: Path,
    n_items: int = 8,
) -> list[Path]:
    """Per variant and feed-forward family: ``input | baseline | PONO-MS | PONO-DMS | target`` for
    seed 0, and the PONO-MS generator's moment maps (mean and std of each encoder level) on the same
    inputs (the multimodal families have no figures here)."""
    seed = budget.seeds[0]
    written = []
    families = [f for f in families if not get_family(ponogan_family(f)).multimodal]
    for variant in variants:
        split = splits[(variant, budget.image_size)]
        picks = torch.linspace(0, split["A"].shape[0] - 1, n_items).round().long()
        a, b = split["A"][picks], split["B"][picks]
        for family in families:
            outs = {}
            for shortcut in family_shortcuts(family):
                run_dir = root / RunSpec("shortcut", family, variant, seed, shortcut).name
                if (run_dir / "model.safetensors").is_file():
                    outs[SHORTCUT_LABELS[shortcut]] = load_generator(run_dir, family)
            if len(outs) < len(family_shortcuts(family)):
                continue
            columns = [a] + [translate(g, a) for g in outs.values()] + [b]
            tiles = torch.stack([_rgb(c) for c in columns], 1).flatten(0, 1)
            grid = make_grid(tiles, nrow=len(columns), padding=2, pad_value=0.5)
            written.append(save_png(grid, out_dir / f"{variant}_{family}_samples.png"))
            with torch.no_grad():
                moments = outs["pono_ms"].extract_moments(a)
            size = a.shape[-1]
            maps = [_rgb(a)] + [_heat(m, size) for level in moments for m in level]
            tiles = torch.stack(maps, 1).flatten(0, 1)
            grid = make_grid(tiles, nrow=len(maps), padding=2, pad_value=0.5)
            written.append(save_png(grid, out_dir / f"{variant}_{family}_moments.png"))
    return written


# ---------------------------------------------------------------- main
def study_notes(families: list[str], budget: Budget) -> list[str]:
    """The table notes of a study over ``families``: where a family's runs differ from the budget
    (its own side, a preset's nets and batch) and how multimodal translations are scored."""
    notes = []
    for family in families:
        side, steps = family_side(family, budget), budget.steps[family]
        if family in FAMILY_PRESETS:
            presets = " / ".join(f"`{p}`" for p in FAMILY_PRESETS[family].values())
            notes.append(f"{family}: {steps} steps at {side} px; nets, batch and losses of {presets}")
        elif side != budget.image_size:
            notes.append(f"{family}: {side} px (its spec's min_side)")
    multimodal = [f for f in families if get_family(ponogan_family(f)).multimodal]
    if multimodal:
        notes.append(
            f"{', '.join(multimodal)}: A -> B scored with the run's fixed style / attribute codes "
            "(`train.style_seed`, one code per test item, drawn as the training loop's evaluation draws them)"
        )
    if len({family_side(f, budget) for f in families}) > 1:
        notes.append("centroid error is in pixels of each family's own side")
    return notes


def save_results(out: Path, mode: str, result: dict) -> None:
    """Store ``result`` under its mode in ``out`` (quick and full runs share one file) and rewrite the
    markdown tables next to it from every mode present."""
    data = read_json(out) or {}
    previous = data.get(mode)
    if result["runs_trained"] == 0 and previous and previous.get("runs_trained", 1) > 0:
        # a re-aggregation: keep the load and threads of the invocation that did the training
        result = {**result, **{k: previous[k] for k in ("load", "threads", "wall_s") if k in previous}}
    data[mode] = result
    write_json(out, data)
    sections = []
    for name, res in data.items():
        train_total = sum(r["train_s"] for r in res["runs"])
        studied = {r["family"] for r in res["summary"]}
        steps = {f: n for f, n in res["budget"]["steps"].items() if f in studied}
        sections.append(
            f"## mode `{name}`: {res['n_runs']} runs, {train_total / 60:.1f} min of "
            f"training (summed over runs), "
            f"{res['threads']} thread(s), image {res['budget']['image_size']} px, steps "
            f"{steps}\n\n{res['load']['note']}.\n\n"
            + "".join(f"- {note}\n" for note in res.get("notes", []))
            + ("\n" if res.get("notes") else "")
            + markdown_table(res["summary"])
        )
    title = "# PONO-MS quality study (bench/bench_quality.py)\n\n"
    out.with_suffix(".md").write_text(title + "\n".join(sections))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mode", choices=list(BUDGETS), default="full", help="budget (default: full)")
    p.add_argument("--quick", action="store_const", dest="mode", const="quick", help="same as --mode quick")
    p.add_argument("--variants", nargs="+", default=["plain", "hard"], choices=["plain", "hard"])
    p.add_argument("--families", nargs="+", default=["pix2pix", "cyclegan"], choices=list(STUDY_FAMILIES))
    p.add_argument(
        "--groups", nargs="+", default=["shortcut", "norm"], choices=["shortcut", "norm", "precision"]
    )
    p.add_argument("--seeds", type=int, default=None, help="number of seeds (default: the budget's 3)")
    p.add_argument("--steps", type=int, default=None, help="override the steps of every family")
    p.add_argument(
        "--family-steps",
        nargs="+",
        default=[],
        type=family_steps_item,
        metavar="FAMILY=STEPS",
        help="override the steps of some families (after --steps), e.g. munit=200 drit=300",
    )
    p.add_argument("--image-size", type=int, default=None, help="override the budget's image size")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where the runs train")
    p.add_argument("--runs-dir", default=None, help="where runs go (default: checkpoints/study/<mode>)")
    p.add_argument("--out", default=None, help="results JSON (default: bench/results/quality.json)")
    p.add_argument("--figures", action="store_true", help="write sample grids and moment maps")
    p.add_argument("--figures-dir", default=str(REPO / "docs" / "study"))
    p.add_argument(
        "--aggregate-only", action="store_true", help="train nothing: summarise the runs that have finished"
    )
    p.add_argument("--verbose", action="store_true", help="show the training progress bars")
    return p.parse_args(argv)


def family_steps_item(item: str) -> tuple[str, int]:
    """``"drit=900"`` -> ``("drit", 900)``; anything else is an argparse usage error (exit 2)."""
    family, _, value = item.partition("=")
    if family not in STUDY_FAMILIES or not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(
            f"takes FAMILY=STEPS with STEPS >= 1 (families: {', '.join(STUDY_FAMILIES)}), got {item!r}"
        )
    return family, int(value)


def make_budget(args: argparse.Namespace) -> tuple[str, Budget]:
    mode = args.mode
    budget = BUDGETS[mode]
    if args.seeds is not None:
        budget = replace(budget, seeds=tuple(range(args.seeds)))
    if args.steps is not None:
        budget = replace(budget, steps={f: args.steps for f in budget.steps})
    if args.family_steps:
        budget = replace(budget, steps={**budget.steps, **dict(args.family_steps)})
    if args.image_size is not None:
        budget = replace(budget, image_size=args.image_size)
    return mode, budget


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    threads = set_threads(args.threads)
    mode, budget = make_budget(args)
    root = Path(args.runs_dir) if args.runs_dir else REPO / "checkpoints" / "study" / mode
    out = Path(args.out) if args.out else RESULTS_DIR / "quality.json"
    specs = plan(args.variants, args.families, args.groups, budget.seeds)
    sides = sorted({budget.image_size} | {family_side(f, budget) for f in args.families})
    splits = {(v, side): test_split(v, side) for v in args.variants for side in sides}
    load_before, t0 = load_average(), time.monotonic()
    if args.aggregate_only:
        specs = [spec for spec in specs if (root / spec.name / "study.json").is_file()]
    records, trained = [], 0
    for i, spec in enumerate(specs, 1):
        t_run = time.monotonic()
        done = (root / spec.name / "study.json").is_file()
        record = run_one(spec, budget, root, splits, verbose=args.verbose, device=args.device)
        trained += not done
        records.append(record)
        m = record["metrics"]
        print(
            f"[{i}/{len(specs)}] {spec.name}: L1 {m['l1']:.4f} SSIM {m['ssim']:.3f} "
            f"IoU {m['mask_iou']:.3f} "
            f"centroid {m['centroid_err']:.2f}px ({time.monotonic() - t_run:.0f} s)",
            flush=True,
        )
        gc.collect()
    wall = time.monotonic() - t0
    rows = aggregate(records)
    result = {
        "mode": mode,
        "budget": asdict(budget),
        "threads": threads,
        "runs_dir": str(root),
        "command": "python bench/bench_quality.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "wall_s": round(wall, 1),
        "n_runs": len(records),
        "train_s_total": round(sum(r["train_s"] for r in records), 1),
        "runs_trained": trained,
        "machine": machine_info(),
        "load": busy_note(load_before, load_average()),
        "notes": study_notes(args.families, budget),
        "test_split": {v: int(s["A"].shape[0]) for (v, _), s in splits.items()},
        "summary": rows,
        "vs_baseline": compare_to_baseline(rows),
        "runs": records,
    }
    if args.figures:
        out_dir = Path(args.figures_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        figures = write_figures(root, args.variants, args.families, budget, splits, out_dir)
        result["figures"] = [str(p.relative_to(REPO)) if p.is_relative_to(REPO) else str(p) for p in figures]
    save_results(out, mode, result)
    print(f"{len(records)} runs in {wall / 60:.1f} min -> {out}")
    return result


if __name__ == "__main__":
    main()
