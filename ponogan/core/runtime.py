"""Where and how fast to run: device ``auto``, the precision the user's environment asks for, and the
per-device defaults of the inference commands. One home for these choices, used by training,
``ponogan translate``, ``ponogan eval`` and the app.

Precision, in order of precedence (``resolve_mixed_precision``):

1. the command line or config (``--mixed-precision``, ``train.mixed_precision``) when given;
2. accelerate's own configuration: ``ACCELERATE_MIXED_PRECISION`` (set by ``accelerate launch
   --mixed_precision ...`` and by ``accelerate launch`` from ``accelerate config``), else the
   ``mixed_precision`` of accelerate's default config file (``accelerate config``);
3. the device default: bf16 on GPUs that support it (else fp16 with accelerate's grad scaler),
   bf16 on CPUs with native bf16 instructions (AVX512-BF16 / AMX / Arm BF16), else fp32 (``no``).
"""

from __future__ import annotations

import os
import platform
from functools import lru_cache
from pathlib import Path

import torch

from ponogan.core.messages import UsageError
from ponogan.core.settings import DEVICES, MIXED_PRECISION


def resolve_device(device: str | torch.device | None = "auto") -> str:
    """``auto`` (or ``None``) -> ``cuda`` when a GPU is visible, else ``mps``, else ``cpu``; other names
    pass through (``cuda:1`` included) once ``check_device`` finds them available."""
    if device in (None, "auto"):
        if torch.cuda.is_available():
            return "cuda"
        return "mps" if torch.backends.mps.is_available() else "cpu"
    return check_device(str(device))


DEVICE_HINT = "use auto, cpu, cuda, cuda:N or mps"


def check_device(device: str) -> str:
    """``device`` if it names a device of this machine, else ``UsageError`` (a ``ValueError``, exit 2)
    with one line saying what to use: an unknown name (``bogus``), a kind ponogan does not run on
    (``meta``), a kind that is not available (CUDA on a machine without a GPU), or an index that does
    not exist (``cpu:1``, ``cuda:3`` with two GPUs)."""
    try:
        parsed = torch.device(device)
    except RuntimeError:  # torch's own message lists every device kind it knows, on one long line
        raise UsageError(f"unknown device {device!r}; {DEVICE_HINT}") from None
    kind, index = parsed.type, parsed.index
    if kind not in DEVICES:
        raise UsageError(f"device {device!r} is not one ponogan runs on; {DEVICE_HINT}")
    if (kind == "cuda" and not torch.cuda.is_available()) or (
        kind == "mps" and not torch.backends.mps.is_available()
    ):
        raise UsageError(
            f"device {device!r} was requested but {kind.upper()} is not available here; "
            "use device 'auto' or 'cpu'"
        )
    count = torch.cuda.device_count() if kind == "cuda" else 1  # one CPU device, one MPS device
    if index is not None and index >= count:
        raise UsageError(
            f"device {device!r} does not exist: this machine has {count} {kind.upper()} device(s), "
            f"{kind}:0{f' to {kind}:{count - 1}' if count > 1 else ''}"
        )
    return device


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether the CPU computes bf16 natively (x86 ``avx512_bf16``/``amx_bf16``, Arm ``bf16``); without
    it, bf16 autocast on the CPU is emulated and slower than fp32."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="ignore")
    except OSError:
        return platform.system() == "Darwin" and platform.machine() == "arm64"  # Apple M2 and later
    flags = set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            flags.update(line.split(":", 1)[-1].split())
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def default_mixed_precision(device: str) -> str:
    """The per-device precision default (see the module docstring)."""
    kind = torch.device(device).type
    if kind == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if kind == "cpu":
        return "bf16" if cpu_has_native_bf16() else "no"
    return "no"


def accelerate_mixed_precision() -> tuple[str | None, str]:
    """``(precision, where it came from)`` from accelerate's configuration, or ``(None, "")``."""
    value = os.environ.get("ACCELERATE_MIXED_PRECISION")
    if value:
        return value.lower(), "ACCELERATE_MIXED_PRECISION"
    try:
        import yaml
        from accelerate.commands.config.config_args import default_config_file
    except ImportError:
        return None, ""
    path = Path(default_config_file)
    try:
        config = yaml.safe_load(path.read_text()) if path.is_file() else None
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return None, ""
    value = config.get("mixed_precision") if isinstance(config, dict) else None
    return (str(value).lower(), str(path)) if value else (None, "")


def resolve_mixed_precision(explicit: str | None, device: str) -> tuple[str, str]:
    """``(precision, source)``: ``explicit`` if given, else accelerate's configuration, else the
    device default. ``source`` says which, for the start-of-run log and ``config.json``."""
    if explicit is not None:
        return explicit, "config"
    value, source = accelerate_mixed_precision()
    if value in MIXED_PRECISION:
        return value, source
    return default_mixed_precision(device), f"default for {torch.device(device).type}"


def default_inference_settings(device: str) -> dict:
    """``{"batch_size", "dtype"}`` for ``ponogan translate``/``eval`` on ``device``, chosen by measurement
    (bench/bench_infer.py): batch 1 on CPUs (larger batches only add memory traffic there), bf16 where
    the CPU has native bf16, else float32; batch 8 and bf16/fp16 on GPUs."""
    precision = default_mixed_precision(device)
    batch_size = {"cuda": 8, "cpu": 1}.get(torch.device(device).type, 4)
    return {"batch_size": batch_size, "dtype": "float32" if precision == "no" else precision}


def enable_tf32() -> None:
    """TF32 matmuls/convolutions on GPUs that have it (Ampere and later): fp32 training at tensor-core
    speed, as PyTorch recommends for convolutional nets."""
    if torch.cuda.is_available() and torch.cuda.get_device_capability()[0] >= 8:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
