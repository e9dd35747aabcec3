"""Per-frame heatmaps (B, T, h, w): IA-RED² interpreter maps and the baselines they are compared with.

- **interpreter** (Pan et al. 2021, Sec. 3.3): each group's interpreter scores every spatiotemporal
  patch token; the per-group map is that score (zero where an earlier group dropped the token) and the
  combined map ``interpreter`` is the product of the groups' keep probabilities — the probability
  that a token survives every group.
- **raw attention**: the CLS row of one block's spatial step, averaged over heads (per frame, the
  attention of that frame's CLS copy to the frame's patches).
- **rollout**: attention rollout for divided attention (:mod:`.rollout`).
- **random**: uniform noise, the floor every method must beat.

Attention baselines run the dense backbone: attention over all tokens is what they explain.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from einops import rearrange
from torch import Tensor, nn

from video_iared.models.layers import Attention, group_softmax

from .rollout import cls_rollout, spatial_step, temporal_step

__all__ = ["token_map", "interpreter_maps", "capture_attention", "attention_maps", "random_map"]


def token_map(values: Tensor, frames: int, grid: tuple[int, int]) -> Tensor:
    """(B, N·T) per-token values in TimeSformer's ``(n t)`` order -> (B, T, h, w) per-frame maps."""
    return rearrange(values, "b (h w t) -> b t h w", t=frames, h=grid[0], w=grid[1])


def interpreter_maps(scores: Sequence[Tensor], grid: tuple[int, int]) -> dict[str, Tensor]:
    """Each group's scores (B, T, N) -> ``{"interpreter_g1": ..., "interpreter": product}``, (B, T, h, w)."""
    maps = {f"interpreter_g{g + 1}": rearrange(s.float(), "b t (h w) -> b t h w", h=grid[0])
            for g, s in enumerate(scores)}
    maps["interpreter"] = torch.stack(list(maps.values())).prod(0)
    return maps


def _softmax_weights(module: Attention, qkv: Tensor) -> Tensor:
    """(G, L, 3D) projected groups -> (G, L, L) softmax(q kᵀ / √d), averaged over heads."""
    q, k, _ = rearrange(qkv, "g l (three h d) -> three g h l d", three=3, h=module.num_heads).unbind(0)
    return group_softmax((q * module.scale) @ k.transpose(-2, -1), None).mean(1)


def _head_averaged_attention(module: Attention, args: tuple, kwargs: dict) -> Tensor:
    """Recompute a module's attention from its forward inputs -> (G, L, L), sequences in plan order."""
    x = args[0]
    plan = args[1] if len(args) > 1 else kwargs.get("plan")
    key_mask = args[2] if len(args) > 2 else kwargs.get("key_mask")
    if key_mask is not None or (plan is not None and plan.mask is not None):
        raise ValueError("attention baselines need the dense model (every token present, no padding)")
    qkv = module.qkv(x)
    if plan is None:
        return _softmax_weights(module, qkv if qkv.dim() == 3 else qkv[None])
    return _softmax_weights(module, plan.gather(qkv))


@contextmanager
def capture_attention(model: nn.Module) -> Iterator[dict[nn.Module, Tensor]]:
    """Record the full head-averaged attention (G, L, L) of every :class:`Attention` in ``model``.

    Forward hooks recompute the weights from each module's own projection; the forward itself is
    untouched. Keyed by module, so wrappers (an IA-RED² model around its backbone) change nothing::

        with capture_attention(model) as weights:
            model(clip)
        weights[model.blocks[3].temporal_attn]
    """
    weights: dict[nn.Module, Tensor] = {}

    def hook(module: nn.Module, args: tuple, kwargs: dict, out: Tensor) -> None:
        weights[module] = _head_averaged_attention(module, args, kwargs).detach()

    handles = [module.register_forward_hook(hook, with_kwargs=True)
               for module in model.modules() if isinstance(module, Attention)]
    try:
        yield weights
    finally:
        for handle in handles:
            handle.remove()


@torch.no_grad()
def attention_maps(backbone: nn.Module, clip: Tensor, *, block: int = -1) -> dict[str, Tensor]:
    """Raw attention of block ``block`` and rollout through all blocks, from a dense forward of
    ``backbone`` on ``clip`` (B, C, T, H, W) (images: (B, C, H, W), T = 1) -> ``{name: (B, T, h, w)}``.

    Divided attention uses both steps of every block; joint attention and images use the one
    attention of each block, whose rows are [CLS, patches in ``(n t)`` order].
    """
    batch, height, width = clip.shape[0], clip.shape[-2], clip.shape[-1]
    frames = clip.shape[2] if clip.dim() == 5 else 1
    grid = (height // backbone.patch_size, width // backbone.patch_size)
    locations = grid[0] * grid[1]
    attention_type = getattr(backbone, "attention_type", "joint_space_time")
    if attention_type == "space_only":
        raise ValueError("attention baselines are defined for divided and joint attention and images")
    with capture_attention(backbone) as weights:
        backbone(clip)
    spatial = [weights[layer.attn] for layer in backbone.blocks]
    if attention_type == "divided_space_time":
        spatial = [w.view(batch, frames, 1 + locations, 1 + locations) for w in spatial]
        steps = []
        for layer, space in zip(backbone.blocks, spatial):
            temporal = weights[layer.temporal_attn].view(batch, locations, frames, frames)
            steps += [temporal_step(temporal), spatial_step(space)]
        raw = spatial[block][:, :, 0, 1:]                                        # (B, T, N)
        raw = rearrange(raw, "b t (h w) -> b t h w", h=grid[0])
    else:
        steps = [w.view(batch, 1 + locations * frames, 1 + locations * frames) for w in spatial]
        raw = token_map(steps[block][:, 0, 1:], frames, grid)
    return {"raw_attention": raw, "rollout": token_map(cls_rollout(steps)[:, 1:], frames, grid)}


def random_map(shape: tuple[int, ...], *, generator: torch.Generator | None = None) -> Tensor:
    """Uniform noise of ``shape`` (B, T, h, w): the chance level of the segmentation scores."""
    return torch.rand(shape, generator=generator)
