"""The DRIT family: the 3:1 content-D schedule, exact resume across it, the latent-regression gradient
kept off the attribute encoders, and the config checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator
from safetensors.torch import load_file

from ponogan.families.base import create_trainer
from ponogan.training import apply_overrides, from_dict, train
from ponogan.training.config import ConfigError

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(run_dir: Path, **overrides):
    values = {
        "family": "drit",
        "run_name": "tiny_drit",
        "output_dir": str(run_dir),
        # the fork's topology at small widths (the paper's counts are tests/test_models_drit.py's)
        "model": {
            "shortcut": "ms",
            "generator_kwargs": {"dim": 4, "n_res": 1},
            "discriminator_kwargs": {"ndf": 4, "n_layers": 3, "n_scales": 2},
        },
        "data": {
            "batch_size": 2,
            "eval_batch_size": 2,
            "eval_max_items": 2,
            "options": {"image_size": 100, "length": 6, "test_jitters": 1, "paired": False},
        },
        "train": {"max_steps": 4, "save_every": 0, "sample_every": 0, "eval_every": 0, "log_every": 1},
    }
    return apply_overrides(from_dict(values), overrides)


def nets_of(run_dir: Path, step: int) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "state" / f"step_{step:06d}" / "nets.safetensors"))


@pytest.mark.slow
def test_content_d_schedule_and_exact_resume(tmp_path):
    """4 steps with the content D 3x per generator update: steps 1, 2 and 4 update only D_c, step 3
    everything; stopping at 2 and resuming must land on the same weights (the counter is restored)."""
    train(tiny(tmp_path / "full"))
    train(tiny(tmp_path / "part", **{"train.stop_at_step": 2}))
    train(tiny(tmp_path / "part", **{"train.resume": True}))
    full, resumed = nets_of(tmp_path / "full", 4), nets_of(tmp_path / "part", 4)
    assert full.keys() == resumed.keys()
    for key in full:
        assert torch.equal(full[key], resumed[key]), key
    mid = nets_of(tmp_path / "part", 2)
    changed = {k.split(".")[0] for k in mid if not torch.equal(mid[k], resumed[k])}
    assert changed == {"gen", "dis_a", "dis_a2", "dis_b", "dis_b2", "dis_c"}
    log = [json.loads(line) for line in (tmp_path / "part" / "log.jsonl").read_text().splitlines()]
    keys = {r["step"]: set(r) - {"step", "epoch", "lr", "time_s"} for r in log if "eval" not in r}
    assert keys[1] == keys[2] == keys[4] == {"D_content"}
    assert {"G_A", "G_content", "latent_a", "cross_cycle", "self_recon", "kl_attr", "D_A2"} <= keys[3]
    # the run folder holds the generator side for inference
    assert (tmp_path / "full" / "model.safetensors").is_file()


def test_random_code_loss_steps_content_encoder_and_generators_only(tmp_path):
    cfg = tiny(tmp_path / "run", **{"optim.weight_decay": 0.0})
    trainer = create_trainer(cfg, Accelerator(cpu=True))
    gen = trainer.nets["gen"]
    parts = {"enc_c": gen.enc_c, "enc_a": gen.enc_a_a, "G": gen.gen_b}
    before = {k: [p.detach().clone() for p in m.parameters()] for k, m in parts.items()}
    total = sum(p.sum() for m in parts.values() for p in m.parameters())
    trainer.two_step_update(0.0 * total, total)
    moved = {
        k: any(not torch.equal(a, p) for a, p in zip(before[k], m.parameters(), strict=True))
        for k, m in parts.items()
    }
    assert moved == {"enc_c": True, "enc_a": False, "G": True}


@pytest.mark.parametrize(
    "override, words",
    [
        ({"data.batch_size": 3}, "even"),
        ({"data.options.image_size": 64}, "at least 100"),
        ({"model.shortcut": "dms"}, "shortcut"),
        ({"loss.content_updates": 0}, "content_updates"),
        ({"loss.gan_mode": "lsgan"}, "vanilla"),
        ({"optim.grad_accum_steps": 2}, "grad_accum_steps"),
    ],
)
def test_config_checks(tmp_path, override, words):
    with pytest.raises(ConfigError, match=words):
        tiny(tmp_path / "run", **override)


def test_concat_1_trains_saves_and_translates(tmp_path):
    """``concat 1`` (the VAE attribute encoders, generators sharing a block): 3 steps reach one full
    update; the run folder (the shared block saved once) loads into a pipeline that samples codes."""
    from PIL import Image

    from ponogan.inference.pipeline import TranslationPipeline

    run = tmp_path / "run"
    train(tiny(run, **{"model.generator_kwargs": {"dim": 4, "n_res": 1, "concat": 1}, "train.max_steps": 3}))
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert any("kl_attr" in r for r in log)
    assert not any(k.startswith("gen.gen_b.shared.") for k in load_file(str(run / "model.safetensors")))
    pipe = TranslationPipeline.from_pretrained(run, device="cpu")
    outs = pipe(Image.new("RGB", (40, 36), "white"), n_styles=2, seed=1)
    assert [o.size for o in outs] == [(40, 36), (40, 36)]
