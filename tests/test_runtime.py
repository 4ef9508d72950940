"""Device ``auto``; precision from the command line, then accelerate's configuration, then the device."""

from __future__ import annotations

import json

import pytest
import torch

from ponogan.core import runtime
from ponogan.core.messages import UsageError
from ponogan.training import from_dict
from ponogan.training.batch_order import data_workers
from ponogan.training.errors import TrainingError
from ponogan.training.loop import build_accelerator, resolve_runtime


@pytest.fixture
def no_accelerate_config(monkeypatch, tmp_path):
    """No ACCELERATE_MIXED_PRECISION and no accelerate config file."""
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    monkeypatch.setattr(
        "accelerate.commands.config.config_args.default_config_file", str(tmp_path / "none.yaml")
    )
    return tmp_path


def test_auto_device_prefers_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert runtime.resolve_device("auto") == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert runtime.resolve_device(None) == "mps"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert runtime.resolve_device("auto") == "cpu"
    with pytest.raises(ValueError, match="'mps' was requested but MPS is not available here"):
        runtime.resolve_device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert runtime.resolve_device("cuda:1") == "cuda:1"  # a named device passes through once available


@pytest.mark.parametrize(
    ("device", "words"),
    [
        ("bogus", "unknown device 'bogus'"),
        ("cuda:x", "unknown device"),
        ("meta", "not one ponogan runs on"),
        ("cpu:1", "'cpu:1' does not exist"),
        ("cuda:2", "'cuda:2' does not exist: this machine has 2 CUDA device(s), cuda:0 to cuda:1"),
    ],
)
def test_bad_device_names_are_one_usage_line(monkeypatch, device, words):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(UsageError) as caught:
        runtime.resolve_device(device)
    assert words in str(caught.value) and "\n" not in str(caught.value)
    assert "cuda:N" in str(caught.value) or "does not exist" in str(caught.value)


def test_precision_order(monkeypatch, no_accelerate_config):
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: False)
    assert runtime.resolve_mixed_precision(None, "cpu") == ("no", "default for cpu")
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: True)
    assert runtime.resolve_mixed_precision(None, "cpu") == ("bf16", "default for cpu")
    config_file = no_accelerate_config / "default_config.yaml"
    config_file.write_text("compute_environment: LOCAL_MACHINE\nmixed_precision: fp16\n")
    monkeypatch.setattr("accelerate.commands.config.config_args.default_config_file", str(config_file))
    assert runtime.resolve_mixed_precision(None, "cuda") == ("fp16", str(config_file))  # accelerate config
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")  # accelerate launch --mixed_precision bf16
    assert runtime.resolve_mixed_precision(None, "cuda") == ("bf16", "ACCELERATE_MIXED_PRECISION")
    assert runtime.resolve_mixed_precision("no", "cuda") == ("no", "config")  # the command line wins


def test_accelerator_takes_accelerates_precision(monkeypatch, no_accelerate_config):
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    cfg = from_dict({"train": {"device": "auto"}})
    info = resolve_runtime(cfg)
    assert info == {
        "device": "cpu",
        "mixed_precision": "bf16",
        "precision_source": "ACCELERATE_MIXED_PRECISION",
    }
    assert build_accelerator(cfg, info).mixed_precision == "bf16"
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "fp16")
    with pytest.raises(TrainingError, match="from ACCELERATE_MIXED_PRECISION.*needs a CUDA GPU"):
        resolve_runtime(cfg)


def test_data_workers_per_device():
    assert data_workers(None, torch.device("cpu"), 1) == 0
    assert data_workers(3, torch.device("cpu"), 1) == 3
    assert 1 <= data_workers(None, torch.device("cuda"), 8) <= 8


def test_run_records_the_runtime_it_used(tmp_path, monkeypatch, no_accelerate_config, capsys):
    from ponogan.training import train

    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    cfg = from_dict(
        {
            "family": "pix2pix",
            "output_dir": str(tmp_path / "run"),
            "model": {
                "generator": "unet_256",
                "generator_kwargs": {"ngf": 4, "num_downs": 5},
                "discriminator_kwargs": {"ndf": 4, "n_layers": 1},
            },
            "data": {"batch_size": 2, "eval_max_items": 4, "options": {"image_size": 32, "length": 8}},
            "train": {"max_steps": 1, "save_every": 0, "sample_every": 0, "num_samples": 2},
        }
    )
    train(cfg)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["runtime"]["mixed_precision"] == "bf16" and saved["runtime"]["device"] == "cpu"
    assert saved["train"]["train"]["device"] == "auto" and saved["train"]["train"]["mixed_precision"] is None
    err = capsys.readouterr().err
    assert "precision bf16 (ACCELERATE_MIXED_PRECISION)" in err and "params   G " in err
