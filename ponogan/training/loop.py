"""The one training loop for every family, on Hugging Face ``accelerate``.

``train(cfg)`` builds an ``Accelerator`` (CPU or CUDA, ``no``/``bf16``/``fp16``), the family's trainer
(``families/``), the data order (``batch_order.Batches``), then runs optimizer steps until
``max_steps``, ``max_minutes``, ``stop_at_step``, SIGINT/SIGTERM (``stop``), or a non-finite loss.
Each step runs ``optim.grad_accum_steps`` micro-batches inside ``accelerator.accumulate``. Every
``save_every`` steps and at the end it writes ``model.safetensors`` + ``config.json`` (inference) and
a full training state (exact resume); samples, metrics and ``log.jsonl`` go to the run folder too.

Nothing a user has is overwritten (``run_guard.check_run_dir``), and one run at a time trains in a
folder (``run_guard.take_lock``). ``--resume`` with nothing to resume, with nothing left to train, or
with a changed model (``IDENTITY_FIELDS``, unless ``allow_config_change``) is an error; a damaged
latest state is set aside (never deleted) and the run falls back to the previous complete one
(``_Run.resume``).

Multi-process (``accelerate launch`` / ``torchrun``) works the same: the data is sharded by rank,
DDP keeps the weights identical, and stop decisions are agreed on by all ranks every step.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import GradientAccumulationPlugin
from safetensors import SafetensorError
from tqdm.auto import tqdm

from ponogan.core.atomic import write_text_atomic
from ponogan.core.messages import first_line
from ponogan.core.run_folder import LOG, METRICS, MODEL, SAMPLES_DIR, RunFolder
from ponogan.core.runtime import enable_tf32, resolve_device, resolve_mixed_precision
from ponogan.data import build_dataset
from ponogan.families.base import create_trainer
from ponogan.models import create_discriminator, create_generator
from ponogan.models.hub import save_pretrained
from ponogan.training.batch_order import Batches, data_workers, to_device
from ponogan.training.config import TrainConfig
from ponogan.training.errors import NonFiniteLossError, TrainingError, UsageError
from ponogan.training.heldout import Evaluator, eval_mode
from ponogan.training.plots import write_run_plots
from ponogan.training.preflight import network_plan
from ponogan.training.run_guard import (
    all_damaged,
    check_run_dir,
    exported_step,
    nothing_to_train,
    take_lock,
    truncate_log,
)
from ponogan.training.samples import labelled_grid, save_png
from ponogan.training.schedules import decay_start_step
from ponogan.training.state import (
    BrokenStateError,
    CheckpointError,
    TrainingState,
    capture_rng,
    describe_write_error,
    latest_state,
    load_state,
    read_meta,
    restore_rng,
    resume_order,
    save_state,
    set_aside,
    sweep_leftovers,
)
from ponogan.training.stop import StopRules, StopSignals

# what makes a run the run it is: resuming with any of these changed is refused (``_Run.resume``)
# unless asked for (``allow_config_change``); dotted paths into ``TrainConfig.to_dict()``
IDENTITY_FIELDS = (
    "family",
    "model.generator",
    "model.generator_kwargs",  # layout, norm, widths
    "model.shortcut",
    "model.discriminator",
    "model.discriminator_kwargs",
    "data.options.load_size",
    "data.options.crop_size",
    "data.options.image_size",
    "data.options.input_nc",
    "data.options.output_nc",
    "data.batch_size",
)


@dataclass
class RunResult:
    """What ``train`` returns: where the run is, the last step, its metrics and why it stopped."""

    run_dir: Path
    step: int
    metrics: dict[str, float] = field(default_factory=dict)
    stopped_by: str = "max_steps"
    is_main: bool = True


# ---------------------------------------------------------------- setup
def resolve_runtime(cfg: TrainConfig) -> dict[str, str]:
    """The device and precision this run uses: ``{"device", "mixed_precision", "precision_source"}``.

    ``train.device: auto`` and ``train.mixed_precision: null`` are resolved by ``ponogan.core.runtime``
    (CUDA, then MPS, then CPU; accelerate's own configuration, then the device default).
    """
    try:
        device = resolve_device(cfg.train.device)
    except ValueError as err:
        raise TrainingError(str(err).replace("device ", "--device ", 1)) from None
    kind = torch.device(device).type
    precision, source = resolve_mixed_precision(cfg.train.mixed_precision, device)
    if precision == "fp16" and kind == "cpu":
        raise TrainingError(
            f"fp16 mixed precision (from {source}) needs a CUDA GPU (its grad scaler is "
            "GPU-only); on the CPU use --mixed-precision bf16 or no"
        )
    return {"device": device, "mixed_precision": precision, "precision_source": source}


def build_accelerator(cfg: TrainConfig, runtime: dict[str, str] | None = None) -> Accelerator:
    """``Accelerator(cpu=..., mixed_precision=...)`` for the resolved device and precision, with clear
    errors for impossible combinations. fp16 gets accelerate's grad scaler; TF32 is enabled on GPUs
    that have it."""
    runtime = runtime or resolve_runtime(cfg)
    device, precision = runtime["device"], runtime["mixed_precision"]
    if torch.device(device).type == "cuda":
        enable_tf32()
    if not torch.distributed.is_initialized():
        # NOTE: accelerate has no public reset of its process-wide state, which refuses another device or
        # precision ("AcceleratorState has already been initialized", accelerate/state.py:1049-1060) for a
        # second train() in one process (tests, notebooks, benchmarks). GradientState needs none: every
        # Accelerator hands it its plugin (state.py:1268-1270).
        AcceleratorState._reset_state(reset_partial_state=True)
    plugin = GradientAccumulationPlugin(num_steps=cfg.optim.grad_accum_steps, sync_with_dataloader=False)
    tensorboard = importlib.util.find_spec("tensorboard") is not None
    return Accelerator(
        cpu=torch.device(device).type == "cpu",
        mixed_precision=precision,
        gradient_accumulation_plugin=plugin,
        log_with="tensorboard" if tensorboard else None,
        project_dir=str(cfg.run_dir),
    )


def _memory_bytes(device: str) -> int | None:
    """Total memory of the training device (GPU for cuda, physical RAM for cpu); None if unknown."""
    try:
        if device == "cuda" and torch.cuda.is_available():
            return torch.cuda.get_device_properties(0).total_memory  # no context is created
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (OSError, ValueError, AttributeError, RuntimeError):
        return None


def check_model_size(cfg: TrainConfig) -> None:
    """Refuse (``UsageError``) networks whose weights, gradients and Adam moments alone (16 bytes a
    parameter) exceed the device's memory, counted on the meta device before anything is allocated.

    The count is every network the family builds (``Family.networks``); it is a lower bound of what
    training needs (activations come on top).
    """
    creators = {"generator": create_generator, "discriminator": create_discriminator}
    try:
        with torch.device("meta"):
            nets = [creators[kind](name, **kwargs) for _, kind, name, kwargs in network_plan(cfg)]
    except (TypeError, ValueError) as err:
        raise TrainingError(f"cannot build the {cfg.family} networks: {err}") from err
    except Exception:  # noqa: BLE001 - a module that cannot be built on "meta": the real build will tell
        return
    params = sum(p.numel() for net in nets for p in net.parameters())
    device = resolve_device(cfg.train.device)
    need, have = 16 * params, _memory_bytes(torch.device(device).type)
    if have and need > have:
        where = "GPU memory" if device.startswith("cuda") else "RAM"
        raise UsageError(
            f"the {cfg.family} networks would have {params / 1e9:.1f} billion parameters: "
            f"their weights, gradients and Adam state alone need {need / 2**30:.0f} GiB, more "
            f"than this machine's {have / 2**30:.0f} GiB of {where}; use smaller "
            "model.generator_kwargs (ngf, dim) or model.discriminator_kwargs (ndf)"
        )


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ---------------------------------------------------------------- the run
_ABSENT = object()  # a config field a saved config does not have


class _Run:
    """State of one ``train`` call; methods are the loop's phases."""

    def __init__(self, cfg: TrainConfig, *, allow_config_change: bool = False):
        """Check the run folder and the model size, build the ``Accelerator`` and take the folder's lock
        (main process); ``build`` does the rest, under the lock."""
        self.cfg = cfg
        self.run_dir = cfg.run_dir
        self.allow_config_change = allow_config_change
        check_run_dir(self.run_dir, cfg.train.resume, cfg.train.max_steps if cfg.train.resume else None)
        check_model_size(cfg)
        self.runtime = resolve_runtime(cfg)
        self.acc = build_accelerator(cfg, self.runtime)
        self.runtime["num_processes"] = self.acc.num_processes
        self.rank, self.world = self.acc.process_index, self.acc.num_processes
        self.main = self.acc.is_main_process
        self.acc.wait_for_everyone()  # every rank has checked the folder before rank 0 changes it
        self.lock = take_lock(self.run_dir, self.main, self._agree)

    def build(self) -> None:
        """Sweep the run folder, then build the data, the family's trainer and the training state."""
        cfg = self.cfg
        if self.main:
            removed = sweep_leftovers(self.run_dir)
            if removed:
                print(
                    f"removed {len(removed)} leftover(s) of an interrupted run from {self.run_dir}: "
                    + ", ".join(str(p.relative_to(self.run_dir)) for p in removed[:3])
                    + (", ..." if len(removed) > 3 else ""),
                    file=sys.stderr,
                )
            (self.run_dir / SAMPLES_DIR).mkdir(parents=True, exist_ok=True)
            if not cfg.train.resume:  # a restart of a run that never saved: its log starts over
                truncate_log(self.run_dir / LOG, 0)
        self.acc.wait_for_everyone()  # the folder is swept before any rank lists its states
        seed_everything(cfg.seed)  # same initial weights on every rank
        try:
            self.train_set = build_dataset(cfg.data.mode, cfg.data.root, "train", cfg.data.options)
        except (OSError, ValueError) as err:
            raise TrainingError(f"cannot build the training data ({cfg.data.mode}): {err}") from err
        try:
            self.test_set = build_dataset(cfg.data.mode, cfg.data.root, "test", cfg.data.options)
        except (OSError, ValueError):
            self.test_set = None
        try:
            self.trainer = create_trainer(cfg, self.acc)
        except (TypeError, ValueError) as err:
            raise TrainingError(f"cannot build the {cfg.family} networks: {err}") from err
        self.trainer.prepare()
        try:
            workers = data_workers(cfg.data.num_workers, self.acc.device, self.world)
            io = {"num_workers": workers, "pin_memory": self.acc.device.type == "cuda"}
            size = cfg.data.batch_size
            decay_step = decay_start_step(cfg.optim, cfg.train.max_steps)
            decay = None if decay_step is None else decay_step * cfg.optim.grad_accum_steps
            self.batches = Batches(
                self.train_set, size, cfg.seed, self.rank, self.world, decay_batch=decay, **io
            )
        except ValueError as err:
            raise TrainingError(f"{cfg.data.mode} training data: {err}") from err
        self.evaluator = Evaluator(
            self.acc,
            self.test_set,
            mode=cfg.data.mode,
            batch_size=cfg.data.eval_batch_size,
            max_items=cfg.data.eval_max_items,
        )
        self.state = TrainingState(
            nets={k: self.acc.unwrap_model(v) for k, v in self.trainer.nets.items()},
            optimizers=self.trainer.optimizers,
            schedulers=self.trainer.schedulers,
            scaler=self.acc.scaler,
        )
        self.step = 0
        self.elapsed_before = 0.0
        self.metrics: dict[str, float] = {}
        self.config_changes: list[dict] = []  # resumes with allow_config_change: step and what changed
        seed_everything(cfg.seed + 1 + self.rank)  # training randomness (dropout, pools, styles) per rank

    # ---- checkpoints
    def _identity_changes(self, saved: Any) -> dict[str, list]:
        """``{field: [saved value, this run's value]}`` of the ``IDENTITY_FIELDS`` that differ between a
        state's saved config and this run's (fields the saved config lacks are not compared)."""
        current, changes = self.cfg.to_dict(), {}
        for dotted in IDENTITY_FIELDS:
            old, new = saved, current
            for key in dotted.split("."):
                old = old.get(key, _ABSENT) if isinstance(old, dict) else _ABSENT
                new = new.get(key, _ABSENT) if isinstance(new, dict) else _ABSENT
            if old is not _ABSENT and old != new:
                changes[dotted] = [old, new]
        return changes

    def _check_identity(self, path: Path, meta: dict) -> dict[str, list]:
        """What this run changes of the model the state ``path`` was trained as (``_identity_changes``);
        ``UsageError`` listing it unless ``allow_config_change``."""
        changes = self._identity_changes(meta.get("config", {}))
        if changes and not self.allow_config_change:
            listing = ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in changes.items())
            raise UsageError(
                f"cannot resume {self.run_dir} as a different model: {listing} (from {path.name}); resume "
                "with the run's own config (no --config), or pass --allow-config-change to continue "
                "with the change (it is recorded in the run)"
            )
        return changes

    def _load(self, path: Path) -> dict[str, list]:
        """Load one state into the nets, optimizers, RNGs and data position (raises ``CheckpointError``,
        or ``UsageError`` for a changed model); returns the identity changes allowed."""
        changes = self._check_identity(path, read_meta(path))
        meta, rank_state = load_state(path, self.state, rank=self.rank, world_size=self.world)
        try:
            self.batches.seek(meta["epoch"], meta["batch"])
        except ValueError as err:
            raise CheckpointError(f"{path.name}: {err}; resume with the run's own data") from err
        try:
            self.trainer.load_extra_state(rank_state["extra"])
            restore_rng(rank_state["rng"])
            self.elapsed_before = float(meta.get("elapsed_s", 0.0))
            self.metrics = dict(meta.get("metrics", {}))
            self.config_changes = list(meta.get("config_changes", []))
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise BrokenStateError(
                f"rank_{self.rank}.pt holds a malformed trainer state ({first_line(err)})"
            ) from err
        self.step = int(meta["step"])
        return changes

    def resume(self) -> None:
        """Continue from the latest state. A damaged one (a file missing, truncated, garbage, pickled
        objects; a step that disagrees) is set aside as ``step_*.damaged`` with one warning line, and
        the next older one is tried. Every rank loads the same state."""
        broken: list[tuple[Path, str]] = []
        for path in resume_order(self.run_dir):
            problem = None
            try:
                changes = self._load(path)
            except BrokenStateError as err:
                problem = str(err)
            except CheckpointError as err:
                raise TrainingError(f"cannot resume from {path}: {err}") from err
            if self._agree(problem is not None)[0]:
                broken.append((path, problem or "a file of another process is damaged"))
                continue
            if self.step >= self.cfg.train.max_steps:
                if exported_step(self.run_dir) == self.step:
                    raise nothing_to_train(self.run_dir, self.step, self.cfg.train.max_steps)
                self.acc.print(
                    f"{self.run_dir} is already at step {self.step}: nothing to train; writing the model "
                    f"of step {self.step}, which {MODEL} does not hold yet"
                )
            if self.main:
                for bad, why in broken:
                    aside = set_aside(bad)
                    print(
                        f"warning: training state {bad.name} is damaged ({why}); set aside as "
                        f"{aside.relative_to(self.run_dir)}, resuming from {path.name}",
                        file=sys.stderr,
                    )
                truncate_log(self.run_dir / LOG, self.step)
            if changes:
                self._record_config_change(changes)
            self.acc.print(f"resumed from {path} (step {self.step})")
            return
        if not broken:
            raise UsageError(f"nothing to resume: {self.run_dir} has no training state (state/step_*)")
        raise all_damaged(self.run_dir, broken, resume=True)

    def _record_config_change(self, changes: dict[str, list]) -> None:
        """Record a resume with a changed model: one warning line, a ``config_change`` line in
        ``log.jsonl``, and ``config_changes`` in every later state and ``config.json``."""
        self.config_changes.append({"step": self.step, "changed": changes})
        if not self.main:
            return
        listing = ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in changes.items())
        print(
            f"warning: continuing {self.run_dir} at step {self.step} with a changed model ({listing}), "
            "as --allow-config-change asks; recorded in log.jsonl and config.json",
            file=sys.stderr,
        )
        self.log({"step": self.step, "config_change": changes})

    def sync_buffers(self) -> None:
        """Give every rank rank 0's buffers (BatchNorm running stats drift apart after the last forward;
        DDP would broadcast them at the next one anyway), so saved weights match across ranks."""
        if self.world == 1:
            return
        for net in self.state.nets.values():
            for buf in net.buffers():
                torch.distributed.broadcast(buf, src=0)

    def save(self, elapsed: float) -> None:
        self.sync_buffers()
        position = {"epoch": self.batches.epoch, "batch": self.batches.batch, "elapsed_s": elapsed}
        meta = {**position, "metrics": self.metrics, "config": self.cfg.to_dict(), "runtime": self.runtime}
        if self.config_changes:
            meta["config_changes"] = self.config_changes
        rank_state = {"rng": capture_rng(), "extra": self.trainer.extra_state(), "rank": self.rank}
        try:
            save_state(
                self.run_dir,
                self.step,
                self.state,
                meta=meta,
                rank_state=rank_state,
                rank=self.rank,
                world_size=self.world,
                barrier=self.acc.wait_for_everyone,
                keep_last=self.cfg.train.keep_last,
            )
        except CheckpointError as err:
            raise TrainingError(str(err)) from err
        if self.main:
            self.export()

    def export(self) -> None:
        """``model.safetensors`` + ``config.json`` for inference (see docs/architecture.md)."""
        opts = self.cfg.data.options.to_dict()  # load_size, crop_size and image_size as configured
        config = {
            "family": self.cfg.family,
            "data": {"mode": self.cfg.data.mode, "root": self.cfg.data.root, **opts},
            "train": self.cfg.to_dict(),
            "runtime": self.runtime,
            "run_name": self.cfg.run_name or self.run_dir.name,
            "step": self.step,
            "metrics": self.metrics,
        }
        if self.config_changes:
            config["config_changes"] = self.config_changes
        try:
            save_pretrained(self.run_dir, self.trainer.generators(), config)
        except (OSError, RuntimeError, SafetensorError) as err:
            failed = describe_write_error(self.run_dir / MODEL, err)
            raise TrainingError(
                f"{failed}; the training state {latest_state(self.run_dir)} is saved "
                "(free space or fix the cause, then continue with --resume)"
            ) from err

    # ---- outputs
    def write_samples(self) -> None:
        """The labelled sample grid of this step (``trainer.sample_columns``), also sent to TensorBoard,
        then the loss/metric pictures (``write_plots``); main process only."""
        if not self.main:
            return
        items = self.evaluator.sample_items(self.train_set, self.cfg.train.num_samples)
        if items:
            with eval_mode(self.trainer.nets):
                columns = self.trainer.sample_columns(
                    to_device(items, self.acc.device), paired=self.evaluator.paired
                )
            grid = labelled_grid(columns)
            save_png(RunFolder(self.run_dir).sample(self.step), grid)
            for tracker in self.acc.trackers:
                if tracker.name == "tensorboard":
                    images = {"samples": np.asarray(grid)[None]}
                    tracker.log_images(images, step=self.step, dataformats="NHWC")
        self.write_plots()

    def write_plots(self) -> None:
        """Redraw ``losses.png`` / ``metrics.png`` from ``log.jsonl`` (``plots.write_run_plots``). Pictures
        are a convenience: any failure is one warning line and the run goes on. Main process only."""
        if not self.main:
            return
        try:
            write_run_plots(self.run_dir)
        except Exception as err:  # noqa: BLE001 - never stop a run for a picture
            tqdm.write(
                f"warning: could not draw the loss curves of {self.run_dir} "  # above the progress bar
                f"({type(err).__name__}: {first_line(err)}); training continues",
                file=sys.stderr,
            )

    def evaluate(self) -> None:
        self.sync_buffers()
        metrics = self.evaluator.evaluate(self.trainer)
        if not metrics:
            return
        self.metrics = metrics
        if self.main:
            text = json.dumps({"step": self.step, **metrics}, indent=2)
            write_text_atomic(self.run_dir / METRICS, text + "\n")
            self.log({"step": self.step, "eval": metrics})
        if self.acc.trackers:
            self.acc.log({f"eval/{k}": v for k, v in metrics.items()}, step=self.step)

    def log(self, record: dict) -> None:
        with open(self.run_dir / LOG, "a") as f:
            f.write(json.dumps(record) + "\n")

    # ---- the loop
    def _agree(self, *flags: bool) -> list[bool]:
        """Every rank gets the OR of each flag over ranks (one tiny all-reduce per step)."""
        if self.world == 1:
            return list(flags)
        t = torch.tensor([float(f) for f in flags], device=self.acc.device)
        return [bool(v) for v in self.acc.reduce(t, reduction="sum").tolist()]

    def summary(self) -> str:
        """The start-of-run lines: folder, device, precision, network sizes, data sizes."""
        rt = self.runtime
        procs = f", {rt['num_processes']} processes" if rt["num_processes"] > 1 else ""
        nets = ", ".join(
            f"{name} {sum(p.numel() for p in net.parameters()) / 1e6:.2f}M"
            for name, net in self.state.nets.items()
        )
        test = len(self.test_set) if self.test_set is not None else 0
        start = f"resuming at step {self.step}" if self.step else "from scratch"
        return "\n".join(
            [
                f"run      {self.run_dir} ({self.cfg.family}, {start}, {self.cfg.train.max_steps} steps)",
                f"device   {self.acc.device}{procs}; "
                f"precision {rt['mixed_precision']} ({rt['precision_source']})",
                f"params   {nets}",
                f"data     {self.cfg.data.mode}: {len(self.train_set)} training items, {test} test items, "
                f"batch {self.cfg.data.batch_size} per process",
            ]
        )

    def run(self) -> RunResult:
        cfg, tc = self.cfg, self.cfg.train
        if tc.resume:
            self.resume()
        if self.main:
            print(self.summary(), file=sys.stderr, flush=True)
        if self.acc.trackers == [] and self.acc.log_with:
            self.acc.init_trackers(self.run_dir.name)
        start_step, start_time = self.step, time.monotonic()

        def elapsed() -> float:
            return self.elapsed_before + time.monotonic() - start_time

        rules = StopRules.of(tc, start_step, start_time)
        stopped_by = "max_steps"
        bar = tqdm(
            total=tc.max_steps,
            initial=self.step,
            desc=cfg.run_name or cfg.family,
            disable=not self.main,
            dynamic_ncols=True,
            unit="step",
        )
        stream = iter(self.batches)
        with contextlib.closing(bar), StopSignals(self.run_dir, verbose=self.main) as signals:
            while self.step < tc.max_steps:
                sums: dict[str, float] = {}
                for _ in range(cfg.optim.grad_accum_steps):
                    batch = to_device(next(stream), self.acc.device)
                    with self.acc.accumulate(*self.trainer.nets.values()):
                        for k, v in self.trainer.step(batch).items():
                            sums[k] = sums.get(k, 0.0) + v / cfg.optim.grad_accum_steps
                for sched in self.trainer.schedulers.values():
                    sched.step()
                self.step += 1
                bad = next((k for k, v in sums.items() if not math.isfinite(v)), None)
                bad_any, signal_any, timeout_any = self._agree(
                    bad is not None, signals.received is not None, rules.timed_out()
                )
                if bad_any:
                    bar.close()
                    self.write_plots()  # the curves up to the last logged step show how it diverged
                    last = latest_state(self.run_dir)
                    what = f"loss {bad} = {sums[bad]}" if bad else "a loss on another process"
                    raise NonFiniteLossError(
                        f"{what} is not finite at step {self.step}; stopping without saving. "
                        f"Last good checkpoint: {last if last else 'none (no checkpoint was saved yet)'}"
                    )
                bar.update(1)
                if self.step % max(tc.log_every, 1) == 0 or self.step == tc.max_steps:
                    bar.set_postfix({k: f"{v:.3g}" for k, v in sums.items()}, refresh=False)
                    lr = self.trainer.schedulers["G"].get_last_lr()[0]
                    if self.main:
                        record = {"step": self.step, "epoch": self.batches.epoch, "lr": lr}
                        self.log({**record, "time_s": round(elapsed(), 3), **sums})
                    if self.acc.trackers:
                        self.acc.log({**sums, "lr": lr}, step=self.step)
                why = rules.reason(self.step, signal=signal_any, timed_out=timeout_any)
                if why is not None:
                    stopped_by = why
                    break  # the final samples, evaluation and save follow
                if tc.sample_every and self.step % tc.sample_every == 0:
                    self.write_samples()
                if tc.eval_every and self.step % tc.eval_every == 0:
                    self.evaluate()
                if tc.save_every and self.step % tc.save_every == 0:
                    with signals.saving():
                        self.save(elapsed())
            bar.close()
            self.evaluate()
            self.write_samples()
            with signals.saving():
                self.save(elapsed())
        if self.acc.trackers:
            self.acc.end_training()
        return RunResult(self.run_dir, self.step, self.metrics, stopped_by, self.main)


def train(cfg: TrainConfig, *, allow_config_change: bool = False) -> RunResult:
    """Train ``cfg.family`` per ``cfg``; returns the run folder, last step, metrics and stop reason.

    ``allow_config_change``: resume even when ``cfg`` changes the run's model (``IDENTITY_FIELDS``);
    the change is recorded in ``log.jsonl``, the states and ``config.json``. Raises ``TrainingError``
    for problems a user can fix (``UsageError`` when nothing was written: run folder, run in use,
    network size, resume), ``NonFiniteLossError`` on NaN/Inf, ``KeyboardInterrupt`` on a second
    SIGINT/SIGTERM outside a save. The run folder's lock is released however it ends.
    """
    run = _Run(cfg, allow_config_change=allow_config_change)
    with run.lock or contextlib.nullcontext():
        run.build()
        return run.run()
