"""What is trained is what the papers trained: weight init per family (and its overrides), MUNIT's GAN
loss summed over scales, the WGAN-GP penalty in every family's D update, the official PONO-MUNIT
moment rule. Tiny nets on the built-in glyphs data; no files needed."""

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from test_train_run import TINY_LOOP, TINY_MODELS  # tests/ is on sys.path
from torch import nn

import ponogan.families.base as base
import ponogan.families.munit as munit_module
from ponogan.data import build_dataset
from ponogan.families.base import create_trainer
from ponogan.models.init import _weight
from ponogan.training import apply_overrides, from_dict, train
from ponogan.training.loop import build_accelerator
from ponogan.training.losses import GANLoss

pytestmark = pytest.mark.usefixtures("one_thread")

# the tiny nets of test_train_run, with MUNIT's three discriminator scales (its GAN loss sums over them)
MODELS = {
    **TINY_MODELS,
    "munit": {**TINY_MODELS["munit"], "discriminator_kwargs": {"ndf": 8, "n_layers": 2, "n_scales": 3}},
}
CONVS = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)


def config(family: str, run_dir: Path | None = None, shortcut: str | None = "ms", **overrides):
    values = {
        "family": family,
        "run_name": f"fidelity_{family}",
        "model": {**MODELS[family], "shortcut": shortcut},
        "data": {
            "batch_size": 2,
            "eval_batch_size": 2,
            "eval_max_items": 2,
            "options": {"image_size": 32, "length": 4, "test_jitters": 1, "paired": family == "pix2pix"},
        },
        "train": {**TINY_LOOP, "max_steps": 1, "num_samples": 1},
    }
    if run_dir is not None:
        values["output_dir"] = str(run_dir)
    return apply_overrides(from_dict(values), overrides)


def build(cfg, seed: int = 0):
    torch.manual_seed(seed)
    trainer = create_trainer(cfg, build_accelerator(cfg))
    return trainer


def batch(cfg) -> dict[str, torch.Tensor]:
    data = build_dataset("glyphs", None, "train", cfg.data.options)
    items = [data[i] for i in range(cfg.data.batch_size)]
    return {key: torch.stack([item[key] for item in items]) for key in ("A", "B")}


def layers(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, CONVS)]


def fan_in(weight: torch.Tensor) -> int:
    return nn.init._calculate_fan_in_and_fan_out(weight)[0]


def normalised(net: nn.Module, expected_std) -> torch.Tensor:
    """Every conv/linear weight divided by the std its init should give it (a function of the weight)."""
    return torch.cat([(_weight(m) / expected_std(_weight(m))).flatten() for m in layers(net)])


# ---------------------------------------------------------------- initialisation
def test_cyclegan_and_pix2pix_nets_start_as_normal_0_02_with_zero_biases():
    cyc = build(config("cyclegan"))
    model = cyc.cfg.model
    assert (model.init_type, model.init_type_d, model.init_gain) == ("normal", "normal", 0.02)
    for name, net in cyc.nets.items():
        weights = torch.cat([_weight(m).flatten() for m in layers(net)])
        assert weights.numel() > 1000, name
        assert weights.std().item() == pytest.approx(0.02, rel=0.05), name
        assert abs(weights.mean().item()) < 0.002, name
        assert all(m.bias is None or not m.bias.any() for m in layers(net)), name
    # pix2pix's U-Net uses BatchNorm: weight N(1, 0.02), bias 0 (the original init_weights)
    p2p = build(config("pix2pix"))
    bns = [m for m in p2p.nets["G"].modules() if isinstance(m, nn.BatchNorm2d)]
    gammas = torch.cat([m.weight.detach() for m in bns])
    assert gammas.numel() >= 50
    assert gammas.mean().item() == pytest.approx(1.0, abs=0.01)
    assert 0.012 < gammas.std().item() < 0.028
    assert not torch.cat([m.bias.detach() for m in bns]).any()


def test_munit_generators_start_kaiming_and_discriminators_normal_0_02():
    trainer = build(config("munit"))
    assert (trainer.cfg.model.init_type, trainer.cfg.model.init_type_d) == ("kaiming", "normal")
    pair = trainer.nets["gen"]
    for gen in (pair.gen_a, pair.gen_b):
        assert any(isinstance(m, nn.Linear) for m in layers(gen))  # the style MLP is initialised too
        z = normalised(gen, lambda w: math.sqrt(2.0 / fan_in(w)))  # kaiming-normal, fan_in, a = 0
        assert z.numel() > 5000 and z.std().item() == pytest.approx(1.0, rel=0.05)
        assert all(m.bias is None or not m.bias.any() for m in layers(gen))
    for name in ("dis_a", "dis_b"):
        weights = torch.cat([_weight(m).flatten() for m in layers(trainer.nets[name])])
        assert weights.std().item() == pytest.approx(0.02, rel=0.05), name


