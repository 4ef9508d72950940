"""CUT's patch sampler and projection head ``F`` (Park et al., 2020, the official ``PatchSampleF``).

For each encoder tap ``(N, C, H, W)`` it draws ``num_patches`` spatial positions (the same ones for
every image of the batch), projects the features found there with a per-tap MLP
``Linear(C, nc) -> ReLU -> Linear(nc, nc)`` and L2-normalises them (``x / (||x|| + 1e-7)``), giving
``(N, P, nc)``. The PatchNCE loss (``ponogan.training.losses_nce``) compares the query and key features taken
at the same positions, so the positions drawn for the key pass go back out to be reused for the query.
At CUT's taps (channels 3, 128, 256, 256, 256) with ``nc=256``: 560,384 parameters.

The MLPs' input widths are the taps' channel counts. Build them explicitly with
``PatchSampleF(channels)`` (or ``.build(channels)``, e.g. from ``{name: t.shape[1]}`` of one
``encode_taps`` call) before making the optimizer: an optimizer made while ``F`` is unbuilt holds
none of its parameters. Left unbuilt, ``F`` builds itself on the first ``forward`` (as the official
code does), on the features' device, and a state dict loads into an unbuilt ``F`` (its channel counts
are read from the weights' shapes).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ponogan.models.init import init_weights

L2_EPS = 1e-7
"""Added to the norm before dividing, as the official ``Normalize``: keeps zero features finite."""


def l2_normalize(x: torch.Tensor) -> torch.Tensor:
    """``x / (||x||_2 + 1e-7)`` along the last dim (the feature dim of ``(..., D)``)."""
    return x / (torch.linalg.vector_norm(x, dim=-1, keepdim=True) + L2_EPS)


class PatchSampleF(nn.Module):
    """``forward(feats, num_patches, patch_ids=None, generator=None) -> (samples, patch_ids)``.

    Args:
        channels: channel count of each tap, in tap order; ``None`` builds on the first forward.
        use_mlp: project with a 2-layer MLP per tap (CUT's ``mlp_sample``); ``False`` only samples
            and normalises (``sample``), with no parameters.
        nc: the MLPs' hidden and output width (``--netF_nc``, 256).
        init_type, init_gain: the MLPs' initialisation (CUT: xavier-normal, gain 0.02, biases 0).
    """

    def __init__(
        self,
        channels: Sequence[int] | None = None,
        *,
        use_mlp: bool = True,
        nc: int = 256,
        init_type: str = "xavier",
        init_gain: float = 0.02,
    ):
        super().__init__()
        self.use_mlp = use_mlp
        self.nc = nc
        self.init_type = init_type
        self.init_gain = init_gain
        self.channels: tuple[int, ...] | None = None
        self.mlps: nn.ModuleList | None = None
        self.register_load_state_dict_pre_hook(_build_from_state_dict)
        if channels is not None:
            self.build(channels)

    @property
    def is_built(self) -> bool:
        return self.channels is not None

    def build(self, channels: Sequence[int], *, device=None, dtype=None, init: bool = True) -> PatchSampleF:
        """Create the per-tap MLPs for taps of ``channels``; returns ``self``.

        ``init`` initialises them with ``init_type``/``init_gain`` (drawing from torch's global RNG);
        loading skips it. Building again with the same channels does nothing; other channels raise.
        """
        channels = tuple(int(c) for c in channels)
        if not channels or min(channels) < 1:
            raise ValueError(f"PatchSampleF needs one positive channel count per tap, got {channels}")
        if self.channels is not None:
            if channels != self.channels:
                raise ValueError(
                    f"PatchSampleF is built for tap channels {self.channels}, got features with {channels}"
                )
            return self
        self.channels = channels
        if self.use_mlp:
            self.mlps = nn.ModuleList(
                nn.Sequential(nn.Linear(c, self.nc), nn.ReLU(), nn.Linear(self.nc, self.nc)) for c in channels
            ).to(device=device, dtype=dtype)
            if init:
                init_weights(self.mlps, self.init_type, self.init_gain)
        return self

    def forward(
        self,
        feats: Sequence[torch.Tensor],
        num_patches: int = 256,
        patch_ids: Sequence[torch.Tensor] | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Sample and project every tap.

        Args:
            feats: one ``(N, C_l, H_l, W_l)`` feature map per tap, in the order F was built for.
            num_patches: positions drawn per tap (all of them if the map is smaller).
            patch_ids: positions to reuse, one ``(P_l,)`` long tensor of flat indices ``h * W + w``
                per tap (what a previous call returned); ``None`` draws new ones.
            generator: a CPU ``torch.Generator`` for reproducible draws (torch's global RNG if None).

        Returns:
            ``samples``: one ``(N, P_l, nc)`` tensor per tap (``(N, P_l, C_l)`` without the MLP),
            L2-normalised along the last dim; ``patch_ids``: the ``(P_l,)`` positions used (drawn
            ones are on the CPU).
        """
        if num_patches < 1:
            raise ValueError(f"num_patches must be >= 1, got {num_patches}")
        if patch_ids is not None and len(patch_ids) != len(feats):
            raise ValueError(f"got {len(patch_ids)} patch_ids for {len(feats)} feature maps")
        if not self.is_built:
            dtype = None if torch.is_autocast_enabled(feats[0].device.type) else feats[0].dtype
            self.build([f.shape[1] for f in feats], device=feats[0].device, dtype=dtype)
        self.build([f.shape[1] for f in feats])  # checks the channels match what F was built for
        samples, used = [], []
        for i, feat in enumerate(feats):
            flat = feat.flatten(2).transpose(1, 2)  # (N, H*W, C)
            ids = self._draw(flat.shape[1], num_patches, generator) if patch_ids is None else patch_ids[i]
            ids = _check_ids(ids, flat.shape[1], i)
            x = flat[:, ids.to(feat.device), :]  # (N, P, C)
            if self.mlps is not None:
                x = self.mlps[i](x)
            samples.append(l2_normalize(x))
            used.append(ids)
        return samples, used

    @staticmethod
    def _draw(positions: int, num_patches: int, generator: torch.Generator | None) -> torch.Tensor:
        """``min(num_patches, positions)`` distinct flat positions, drawn on the CPU (so a seeded
        ``generator`` gives the same ids on every device)."""
        return torch.randperm(positions, generator=generator)[: min(num_patches, positions)]

    def extra_repr(self) -> str:
        return f"channels={self.channels}, use_mlp={self.use_mlp}, nc={self.nc}"


def _check_ids(ids: torch.Tensor, positions: int, tap: int) -> torch.Tensor:
    ids = torch.as_tensor(ids, dtype=torch.long)
    if ids.dim() != 1 or ids.numel() == 0 or int(ids.min()) < 0 or int(ids.max()) >= positions:
        raise ValueError(
            f"patch_ids[{tap}] must be a non-empty 1-D tensor of positions in [0, {positions}), "
            f"got shape {tuple(ids.shape)}"
        )
    return ids


def _build_from_state_dict(module: PatchSampleF, state_dict, prefix, *args) -> None:
    """``load_state_dict`` pre-hook: build an unbuilt F from the MLP weights' shapes, without init."""
    if module.is_built or not module.use_mlp:
        return
    channels = []
    while (key := f"{prefix}mlps.{len(channels)}.0.weight") in state_dict:
        channels.append(state_dict[key].shape[1])
    if channels:
        module.build(channels, init=False)
