"""End-to-end training runs on tiny nets: every family x shortcut, exact resume, NaN stop, bf16,
SIGTERM, and a real 2-process (torchrun, gloo) run with identical weights on both ranks."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from ponogan.data import build_dataset
from ponogan.models.hub import load_pretrained
from ponogan.training import (
    NonFiniteLossError,
    TrainingError,
    apply_overrides,
    from_dict,
    latest_state,
    train,
)

ROOT = Path(__file__).resolve().parents[1]

TINY_DATA = {
    "batch_size": 2,
    "eval_batch_size": 4,
    "eval_max_items": 4,
    "options": {"image_size": 32, "length": 16, "test_jitters": 1},
}
TINY_LOOP = {
    "max_steps": 2,
    "save_every": 0,
    "sample_every": 0,
    "eval_every": 0,
    "log_every": 1,
    "num_samples": 2,
}
TINY_MODELS = {
    "pix2pix": {
        "generator": "unet_256",
        "generator_kwargs": {"ngf": 8, "num_downs": 5},
        "discriminator_kwargs": {"ndf": 8, "n_layers": 1},
    },
    "cyclegan": {
        "generator": "resnet_6blocks",
        "generator_kwargs": {"ngf": 8, "n_blocks": 1},
        "discriminator_kwargs": {"ndf": 8, "n_layers": 1, "norm": "instance"},
    },
    "munit": {
        "generator": "munit",
        "generator_kwargs": {"dim": 8, "n_res": 1, "mlp_dim": 16, "style_downsample": 2},
        "discriminator_kwargs": {"ndf": 8, "n_layers": 2, "n_scales": 1},
    },
}


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(family: str, run_dir: Path, shortcut: str | None = "ms", **overrides):
    values = {
        "family": family,
        "run_name": f"tiny_{family}",
        "output_dir": str(run_dir),
        "model": {**TINY_MODELS[family], "shortcut": shortcut},
        "data": {**TINY_DATA, "options": {**TINY_DATA["options"], "paired": family == "pix2pix"}},
        "train": dict(TINY_LOOP),
    }
    if family == "cyclegan":
        values["loss"] = {"pool_size": 3}
    if family == "munit":
        values["loss"] = {"cycle": 1.0}
    return apply_overrides(from_dict(values), overrides)


def nets_of(run_dir: Path, step: int) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "state" / f"step_{step:06d}" / "nets.safetensors"))


CASES = [
    ("pix2pix", None),
    ("pix2pix", "ms"),
    ("pix2pix", "dms"),
    ("cyclegan", None),
    ("cyclegan", "ms"),
    ("cyclegan", "dms"),
    ("munit", None),
    ("munit", "ms"),
]


@pytest.mark.parametrize("family, shortcut", CASES, ids=[f"{f}-{s}" for f, s in CASES])
def test_family_trains_and_writes_a_loadable_run_folder(tmp_path, family, shortcut):
    cfg = tiny(family, tmp_path / "run", shortcut)
    result = train(cfg)
    run = tmp_path / "run"
    assert result.step == 2 and result.stopped_by == "max_steps" and result.run_dir == run
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    losses = [r for r in log if "eval" not in r]
    assert [r["step"] for r in losses] == [1, 2] and all(v == v for r in losses for v in r.values())
    assert (run / "samples" / "step_000002.png").is_file()
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics) == {"step", "l1", "psnr", "ssim"} and 0 < metrics["l1"] < 1

    generators, config = load_pretrained(run)
    roles = {"pix2pix": {"G"}, "cyclegan": {"G_A", "G_B"}, "munit": {"gen_a", "gen_b"}}[family]
    assert set(generators) == roles and config["family"] == family and config["step"] == 2
    assert config["data"]["image_size"] == 32 and config["metrics"]["l1"] == metrics["l1"]
    # config round trip: the saved training config rebuilds the same config, and the same model
    assert from_dict(config["train"]) == cfg
    state = nets_of(run, 2)
    role, net = next(iter(sorted(generators.items())))
    prefix = "gen." + role + "." if family == "munit" else role + "."
    for key, value in net.state_dict().items():
        assert torch.equal(value, state[prefix + key]), key
    test_item = build_dataset("glyphs", None, "test", cfg.data.options)[0]
    x = test_item["A"][None]
    if family == "munit":
        assert generators["gen_a"].encode(x)[0].isfinite().all()
    else:
        assert generators[role](x).shape == (1, 3, 32, 32)


@pytest.mark.parametrize("family", ["pix2pix", "cyclegan"])
def test_exact_resume_equals_uninterrupted(tmp_path, family):
    # k = 2 steps, stop, resume to 2k = 4: the LR decay, the image pool (cyclegan), dropout and the data
    # order must all continue exactly; 6 items in batches of 2 = 3 batches per epoch, so the resumed half
    # finishes epoch 0 mid-way and crosses into epoch 1.
    common = {"train.max_steps": 4, "data.options.length": 6, "optim.decay_start": 0.25}
    train(tiny(family, tmp_path / "full", **common))
    first = train(tiny(family, tmp_path / "part", **common, **{"train.stop_at_step": 2}))
    assert first.step == 2 and first.stopped_by == "stop_at_step"
    meta = json.loads((tmp_path / "part" / "state" / "step_000002" / "trainer_state.json").read_text())
    assert (meta["epoch"], meta["batch"]) == (0, 2)
    second = train(tiny(family, tmp_path / "part", **common, **{"train.resume": True}))
    assert second.step == 4
    full, resumed = nets_of(tmp_path / "full", 4), nets_of(tmp_path / "part", 4)
    assert full.keys() == resumed.keys()
    for key in full:
        assert torch.equal(full[key], resumed[key]), key
    # and the run really changed the weights between the two checkpoints
    mid = nets_of(tmp_path / "part", 2)
    assert any(not torch.equal(mid[k], resumed[k]) for k in mid)
    steps = [
        r["step"]
        for r in map(json.loads, (tmp_path / "part" / "log.jsonl").read_text().splitlines())
        if "eval" not in r
    ]
    assert steps == [1, 2, 3, 4]


def test_existing_run_needs_resume(tmp_path):
    train(tiny("pix2pix", tmp_path / "run", **{"train.max_steps": 1}))
    with pytest.raises(TrainingError, match="--resume"):
        train(tiny("pix2pix", tmp_path / "run", **{"train.max_steps": 1}))


def poison_pix2pix_l1_at_step_3(monkeypatch) -> None:
    """pix2pix's L1 (``G_L1``) becomes NaN at its third call: the third step."""
    import ponogan.families.pix2pix as p2p

    calls = {"n": 0}
    real_l1 = p2p.reconstruction_loss

    def poisoned(output, target):
        calls["n"] += 1
        loss = real_l1(output, target)
        return loss * float("nan") if calls["n"] == 3 else loss

    monkeypatch.setattr(p2p, "reconstruction_loss", poisoned)