def test_init_override_takes_effect_and_is_recorded():
    cfg = config("cyclegan", **{"model.init_type": "xavier", "model.init_gain": 1.0})
    assert cfg.to_dict()["model"]["init_type"] == "xavier" and cfg.model.init_type_d == "normal"
    trainer = build(cfg)
    for name in ("G_A", "G_B"):
        # xavier-normal: std = gain * sqrt(2 / (fan_in + fan_out))
        z = normalised(
            trainer.nets[name], lambda w: math.sqrt(2.0 / sum(nn.init._calculate_fan_in_and_fan_out(w)))
        )
        assert z.std().item() == pytest.approx(1.0, rel=0.05), name
    d_weights = torch.cat([_weight(m).flatten() for m in layers(trainer.nets["D_A"])])
    assert d_weights.std().item() == pytest.approx(1.0, rel=0.05)  # D keeps normal, with the shared gain 1
    with pytest.raises(ValueError, match="valid values: normal, xavier, kaiming, orthogonal, default"):
        config("cyclegan", **{"model.init_type": "gaussian"})


def test_seeded_init_is_reproducible_and_differs_from_pytorch_default():
    cfg = config("cyclegan", shortcut="dms", **{"model.init_type": "orthogonal"})
    first, again, other = build(cfg, seed=3), build(cfg, seed=3), build(cfg, seed=4)
    plain = build(
        config("cyclegan", shortcut="dms", **{"model.init_type": "default", "model.init_type_d": "default"}),
        seed=3,
    )
    for name, net in first.nets.items():
        state, same = net.state_dict(), again.nets[name].state_dict()
        assert all(torch.equal(state[k], same[k]) for k in state), name
        assert any(not torch.equal(state[k], v) for k, v in other.nets[name].state_dict().items()), name
        assert any(not torch.equal(state[k], v) for k, v in plain.nets[name].state_dict().items()), name
    # DMS still starts exactly as MS: its last conv is zero after the init
    dms = [m for m in first.nets["G_A"].modules() if type(m).__name__ == "DynamicMomentShortcut"]
    assert dms and all(not m.net[2].weight.any() for m in dms)


def test_saved_run_config_records_the_concrete_init(tmp_path):
    cfg = config(
        "munit", tmp_path / "run", **{"model.init_type": "null", "model.discriminator_kwargs.n_scales": 1}
    )
    train(cfg)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())["train"]["model"]
    assert (saved["init_type"], saved["init_type_d"], saved["init_gain"]) == ("kaiming", "normal", 0.02)


# ---------------------------------------------------------------- loss balance
def test_munit_gan_loss_is_summed_over_the_discriminator_scales():
    trainer = build(config("munit"))
    x = batch(trainer.cfg)["A"]
    with torch.no_grad():
        scores = trainer.nets["dis_a"](x)
    assert len(scores) == 3
    for real, for_d in ((True, True), (False, True), (True, False)):
        expected = sum(GANLoss("lsgan")(s, real, for_discriminator=for_d) for s in scores)
        torch.testing.assert_close(trainer.gan_loss(scores, real, for_discriminator=for_d), expected)
    same = [torch.full((2, 1, 2, 2), 0.25)] * 3
    assert trainer.gan_loss(same, True).item() == pytest.approx(3 * GANLoss("lsgan")(same, True).item())
    assert build(config("cyclegan")).gan_loss.scale_reduction == "mean"


@pytest.mark.parametrize(
    "family, keys",
    [("pix2pix", ["D_gp"]), ("cyclegan", ["D_A_gp", "D_B_gp"]), ("munit", ["D_A_gp", "D_B_gp"])],
)
def test_wgangp_logs_a_positive_penalty_per_discriminator(tmp_path, family, keys):
    overrides = {"loss.gan_mode": "wgangp"}
    if family == "munit":
        overrides["model.discriminator_kwargs.n_scales"] = 2
    cfg = config(family, tmp_path / "run", **overrides)
    assert cfg.loss.gp == 10.0
    train(cfg)
    record = json.loads((tmp_path / "run" / "log.jsonl").read_text().splitlines()[0])
    assert [k for k in record if "gp" in k] == keys
    assert all(math.isfinite(record[k]) and record[k] > 0 for k in keys)
    plain = config(family)
    assert plain.loss.gan_mode != "wgangp" and not build(plain).uses_gradient_penalty


