"""Attention rollout (Abnar & Zuidema, ACL 2020) defined for TimeSformer's divided space-time attention.

Rollout treats each attention layer as a token-to-token mixing matrix ``A`` over the sequence, adds
the residual connection (``A + I``), renormalises the rows, and multiplies the layers:
``R = Â_L ··· Â_1``. Row 0 of ``R`` says how much of the final CLS token flows from each input token.

A divided block mixes tokens twice, so here it contributes two matrices over the ``1 + N·T`` tokens
(CLS first, then patches in TimeSformer's ``(n t)`` order, token ``1 + n·T + t``), heads averaged:

- **temporal step** ``A_t``: patch (n, t) attends to (n, t') of its own location; CLS takes no part,
  so its row is zero and becomes the identity after the residual;
- **spatial step** ``A_s``: patch (n, t) attends to the CLS copy of frame t and to (n', t); the CLS
  token's row is the mean over the T frames of its copies' rows (the block averages their outputs),
  so CLS→CLS = mean_t a_t(CLS, CLS) and CLS→(n', t) = a_t(CLS, n') / T.

The block's matrix is ``Â_s Â_t`` (temporal runs first) and ``R = Â_s^L Â_t^L ··· Â_s^1 Â_t^1``.
The MLP and ``temporal_fc`` act per token and mix nothing, so they are left out as in the original.
Joint space-time attention and images (DeiT) have one matrix per block: the attention itself.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from einops import rearrange
from torch import Tensor

__all__ = ["temporal_step", "spatial_step", "with_residual", "cls_rollout"]


def temporal_step(weights: Tensor) -> Tensor:
    """(B, N, T, T) temporal attention of every location -> (B, 1+N·T, 1+N·T), CLS row zero."""
    batch, locations, frames, _ = weights.shape
    eye = torch.eye(locations, dtype=weights.dtype, device=weights.device)
    out = weights.new_zeros(batch, 1 + locations * frames, 1 + locations * frames)
    out[:, 1:, 1:] = rearrange(torch.einsum("bnij,nm->bnimj", weights, eye), "b n i m j -> b (n i) (m j)")
    return out


def spatial_step(weights: Tensor) -> Tensor:
    """(B, T, 1+N, 1+N) spatial attention of every frame (its CLS copy first) -> (B, 1+N·T, 1+N·T)."""
    batch, frames, length, _ = weights.shape
    locations = length - 1
    eye = torch.eye(frames, dtype=weights.dtype, device=weights.device)
    out = weights.new_zeros(batch, 1 + locations * frames, 1 + locations * frames)
    patches = torch.einsum("btnm,ts->bntms", weights[:, :, 1:, 1:], eye)
    out[:, 1:, 1:] = rearrange(patches, "b n t m s -> b (n t) (m s)")
    out[:, 1:, 0] = rearrange(weights[:, :, 1:, 0], "b t n -> b (n t)")
    out[:, 0, 1:] = rearrange(weights[:, :, 0, 1:], "b t n -> b (n t)") / frames
    out[:, 0, 0] = weights[:, :, 0, 0].mean(1)
    return out


def with_residual(mixing: Tensor) -> Tensor:
    """(B, L, L) -> ``A + I`` with rows normalised to sum to 1."""
    mixed = mixing + torch.eye(mixing.shape[-1], dtype=mixing.dtype, device=mixing.device)
    return mixed / mixed.sum(-1, keepdim=True)


def cls_rollout(steps: Sequence[Tensor], *, normalise: bool = True) -> Tensor:
    """Row 0 of ``Â_K ··· Â_1`` for the (B, L, L) mixing matrices ``steps`` in forward order -> (B, L).

    The residual is added here: ``Â = A + I`` with rows renormalised (rollout), or as it is with
    ``normalise=False`` (relevance accumulation R ← R + Ā R of transformer attribution). Computed as
    ``e_0ᵀ Â_K ··· Â_1`` with vector-matrix products, so the cost is K·L² per sample instead of the
    K·L³ of the full product.
    """
    if not steps:
        raise ValueError("rollout needs at least one attention step")

    def residual(step: Tensor) -> Tensor:
        if normalise:
            return with_residual(step)
        return step + torch.eye(step.shape[-1], dtype=step.dtype, device=step.device)

    row = residual(steps[-1])[:, 0:1]                               # (B, 1, L)
    for step in reversed(steps[:-1]):
        row = row @ residual(step)
    return row[:, 0]