def test_nan_loss_stops_naming_the_loss_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    poison_pix2pix_l1_at_step_3(monkeypatch)
    cfg = tiny("pix2pix", tmp_path / "run", **{"train.max_steps": 5, "train.save_every": 2})
    with pytest.raises(NonFiniteLossError, match=r"loss G_L1 = nan is not finite at step 3.*step_000002"):
        train(cfg)
    assert latest_state(tmp_path / "run").name == "step_000002"
    generators, config = load_pretrained(tmp_path / "run")
    assert config["step"] == 2
    assert all(p.isfinite().all() for p in generators["G"].parameters())


def test_bf16_mixed_precision_trains_with_finite_float32_losses(tmp_path):
    result = train(tiny("cyclegan", tmp_path / "run", **{"train.mixed_precision": "bf16"}))
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert result.step == 2 and all(torch.isfinite(torch.tensor(r["G_A"])) for r in log if "G_A" in r)


def _write_yaml(cfg, path: Path) -> Path:
    values = cfg.to_dict()
    values.pop("output_dir")
    path.write_text(yaml.safe_dump(values))
    return path


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop("WORLD_SIZE", None)
    return env


def test_sigterm_saves_a_loadable_checkpoint_and_exits_0(tmp_path):
    cfg = tiny("pix2pix", tmp_path / "run", **{"train.max_steps": 100000})
    config = _write_yaml(cfg, tmp_path / "tiny.yaml")
    run = tmp_path / "run"
    cmd = [sys.executable, str(ROOT / "train.py"), "--config", str(config), "--output-dir", str(run)]
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while not (run / "log.jsonl").is_file() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert (run / "log.jsonl").is_file(), proc.communicate()[0]
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    assert "stopped (signal)" in out and "python app.py --checkpoint" in out
    state = latest_state(run)
    assert state is not None and state.name.startswith("step_")
    generators, config = load_pretrained(run)
    assert config["step"] == int(state.name.split("_")[1]) >= 1 and "G" in generators


# train.py, plus: after each save, every rank writes the weights it holds to <folder>/rank_<i>.safetensors
PER_RANK_WEIGHTS = """
import sys
from pathlib import Path

from safetensors.torch import save_file

import ponogan.training.loop as loop
from ponogan.cli.train import main

real_save = loop._Run.save


def save(self, elapsed):
    real_save(self, elapsed)
    weights = {name: net.state_dict() for name, net in self.state.nets.items()}
    extra = self.trainer.extra_state().get("F")  # CUT's netF: built on the first batch, saved per rank
    if extra is not None:
        weights["F"] = extra
    tensors = {
        f"{name}.{key}": value.detach().cpu().contiguous()
        for name, state in weights.items()
        for key, value in state.items()
    }
    save_file(tensors, str(Path(sys.argv[1]) / f"rank_{self.rank}.safetensors"))


loop._Run.save = save
sys.exit(main(sys.argv[2:]))
"""


