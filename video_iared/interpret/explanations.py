"""Explanations of a dense backbone's decision, from one forward and one backward pass: raw attention,
rollout, Grad-CAM, attention × gradient and transformer attribution, as per-frame maps (B, T, h, w).

One small generator in the manner of Chefer et al. (CVPR 2021): every attention map is read from the
blocks with :func:`~video_iared.models.layers.capture_attention` (the model's own weights, in the
autograd graph), their gradients and that of the tokens entering the last block with one
``torch.autograd.grad`` of the explained logit (the predicted class unless ``target`` is given), and
each method is a short formula over them:

- **raw attention**: the CLS row of block ``block``'s (spatial) attention, mean over heads.
- **rollout** (Abnar & Zuidema 2020): :func:`.rollout.cls_rollout` of the head-averaged steps.
- **Grad-CAM** (Selvaraju et al. 2017) on the patch tokens entering the last block, the feature map
  its CLS reads (the last block's own patch outputs never reach the logits): channel weights are the
  logit's gradient averaged over the tokens, the map ReLU(Σ_c w_c x_jc) (:func:`grad_cam`).
- **attention × gradient**: the CLS row of the last block's E_h[(∇A ⊙ A)⁺] (:func:`gradient_weighted`).
- **transformer attribution** (Chefer, Gur & Wolf 2021): R = I, then R ← R + Ā R for each attention
  step in forward order with Ā = E_h[(∇A ⊙ A)⁺]; the CLS row of R. Where the CVPR paper weighs each
  attention map's LRP relevance by its gradient, Ā weighs the map itself, the rule of the same authors'
  ICCV 2021 follow-up for any attention model: no layer needs a relevance rule of its own.

How attention mixes tokens, per attention type (the steps of :mod:`.rollout`, over L tokens):
divided space-time blocks have two steps each (temporal, then spatial) over the clip's ``1 + N·T``
tokens; joint space-time and images one step over them; space-only blocks one step per frame, over
that frame's own CLS and N patches, so each frame's CLS explains its own frame.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from einops import rearrange
from torch import Tensor, nn

from video_iared.models.layers import capture_attention

from .heatmaps import patch_grid, token_map
from .rollout import cls_rollout, spatial_step, temporal_step

__all__ = ["EXPLANATIONS", "grad_cam", "gradient_weighted", "attention_steps", "explanation_maps"]

EXPLANATIONS = ("raw_attention", "rollout", "grad_cam", "attention_gradient", "transformer_attribution")

HeadReduce = Callable[[str], Tensor]   # attention module name -> its (G, L, L) matrix, heads reduced


def grad_cam(features: Tensor, grads: Tensor) -> Tensor:
    """Grad-CAM over tokens: features and their gradients (B, L, C) -> (B, L) ReLU(Σ_c w_c x_lc) with
    w_c the gradient of channel c averaged over the L tokens."""
    weights = grads.mean(1, keepdim=True)                                     # (B, 1, C)
    return (features * weights).sum(-1).clamp_min(0)


def gradient_weighted(weights: Tensor, grads: Tensor) -> Tensor:
    """Attention weights and their gradients (G, h, Q, L) -> E_h[(∇A ⊙ A)⁺] (G, Q, L): the attention
    that raised the explained logit, heads averaged."""
    return (grads * weights).clamp_min(0).mean(1)


def _kind(backbone: nn.Module) -> str:
    """``divided``, ``frames`` (space-only: one sequence per frame) or ``joint`` (joint and images)."""
    attention_type = getattr(backbone, "attention_type", "image")
    return {"divided_space_time": "divided", "space_only": "frames"}.get(attention_type, "joint")


def attention_steps(kind: str, depth: int, matrix: HeadReduce, batch: int, frames: int,
                    locations: int) -> list[Tensor]:
    """The token-mixing steps of a backbone in forward order, from its attention modules' matrices
    (``matrix(name)``: (G, L, L), heads reduced) -> (S, L', L') each: S = B and L' = 1 + N·T (divided,
    joint, images), or S = B·T and L' = 1 + N (space-only)."""
    steps = []
    for i in range(depth):
        spatial = matrix(f"blocks.{i}.attn")
        if kind == "divided":
            temporal = matrix(f"blocks.{i}.temporal_attn").reshape(batch, locations, frames, frames)
            steps += [temporal_step(temporal),
                      spatial_step(spatial.reshape(batch, frames, 1 + locations, 1 + locations))]
        else:
            steps.append(spatial)
    return steps


