"""Per-frame heatmaps (B, T, h, w) of the IA-RED² interpreters, and the token layout they share with
the explanations (:mod:`.explanations`: raw attention, rollout, Grad-CAM, attention × gradient,
transformer attribution).

- **interpreter** (Pan et al. 2021, Sec. 3.3): each group's interpreter scores every spatiotemporal
  patch token; the combined map ``interpreter`` is the product of the groups' keep probabilities, the
  probability that a token survives every group. Full coverage: the scores come from a pass with every
  token present (:func:`interpreter_scores`), so a token an earlier group dropped still gets the score
  each later interpreter gives it (docs/design.md, Interpreter maps); what the deployed decision dropped
  is marked on the renders, not zeroed in the map.
- **random**: uniform noise, the floor every method must beat.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from einops import rearrange
from torch import Tensor, nn

__all__ = ["patch_grid", "token_map", "interpreter_scores", "interpreter_maps", "random_map"]


def patch_grid(backbone: nn.Module, x: Tensor) -> tuple[int, int]:
    """The (h, w) patch grid of ``backbone`` on clips or images ``x`` (read from its patch projection,
    which TimeSformer and timm's DeiT both name ``patch_embed.proj``)."""
    patch = backbone.patch_embed.proj.kernel_size
    return x.shape[-2] // patch[0], x.shape[-1] // patch[1]


def token_map(values: Tensor, frames: int, grid: tuple[int, int]) -> Tensor:
    """(B, N·T) per-token values in TimeSformer's ``(n t)`` order -> (B, T, h, w) per-frame maps."""
    return rearrange(values, "b (h w t) -> b t h w", t=frames, h=grid[0], w=grid[1])


def interpreter_scores(model: nn.Module, x: Tensor) -> list[Tensor]:
    """Every group's interpreter scores (B, T, N) with every token present: the IA-RED² model's forward
    with decision ``none`` (each interpreter scores the dense token state entering its group)."""
    return [group.scores for group in model(x, decision="none", active_groups=len(model.group_starts)).groups]


def interpreter_maps(scores: Sequence[Tensor], grid: tuple[int, int]) -> dict[str, Tensor]:
    """Each group's scores (B, T, N) -> ``{"interpreter_g0": ..., "interpreter": product}``, (B, T, h, w)."""
    maps = {f"interpreter_g{g}": rearrange(s.float(), "b t (h w) -> b t h w", h=grid[0])
            for g, s in enumerate(scores)}
    maps["interpreter"] = torch.stack(list(maps.values())).prod(0)
    return maps


def random_map(shape: tuple[int, ...], *, generator: torch.Generator | None = None) -> Tensor:
    """Uniform noise of ``shape`` (B, T, h, w): the chance level of the segmentation scores."""
    return torch.rand(shape, generator=generator)