def _torchrun_per_rank(tmp_path: Path, args: list[str]) -> Path:
    """``train.py args`` on 2 processes (torchrun, gloo); each rank also writes the weights it holds
    after each save (``PER_RANK_WEIGHTS``). Returns the run folder."""
    script = tmp_path / "train_per_rank.py"
    script.write_text(PER_RANK_WEIGHTS)
    run = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(script),
        str(tmp_path),
        *args,
        "--output-dir",
        str(run),
    ]
    env = {**_env(), "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return run


def _assert_ranks_agree(tmp_path: Path, run: Path, step: int) -> None:
    """Both ranks hold the weights the run saved at ``step`` (and CUT's F), though their training
    randomness differed."""
    state = run / "state" / f"step_{step:06d}"
    assert json.loads((state / "trainer_state.json").read_text())["world_size"] == 2
    ranks = [torch.load(state / f"rank_{i}.pt", weights_only=True) for i in range(2)]
    assert [r["rank"] for r in ranks] == [0, 1]
    held = [load_file(str(tmp_path / f"rank_{i}.safetensors")) for i in range(2)]
    saved = nets_of(run, step)
    assert held[0].keys() == held[1].keys() and set(saved) <= set(held[0])
    for key in held[0]:
        assert torch.equal(held[0][key], held[1][key]), key
    for key in saved:
        assert torch.equal(held[0][key], saved[key]), key
    assert not torch.equal(ranks[0]["rng"]["torch"], ranks[1]["rng"]["torch"])
    load_pretrained(run)


def test_two_process_torchrun_keeps_weights_identical(tmp_path):
    cfg = tiny("pix2pix", tmp_path / "run", **{"train.max_steps": 2, "data.batch_size": 1})
    config = _write_yaml(cfg, tmp_path / "tiny.yaml")
    run = _torchrun_per_rank(tmp_path, ["--config", str(config)])
    # the two ranks drew different training randomness (dropout, seeds), yet hold the same weights
    _assert_ranks_agree(tmp_path, run, 2)


@pytest.mark.parametrize("preset", ["cut_pono_ms_glyphs", "drit_pono_ms_glyphs", "munit_pono_ms_glyphs"])
def test_two_process_preset_keeps_weights_identical(tmp_path, preset):
    """The families whose trainers do more than one forward and backward per net on 2 processes: CUT
    (F built on the first batch, then prepared), DRIT (its generator driven through its methods, two
    Adam steps per update) and MUNIT (the auto-encoder pair behind one module). The ranks stay in
    step, CUT's F included."""
    from test_preset_matrix import overrides

    shrunk = overrides(preset, tmp_path)
    run = _torchrun_per_rank(tmp_path, ["--config", preset, *shrunk])  # 3 steps
    _assert_ranks_agree(tmp_path, run, 3)
    if preset.startswith("cut"):
        assert any(key.startswith("F.") for key in load_file(str(tmp_path / "rank_0.safetensors")))


def test_gradient_accumulation_equals_the_larger_batch(tmp_path, monkeypatch):
    """2 micro-batches of 2 accumulated give the gradients of one batch of 4 (same samples), for G and D,
    at the moment each optimizer steps (instance norms and no dropout: nothing couples the samples)."""
    seen: list[list[torch.Tensor]] = []
    adam_step = torch.optim.Adam.step

    def recording_step(self, *args, **kwargs):
        seen.append(
            [p.grad.detach().clone() for g in self.param_groups for p in g["params"] if p.grad is not None]
        )
        return adam_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", recording_step)
    exact = {
        "model.generator_kwargs.norm": "instance",
        "model.generator_kwargs.use_dropout": "false",
        "model.discriminator_kwargs.norm": "instance",
        "train.max_steps": 1,
    }
    train(tiny("pix2pix", tmp_path / "big", **exact, **{"data.batch_size": 4}))
    big, seen[:] = list(seen), []
    acc = train(
        tiny("pix2pix", tmp_path / "acc", **exact, **{"data.batch_size": 2, "optim.grad_accum_steps": 2})
    )
    meta = json.loads((tmp_path / "acc" / "state" / "step_000001" / "trainer_state.json").read_text())
    assert acc.step == 1 and (meta["epoch"], meta["batch"]) == (0, 2)  # 2 micro-batches, 1 optimizer step
    assert len(big) == len(seen) == 2  # one real D step and one real G step each
    for grads_big, grads_acc in zip(big, seen, strict=True):
        assert len(grads_big) == len(grads_acc)
        for a, b in zip(grads_big, grads_acc, strict=True):
            # float32 convolutions sum in another order for another batch size: compare whole tensors
            # (a mean over the wrong number of micro-batches would be off by 50-100%)
            assert (a - b).norm() <= 2e-3 * a.norm() + 1e-7


def test_max_minutes_stops_cleanly_with_a_checkpoint(tmp_path):
    result = train(tiny("cyclegan", tmp_path / "run", **{"train.max_steps": 1000, "train.max_minutes": 1e-6}))
    assert result.stopped_by == "max_minutes" and result.step == 1
    assert latest_state(tmp_path / "run").name == "step_000001"


def test_too_little_data_is_a_clear_error(tmp_path):
    with pytest.raises(TrainingError, match="2 items, fewer than one batch per process"):
        train(tiny("pix2pix", tmp_path / "run", **{"data.options.length": 2, "data.batch_size": 4}))