def _cls_map(row: Tensor, kind: str, frames: int, grid: tuple[int, int]) -> Tensor:
    """A CLS row over the tokens (S, L') -> (B, T, h, w), the CLS entry dropped."""
    if kind == "frames":
        return rearrange(row[:, 1:], "(b t) (h w) -> b t h w", t=frames, h=grid[0])
    return token_map(row[:, 1:], frames, grid)


def explanation_maps(backbone: nn.Module, x: Tensor, *, block: int = -1, target: Tensor | None = None
                     ) -> dict[str, Tensor]:
    """Every method of :data:`EXPLANATIONS` on the dense ``backbone`` for normalised clips ``x``
    (B, C, T, H, W) (images: (B, C, H, W), T = 1) -> ``{name: (B, T, h, w)}``, detached.

    ``target`` (B,) classes to explain; default the backbone's prediction. Gradients are computed even
    under ``torch.no_grad``; the backbone's parameters are not touched.
    """
    kind, depth = _kind(backbone), len(backbone.blocks)
    batch, frames = x.shape[0], (x.shape[2] if x.dim() == 5 else 1)
    grid = patch_grid(backbone, x)
    checkpointing = bool(getattr(backbone, "grad_checkpointing", False))
    backbone.set_grad_checkpointing(False)     # recomputed blocks would capture their weights twice
    try:
        with torch.enable_grad(), capture_attention(backbone) as weights:
            x = x.detach().requires_grad_()        # a graph even when the parameters are frozen
            state = backbone.forward_blocks(backbone.embed(x), 0, depth - 1)
            features = state.patches                                          # (B·N·T, D), (b n t)
            logits = backbone.head(backbone.pool(backbone.forward_blocks(state, depth - 1)))
            target = logits.argmax(-1) if target is None else target.to(logits.device)
            names = list(weights)
            grads = torch.autograd.grad(logits.gather(1, target[:, None]).sum(),
                                        [features, *(weights[n] for n in names)])
    finally:
        backbone.set_grad_checkpointing(checkpointing)
    attention = {n: weights[n].detach() for n in names}
    gradient = dict(zip(names, grads[1:]))

    def averaged(name: str) -> Tensor:
        return attention[name].mean(1)

    def weighted(name: str) -> Tensor:
        return gradient_weighted(attention[name], gradient[name])

    locations = grid[0] * grid[1]
    mixing = attention_steps(kind, depth, averaged, batch, frames, locations)
    relevance = attention_steps(kind, depth, weighted, batch, frames, locations)
    last = relevance[-1]                                # the last block's (spatial) step
    raw = averaged(f"blocks.{block % depth}.attn")[:, 0]    # (B·T, 1+N) per frame, or (B, 1+N·T) joint
    patches = rearrange(features.detach(), "(b l) d -> b l d", b=batch)
    cam = grad_cam(patches, rearrange(grads[0], "(b l) d -> b l d", b=batch))   # (B, N·T), (n t) order
    return {
        "raw_attention": _cls_map(raw, "joint" if kind == "joint" else "frames", frames, grid),
        "rollout": _cls_map(cls_rollout(mixing), kind, frames, grid),
        "grad_cam": token_map(cam, frames, grid),
        "attention_gradient": _cls_map(last[:, 0], kind, frames, grid),
        "transformer_attribution": _cls_map(cls_rollout(relevance, normalise=False), kind, frames, grid),
    }