def _spy_on_penalty(monkeypatch) -> list[torch.Tensor]:
    captured = []
    real = base.gradient_penalty

    def spy(*args, **kwargs):
        captured.append(real(*args, **kwargs))
        return captured[-1]

    monkeypatch.setattr(base, "gradient_penalty", spy)
    return captured


def test_wgangp_penalty_is_in_the_pix2pix_discriminator_gradient(monkeypatch):
    cfg = config("pix2pix", **{"loss.gan_mode": "wgangp", "loss.gp": 5.0})
    trainer = build(cfg)
    trainer.prepare()
    captured = _spy_on_penalty(monkeypatch)
    checked = {}
    original = trainer.update

    def update(name, loss):
        if name == "D":
            params = list(trainer.nets["D"].parameters())
            penalty = 5.0 * captured[-1]
            # (the last conv's bias cannot change a gradient w.r.t. the input: zero, not unused)
            g_penalty = torch.autograd.grad(
                penalty, params, retain_graph=True, allow_unused=True, materialize_grads=True
            )
            g_rest = torch.autograd.grad(loss - penalty, params, retain_graph=True)
            trainer.accelerator.backward(loss)
            checked["sum"] = all(
                torch.allclose(p.grad, a + b, atol=1e-6)
                for p, a, b in zip(params, g_penalty, g_rest, strict=True)
            )
            checked["penalty_norm"] = sum(g.norm() for g in g_penalty).item()
            trainer.optimizers["D"].step()
            trainer.optimizers["D"].zero_grad(set_to_none=True)
        else:
            original(name, loss)

    monkeypatch.setattr(trainer, "update", update)
    losses = trainer.step(batch(cfg))
    assert len(captured) == 1 and captured[0].dtype == torch.float32
    assert losses["D_gp"] == pytest.approx(5.0 * captured[0].item(), rel=1e-6) and losses["D_gp"] > 0
    assert checked["sum"] and checked["penalty_norm"] > 0


def test_wgangp_penalty_is_float32_under_bf16_autocast(monkeypatch):
    cfg = config("cyclegan", **{"loss.gan_mode": "wgangp", "train.mixed_precision": "bf16"})
    trainer = build(cfg)
    trainer.prepare()
    captured = _spy_on_penalty(monkeypatch)
    losses = trainer.step(batch(cfg))
    assert len(captured) == 2 and all(gp.dtype == torch.float32 and gp.isfinite() for gp in captured)
    assert losses["D_A_gp"] > 0 and losses["D_B_gp"] > 0


def _capture_latent(monkeypatch) -> list[tuple]:
    calls = []
    real = munit_module.latent_reconstruction_loss

    def spy(recon, target, **kwargs):
        calls.append((recon, target))
        return real(recon, target, **kwargs)

    monkeypatch.setattr(munit_module, "latent_reconstruction_loss", spy)
    return calls


def _step_with_latent_spy(monkeypatch, cfg) -> tuple[dict[str, float], list[tuple]]:
    trainer = build(cfg)
    trainer.prepare()
    calls = _capture_latent(monkeypatch)
    losses = trainer.step(batch(cfg))
    assert len(calls) == 2  # A -> B and B -> A re-encodings
    return losses, calls


def _moment_l1s(recon: tuple, target: tuple) -> list[float]:
    """One L1 per moment map (mean and std of every PONO level), by hand."""
    return [
        F.l1_loss(a, b).item()
        for pr, pt in zip(recon[1], target[1], strict=True)
        for a, b in zip(pr, pt, strict=True)
    ]


def test_munit_official_moment_rule_sums_moment_l1s_into_the_content_term(monkeypatch):
    cfg = config("munit", **{"loss.content": 2.0})
    assert cfg.loss.moments is None
    losses, calls = _step_with_latent_spy(monkeypatch, cfg)
    assert "recon_moments" not in losses
    expected = 0.0
    for recon, target in calls:
        assert len(target[1]) == 3  # PONO at three levels, each a (mean, std) pair: 6 maps
        expected += F.l1_loss(recon[0], target[0]).item() + sum(_moment_l1s(recon, target))
    assert losses["recon_content"] == pytest.approx(2.0 * expected, rel=1e-5)

    # a number keeps the older rule: content alone, moment L1s averaged with their own weight
    losses, calls = _step_with_latent_spy(monkeypatch, config("munit", **{"loss.moments": 3.0}))
    content = sum(F.l1_loss(recon[0], target[0]).item() for recon, target in calls)
    moments = sum(sum(_moment_l1s(recon, target)) / 6 for recon, target in calls)
    assert losses["recon_content"] == pytest.approx(content, rel=1e-5)
    assert losses["recon_moments"] == pytest.approx(3.0 * moments, rel=1e-5)
