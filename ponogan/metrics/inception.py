"""pytorch-fid's InceptionV3 (pool3, 2048-d), built from a local weight file instead of a download.

``pytorch_fid.inception.fid_inception_v3`` builds torchvision's InceptionV3 (1008 classes, no aux
logits, no default init), swaps in the TensorFlow-compatible blocks (``FIDInceptionA/C/E_1/E_2``) and
loads the ported TF weights from a URL. :func:`fid_inception_v3` does the same construction but loads
a given file, and :class:`FIDInceptionV3` chains the same blocks as ``pytorch_fid.inception.InceptionV3``
up to the final average pool, so features equal pytorch-fid's for the same weights.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from pytorch_fid.inception import FIDInceptionA, FIDInceptionC, FIDInceptionE_1, FIDInceptionE_2

from ponogan.metrics.weights import load_state_dict

FID_SIZE = 299
FID_DIMS = 2048


def fid_inception_v3(state_dict: dict[str, torch.Tensor] | None = None) -> nn.Module:
    """The FID variant of InceptionV3; loads ``state_dict`` strictly when given (random init otherwise)."""
    inception = torchvision.models.inception_v3(
        weights=None, num_classes=1008, aux_logits=False, init_weights=False
    )
    inception.Mixed_5b = FIDInceptionA(192, pool_features=32)
    inception.Mixed_5c = FIDInceptionA(256, pool_features=64)
    inception.Mixed_5d = FIDInceptionA(288, pool_features=64)
    inception.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
    inception.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
    inception.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
    inception.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
    inception.Mixed_7b = FIDInceptionE_1(1280)
    inception.Mixed_7c = FIDInceptionE_2(2048)
    if state_dict is not None:
        result = inception.load_state_dict(state_dict, strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise ValueError(
                "the FID weight file does not match pytorch-fid's InceptionV3: "
                f"missing {result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]}"
            )
    return inception


class FIDInceptionV3(nn.Module):
    """Pool3 features of the FID InceptionV3: ``(N, 3, H, W)`` in ``[0, 1]`` -> ``(N, 2048)``.

    Inputs not already 299x299 are resized bilinearly (``align_corners=False``), exactly as
    pytorch-fid's ``InceptionV3(resize_input=True)``; then scaled to ``[-1, 1]``.
    """

    def __init__(self, inception: nn.Module, weights_path: Path | None = None):
        super().__init__()
        self.weights_path = weights_path  # identifies the weights in the statistics cache key
        self.blocks = nn.Sequential(
            inception.Conv2d_1a_3x3,
            inception.Conv2d_2a_3x3,
            inception.Conv2d_2b_3x3,
            nn.MaxPool2d(kernel_size=3, stride=2),
            inception.Conv2d_3b_1x1,
            inception.Conv2d_4a_3x3,
            nn.MaxPool2d(kernel_size=3, stride=2),
            inception.Mixed_5b,
            inception.Mixed_5c,
            inception.Mixed_5d,
            inception.Mixed_6a,
            inception.Mixed_6b,
            inception.Mixed_6c,
            inception.Mixed_6d,
            inception.Mixed_6e,
            inception.Mixed_7a,
            inception.Mixed_7b,
            inception.Mixed_7c,
            nn.AdaptiveAvgPool2d(output_size=(1, 1)),
        )
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_file(cls, path: str | Path) -> FIDInceptionV3:
        """Build the network and load pytorch-fid's weight file (or any state dict with the same keys)."""
        return cls(fid_inception_v3(load_state_dict(path)), weights_path=Path(path))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"FID Inception expects (N, 3, H, W) images in [0, 1], got {tuple(x.shape)}")
        if x.shape[-2:] != (FID_SIZE, FID_SIZE):
            x = F.interpolate(x, size=(FID_SIZE, FID_SIZE), mode="bilinear", align_corners=False)
        return self.blocks(2 * x - 1).flatten(1)
