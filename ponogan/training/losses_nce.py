"""CUT's PatchNCE loss (Park et al., "Contrastive Learning for Unpaired Image-to-Image Translation",
ECCV 2020): a patch of the generated image should match the input patch at the same position
(positive) and not the other input patches (negatives).

- :func:`patch_nce_loss`: one tap. Query ``q`` and key ``k``, both ``(N, P, D)`` and L2-normalised
  (``PatchSampleF``'s output at the same positions), key detached. For image n and patch i the
  logits are ``[q_i . k_i, q_i . k_j for j != i] / T`` (negatives from the same image only; the
  diagonal of the ``P x P`` similarity matrix is set to -10, i.e. ``exp(-10 / T)`` ~ 0, which keeps
  the matrix square), and the loss is the cross-entropy with the positive as the target: ``(N, P)``.
- :func:`multilayer_nce_loss`: ``lambda_nce * mean over patches``, averaged over the taps.
- :func:`cut_nce_loss`: the whole term from images: query taps from G's encoder on the generated
  image, key taps from G's encoder on the source image, F applied to the key first (drawing the
  positions) and then to the query at the same positions.

Every function takes tensors (and the networks) and returns a tensor; nothing is stored between calls.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

NCE_TEMPERATURE = 0.07
"""CUT's ``--nce_T``."""

DIAGONAL_LOGIT = -10.0
"""The similarity put on a patch's comparison with its own key among the negatives (official value)."""


def patch_nce_loss(
    query: torch.Tensor,
    key: torch.Tensor,
    *,
    temperature: float = NCE_TEMPERATURE,
    negatives_from_batch: bool = False,
) -> torch.Tensor:
    """Per-patch PatchNCE loss of one tap: ``query, key (N, P, D) -> (N, P)`` (see the module docstring).

    ``negatives_from_batch=True`` takes the negatives from every image of the batch (CUT's
    ``--nce_includes_all_negatives_from_minibatch``, for single-image training, whose batch is crops
    of one image): the similarity matrix is then ``N*P x N*P``.
    """
    if query.dim() != 3 or query.shape != key.shape:
        raise ValueError(
            f"patch_nce_loss needs query and key of the same shape (N, P, D), got "
            f"{tuple(query.shape)} and {tuple(key.shape)}"
        )
    key = key.detach()
    n, p, d = query.shape
    positive = (query * key).sum(dim=-1).reshape(-1, 1)  # (N*P, 1)
    groups = (1, n * p, d) if negatives_from_batch else (n, p, d)
    q, k = query.reshape(groups), key.reshape(groups)
    negatives = q @ k.transpose(1, 2)  # (G, M, M): q_i . k_j within each group
    own = torch.eye(groups[1], dtype=torch.bool, device=query.device)
    negatives = negatives.masked_fill(own, DIAGONAL_LOGIT).reshape(n * p, groups[1])
    logits = torch.cat([positive, negatives], dim=1) / temperature
    target = torch.zeros(n * p, dtype=torch.long, device=query.device)  # the positive is column 0
    return F.cross_entropy(logits, target, reduction="none").reshape(n, p)


def multilayer_nce_loss(
    queries: Sequence[torch.Tensor],
    keys: Sequence[torch.Tensor],
    *,
    lambda_nce: float = 1.0,
    temperature: float = NCE_TEMPERATURE,
    negatives_from_batch: bool = False,
) -> torch.Tensor:
    """``mean over taps of (lambda_nce * mean over patches of patch_nce_loss)``: a scalar.

    ``queries[l]``, ``keys[l]``: ``(N, P_l, D)`` for tap l (the outputs of ``PatchSampleF``).
    """
    if not queries or len(queries) != len(keys):
        raise ValueError(f"need one key per query tap, got {len(queries)} queries and {len(keys)} keys")
    per_tap = [
        patch_nce_loss(q, k, temperature=temperature, negatives_from_batch=negatives_from_batch).mean()
        for q, k in zip(queries, keys, strict=True)
    ]
    return torch.stack(per_tap).mean() * lambda_nce


def cut_nce_loss(
    netG: nn.Module,
    netF: nn.Module,
    source: torch.Tensor,
    generated: torch.Tensor,
    taps: Sequence[str],
    *,
    num_patches: int = 256,
    lambda_nce: float = 1.0,
    temperature: float = NCE_TEMPERATURE,
    negatives_from_batch: bool = False,
    flipped: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """CUT's NCE term between ``source`` and ``generated = G(source)``, both ``(N, C, H, W)``: a scalar.

    ``netG`` needs ``encode_taps(x, taps)`` (``ResnetGenerator``), ``netF`` is a ``PatchSampleF``.
    ``flipped``: ``generated`` came from the horizontally flipped source (FastCUT's flip
    equivariance), so its taps are flipped back before they are compared with the source's.
    ``generator`` seeds the patch positions.

    NOTE: the key pass (G's encoder and F on ``source``) runs under ``torch.no_grad``. The official
    code runs it with autograd and detaches the key after F, so neither G nor F gets a gradient
    from it either way; skipping the graph only saves memory.
    """
    with torch.no_grad():
        key_taps = list(netG.encode_taps(source, taps).values())
        keys, ids = netF(key_taps, num_patches, generator=generator)
    query_taps = list(netG.encode_taps(generated, taps).values())
    if flipped:
        query_taps = [torch.flip(t, dims=[3]) for t in query_taps]
    queries, _ = netF(query_taps, num_patches, patch_ids=ids)
    return multilayer_nce_loss(
        queries,
        keys,
        lambda_nce=lambda_nce,
        temperature=temperature,
        negatives_from_batch=negatives_from_batch,
    )
