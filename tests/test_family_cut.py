"""The CUT / FastCUT family: update rule, F on the first batch, exact resume, flip equivariance, modes,
PONO-MS with ``shortcut: null``, config refusals, and the official-generator import.

Tiny networks (ngf 4, one residual block, 32 px, 16 patches) keep every test under a few seconds.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from ponogan.cli import main as cli_main
from ponogan.families import get_family
from ponogan.families.base import create_trainer
from ponogan.inference.pipeline import TranslationPipeline
from ponogan.training import load_config
from ponogan.training.config import ConfigError
from ponogan.training.loop import build_accelerator, seed_everything, train
from ponogan.training.losses_nce import cut_nce_loss
from ponogan.training.presets import find_preset

TAPS = ["stem.pad", "down1.conv", "down2.conv", "block1"]
TINY = {
    "train.device": "cpu",
    "model.generator_kwargs.ngf": 4,
    "model.generator_kwargs.n_blocks": 1,
    "model.discriminator_kwargs.ndf": 4,
    "model.discriminator_kwargs.n_layers": 2,
    "loss.nce_layers": TAPS,
    "loss.num_patches": 16,
    "data.options.image_size": 32,
    "data.options.length": 8,
    "data.options.test_jitters": 1,
    "data.batch_size": 2,
    "data.eval_batch_size": 2,
    "data.eval_max_items": 2,
    "data.num_workers": 0,
    "train.num_samples": 2,
    "train.sample_every": 0,
    "train.eval_every": 0,
    "train.save_every": 0,
    "train.log_every": 1,
}


def tiny(preset: str = "cut_glyphs", **overrides):
    return load_config(find_preset(preset), {**TINY, **overrides})


def trainer_for(cfg):
    seed_everything(cfg.seed)
    trainer = create_trainer(cfg, build_accelerator(cfg))
    trainer.prepare()
    return trainer


def batch(seed: int = 0, n: int = 2, side: int = 32) -> dict:
    g = torch.Generator().manual_seed(seed)
    a, b = (torch.rand(n, 3, side, side, generator=g) * 2 - 1 for _ in range(2))
    return {"A": a, "B": b, "index": torch.arange(n)}


# --- modes and config ----------------------------------------------------------------------------------
def test_loss_weights_follow_the_mode_unless_set():
    cut, fast = tiny().loss, tiny("fastcut_glyphs").loss
    assert (cut.lambda_nce, cut.use_nce_idt, cut.use_flip) == (1.0, True, False)
    assert (fast.lambda_nce, fast.use_nce_idt, fast.use_flip) == (10.0, False, True)
    mixed = tiny("fastcut_glyphs", **{"loss.nce": 5, "loss.nce_idt": True}).loss
    assert (mixed.lambda_nce, mixed.use_nce_idt, mixed.use_flip) == (5.0, True, True)
    # the mode changed by an override after the preset still decides the unset fields
    assert tiny(**{"loss.mode": "fastcut"}).loss.lambda_nce == 10.0


def test_family_defaults_are_the_official_settings():
    cfg = load_config(find_preset("cut"))
    assert cfg.model.generator == "resnet_9blocks" and cfg.model.shortcut is None
    assert cfg.model.generator_kwargs["antialias"] and cfg.model.generator_kwargs["antialias_up"]
    assert cfg.model.discriminator_kwargs == {"ndf": 64, "n_layers": 3, "norm": "instance", "antialias": True}
    assert (cfg.model.init_type, cfg.model.init_type_d, cfg.model.init_gain) == ("xavier", "xavier", 0.02)
    assert (cfg.optim.lr_g, cfg.optim.beta1, cfg.optim.beta2, cfg.data.batch_size) == (2e-4, 0.5, 0.999, 1)
    assert cfg.loss.gan_mode == "lsgan" and cfg.loss.nce_t == 0.07 and cfg.loss.num_patches == 256
    assert cfg.loss.nce_layers == ["stem.pad", "down1.conv", "down2.conv", "block1", "block5"]
    fast = load_config(find_preset("fastcut"))
    assert (fast.train.max_steps, fast.optim.decay_start) == (266_800, 0.75)  # 150 + 50 epochs
    spec = get_family("cut")
    assert spec.roles == ("G",) and spec.directions == ("AtoB",)


def test_no_random_crop_in_the_decay_epochs():
    assert load_config(find_preset("cut")).data.options.crop_in_decay is False
    assert load_config(find_preset("cyclegan")).data.options.crop_in_decay is True


@pytest.mark.parametrize(
    "overrides, words",
    [
        ({"loss.nce_layers": ["stem.pad", "block9"]}, ["loss.nce_layers", "'block9'", "taps: stem.pad"]),
        ({"loss.nce_layers": ["block1", "block1"]}, ["loss.nce_layers", "distinct"]),
        ({"loss.nce_layers": "block1"}, ["loss.nce_layers", "list of tap names"]),
        ({"loss.mode": "slowcut"}, ["loss.mode", "cut, fastcut"]),
        ({"loss.num_patches": 0}, ["loss.num_patches", "at least 1"]),
        ({"loss.nce_t": 0}, ["loss.nce_t", "positive"]),
        ({"loss.nce": -1}, ["loss.nce", ">= 0"]),
        ({"data.options.output_nc": 1}, ["nce_idt", "input_nc == output_nc"]),
    ],
    ids=["unknown-tap", "repeated-tap", "not-a-list", "mode", "patches", "temperature", "weight", "channels"],
)
def test_bad_cut_settings_are_one_line(overrides, words):
    with pytest.raises(ConfigError) as err:
        tiny(**overrides)
    message = str(err.value)
    assert "\n" not in message and all(w in message for w in words), message


def test_a_generator_without_taps_is_refused():
    with pytest.raises(ConfigError, match="ResNet generator with encoder taps"):
        tiny(**{"model.generator": "unet_128", "model.generator_kwargs": {"ngf": 4}})


# --- the update rule -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_one_forward_then_d_then_g_and_f_with_f_built_on_the_first_batch(monkeypatch):
    trainer = trainer_for(tiny())
    order, inputs = [], []
    trainer.nets["G"].register_forward_pre_hook(lambda m, args: inputs.append(args[0].shape[0]))
    update, update_gf = trainer.update, trainer.update_g_and_f

    def spy_update(name, loss):
        assert not trainer.f_is_built  # the D step of the first batch runs before F exists
        order.append(name)
        update(name, loss)

    def spy_gf(loss):
        d_frozen = not any(p.requires_grad for p in trainer.nets["D"].parameters())
        order.append(("G+F", d_frozen))
        update_gf(loss)

    monkeypatch.setattr(trainer, "update", spy_update)
    monkeypatch.setattr(trainer, "update_g_and_f", spy_gf)
    assert not trainer.f_is_built and trainer.optimizer_F is None
    losses = trainer.step(batch())
    # one G forward of [A; B] (nce_idt); the NCE passes use encode_taps, not forward
    assert inputs == [4] and order == ["D", ("G+F", True)]
    assert set(losses) == {"G_GAN", "NCE", "NCE_Y", "D"}
    f = trainer.accelerator.unwrap_model(trainer.netF)
    assert f.channels == (3, 8, 16, 16)  # the taps' channels at ngf 4
    f_params = {id(p) for p in f.parameters()}
    assert {id(p) for g in trainer.optimizer_F.param_groups for p in g["params"]} == f_params
    before = [p.detach().clone() for p in f.parameters()]
    monkeypatch.setattr(trainer, "update", update)
    trainer.step(batch(1))
    assert all(not torch.equal(a, b) for a, b in zip(before, f.parameters(), strict=True))
    assert trainer.optimizer_F.param_groups[0]["lr"] == trainer.optimizers["G"].param_groups[0]["lr"]


def test_fastcut_flips_the_input_batch_and_has_no_identity_nce(monkeypatch):
    trainer = trainer_for(tiny("fastcut_glyphs"))
    seen = []
    trainer.nets["G"].register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    monkeypatch.setattr(trainer, "draw_flip", lambda: True)
    items = batch()
    losses = trainer.step(items)
    assert set(losses) == {"G_GAN", "NCE", "D"}
    assert torch.equal(seen[0], torch.flip(items["A"], dims=[3]))


def test_flip_equivariance_restores_the_query_layout():
    """At the ``stem.pad`` tap (reflect padding commutes with a flip) G's features of the flipped image,
    flipped back, are those of the image: the NCE of (x, flip(x)) flagged ``flipped`` equals the NCE of
    (x, x) at the same patch positions, and differs unflagged."""
    cfg = tiny("fastcut_glyphs", **{"loss.nce_layers": ["stem.pad"]})
    trainer = trainer_for(cfg)
    x = batch()["A"]
    trainer.build_f(x)
    state = trainer.patch_rng.get_state()

    def nce(generated, flipped):
        trainer.patch_rng.set_state(state)
        return trainer.nce(x, generated, flipped)

    same = nce(x, False)
    assert torch.allclose(nce(torch.flip(x, dims=[3]), True), same, atol=1e-6)
    assert not torch.allclose(nce(torch.flip(x, dims=[3]), False), same, atol=1e-3)


def test_nce_weight_per_mode():
    """FastCUT's NCE term is 10 x the unweighted PatchNCE at the same positions, CUT's 1 x."""
    for preset, weight in [("cut_glyphs", 1.0), ("fastcut_glyphs", 10.0)]:
        trainer = trainer_for(tiny(preset))
        items = batch()
        trainer.build_f(items["A"])
        state = trainer.patch_rng.get_state()
        got = trainer.nce(items["A"], items["B"], False)
        trainer.patch_rng.set_state(state)
        G = trainer.unwrap("G")
        plain = cut_nce_loss(
            G, trainer.netF, items["A"], items["B"], TAPS, num_patches=16, generator=trainer.patch_rng
        )
        assert torch.allclose(got, weight * plain, rtol=1e-6), preset


def test_pono_ms_with_shortcut_null_is_plain_cut():
    plain, ms_off = tiny(), tiny("cut_pono_ms_glyphs", **{"model.shortcut": None})
    assert ms_off.model.generator_kwargs.pop("layout") == "ponogan"
    assert dataclasses.replace(ms_off, run_name=plain.run_name) == plain
    a, b = trainer_for(tiny()), trainer_for(tiny("cut_pono_ms_glyphs", **{"model.shortcut": None}))
    for name in ("G", "D"):
        sa, sb = a.unwrap(name).state_dict(), b.unwrap(name).state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    losses = []
    for trainer in (a, b):
        torch.manual_seed(1)  # F's init on the first batch draws from torch's global RNG
        losses.append(trainer.step(batch()))
    assert losses[0] == losses[1]
    with_ms = trainer_for(tiny("cut_pono_ms_glyphs"))
    assert with_ms.unwrap("G").shortcuts is not None


# --- exact resume ---------------------------------------------------------------------------------------
def _final(run) -> tuple[dict, dict]:
    state = torch.load(run / "state" / "step_000004" / "rank_0.pt", weights_only=True)
    return load_file(str(run / "model.safetensors")), state["extra"]


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("preset", ["cut_glyphs", "fastcut_glyphs"])
def test_a_resumed_run_equals_an_uninterrupted_one(preset, tmp_path):
    """4 steps in one go vs 2 + ``--resume`` 2: the same G, F (weights and Adam state) and patch/flip
    generator, bit for bit; F did not exist in the state saved before the first batch was trained."""
    whole, split = tmp_path / "whole", tmp_path / "split"
    train(tiny(preset, **{"train.max_steps": 4, "output_dir": str(whole)}))
    train(tiny(preset, **{"train.max_steps": 4, "train.stop_at_step": 2, "output_dir": str(split)}))
    half = torch.load(split / "state" / "step_000002" / "rank_0.pt", weights_only=True)["extra"]
    assert half["F"] is not None and half["F_optimizer"]["state"]
    train(tiny(preset, **{"train.max_steps": 4, "train.resume": True, "output_dir": str(split)}))
    (g1, x1), (g2, x2) = _final(whole), _final(split)
    assert g1.keys() == g2.keys() == {f"G.{k}" for k in _g_keys(preset)}
    assert all(torch.equal(g1[k], g2[k]) for k in g1)
    assert torch.equal(x1["patch_rng"], x2["patch_rng"])
    assert all(torch.equal(x1["F"][k], x2["F"][k]) for k in x1["F"])
    for s1, s2 in zip(x1["F_optimizer"]["state"].values(), x2["F_optimizer"]["state"].values(), strict=True):
        assert all(torch.equal(s1[k], s2[k]) for k in ("exp_avg", "exp_avg_sq"))
    assert json.loads((split / "config.json").read_text())["family"] == "cut"


def _g_keys(preset: str) -> set[str]:
    return set(trainer_for(tiny(preset)).unwrap("G").state_dict())


# --- official CUT generators ----------------------------------------------------------------------------
class _OfficialDownsample(nn.Module):
    """The official ``Downsample``: reflect pad 1, depthwise [1,2,1]x[1,2,1]/16 at stride 2 (``filt``)."""

    def __init__(self, channels: int):
        super().__init__()
        row = torch.tensor([1.0, 2.0, 1.0])
        self.register_buffer("filt", (torch.outer(row, row) / 16)[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x):
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), self.filt, stride=2, groups=x.shape[1])


class _OfficialUpsample(nn.Module):
    """The official ``Upsample``: replicate pad 1, transposed depthwise conv with [1,3,3,1]^2/64 x 4,
    stride 2, padding 2, then ``[1:, 1:]`` and (even filter) ``[:-1, :-1]``."""

    def __init__(self, channels: int):
        super().__init__()
        row = torch.tensor([1.0, 3.0, 3.0, 1.0])
        self.register_buffer("filt", (torch.outer(row, row) / 16)[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x):
        y = F.conv_transpose2d(
            F.pad(x, (1, 1, 1, 1), mode="replicate"), self.filt, stride=2, padding=2, groups=x.shape[1]
        )
        return y[:, :, 1:-1, 1:-1]


class _OfficialBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        layers = [nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), nn.InstanceNorm2d(c), nn.ReLU()]
        self.conv_block = nn.Sequential(
            *layers, nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), nn.InstanceNorm2d(c)
        )

    def forward(self, x):
        return x + self.conv_block(x)


class _OfficialCutGenerator(nn.Module):
    """The official anti-aliased ResNet-9 as one ``nn.Sequential`` named ``model`` (so its state dict has
    the official keys: ``model.1`` stem conv, ``model.4/8`` down convs, ``model.7/11.filt``, blocks
    ``model.12-20``, ``model.21/25.filt``, up convs ``model.22/26``, head ``model.30``)."""

    def __init__(self, ngf: int = 8):
        super().__init__()
        IN, act = nn.InstanceNorm2d, nn.ReLU
        c1, c2, c4 = ngf, 2 * ngf, 4 * ngf
        self.model = nn.Sequential(
            *[nn.ReflectionPad2d(3), nn.Conv2d(3, c1, 7), IN(c1), act()],
            *[nn.Conv2d(c1, c2, 3, 1, 1), IN(c2), act(), _OfficialDownsample(c2)],
            *[nn.Conv2d(c2, c4, 3, 1, 1), IN(c4), act(), _OfficialDownsample(c4)],
            *[_OfficialBlock(c4) for _ in range(9)],
            *[_OfficialUpsample(c4), nn.Conv2d(c4, c2, 3, 1, 1), IN(c2), act()],
            *[_OfficialUpsample(c2), nn.Conv2d(c2, c1, 3, 1, 1), IN(c1), act()],
            *[nn.ReflectionPad2d(3), nn.Conv2d(c1, 3, 7), nn.Tanh()],
        )

    def forward(self, x):
        return self.model(x)


@pytest.mark.slow
def test_import_official_cut_generator_gives_the_official_outputs(tmp_path, capsys):
    torch.manual_seed(0)
    official = _OfficialCutGenerator().eval()
    keys = official.state_dict()
    assert {"model.7.filt", "model.11.filt", "model.21.filt", "model.25.filt", "model.30.weight"} <= set(keys)
    path = tmp_path / "latest_net_G.pth"
    torch.save(keys, path)
    out = tmp_path / "imported"
    assert cli_main(["import-official", str(path), "--arch", "cut", "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["family"] == "cut" and config["imported_from"]["arch"] == "cut"
    pipe = TranslationPipeline.from_pretrained(out, device="cpu")
    G = pipe.generators[pipe.route("AtoB").source]
    x = torch.rand(2, 3, 32, 40) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(G(x), official(x), atol=1e-5)
    capsys.readouterr()
    refused = cli_main(
        ["import-official", str(path), "--arch", "cut", "--shortcut", "ms", "--out", str(tmp_path / "x")]
    )
    assert refused == 2 and "only for the ResNet generators" in capsys.readouterr().err
    # the same file read as the plain CycleGAN ResNet does not fit, and the error says which --arch does
    assert (
        cli_main(["import-official", str(path), "--arch", "resnet_9blocks", "--out", str(tmp_path / "y")])
        == 2
    )
    assert "--arch cut" in capsys.readouterr().err
