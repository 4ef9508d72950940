"""LPIPS (Zhang et al. 2018) through the ``lpips`` package, with its backbone read from a local file.

``lpips.LPIPS`` ships its calibrated linear layers in the wheel but fetches the torchvision backbone
(``alexnet-owt-7be5be79.pth`` for the default AlexNet) from the internet. Here the model is built with
``pnet_rand=True`` (no download) and the backbone's ``features.<i>`` tensors are copied into the
package's ``net.slice<k>.<i>`` modules from the located file.

Resize rule: distances are taken at the fake's (generator's) resolution; a target of another size is
resized to it (bicubic, antialiased) first.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import torch

from ponogan.metrics.paired import match_pair
from ponogan.metrics.weights import LPIPS_BACKBONES, load_state_dict, locate_weights


def load_lpips(
    net: str = "alex", weights: str | Path | None = None, device: str | torch.device = "cpu"
) -> torch.nn.Module:
    """An evaluation-mode ``lpips.LPIPS(net=net)`` whose backbone comes from ``weights`` or the hub cache.

    Raises :class:`~ponogan.metrics.weights.MissingWeightsError` before building anything when the
    backbone file is absent; never downloads.
    """
    if net not in LPIPS_BACKBONES:
        raise ValueError(f"unknown LPIPS backbone {net!r}; valid: {', '.join(LPIPS_BACKBONES)}")
    path = locate_weights(LPIPS_BACKBONES[net], weights)
    state = load_state_dict(path)
    import lpips

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # torchvision's 'pretrained is deprecated' from inside lpips
        model = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)
    # torchvision ``features.<i>.<param>`` -> lpips ``net.slice<k>.<i>.<param>`` for every trunk tensor
    mapping = {f"features.{name.split('.', 1)[1]}": name for name, _ in model.net.named_parameters()}
    missing = [k for k in mapping if k not in state]
    if missing:
        raise ValueError(f"{path} is not a torchvision {net} state dict: missing {missing[:4]}")
    model.net.load_state_dict({mapping[k]: state[k] for k in mapping}, strict=True)
    return model.requires_grad_(False).eval().to(device)


def _three_channels(x: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 3:
        return x
    if x.shape[1] == 1:
        return x.expand(-1, 3, -1, -1)
    raise ValueError(f"LPIPS needs 1- or 3-channel images, got {x.shape[1]} channels")


@torch.no_grad()
def lpips_per_image(model: torch.nn.Module, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """LPIPS distance ``(N,)`` between ``(N, C, H, W)`` batches in ``[-1, 1]`` (C = 1 or 3)."""
    fake, real = match_pair(fake, real)
    param = next(model.parameters())
    fake = _three_channels(fake).to(param.device, param.dtype)
    real = _three_channels(real).to(param.device, param.dtype)
    return model(fake, real).flatten()


def lpips_distance(model: torch.nn.Module, fake: torch.Tensor, real: torch.Tensor) -> float:
    """Mean LPIPS distance of a batch of pairs."""
    return float(lpips_per_image(model, fake, real).double().mean())
