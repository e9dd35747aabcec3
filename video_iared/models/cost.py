"""What a built model costs: the analytic counter of :mod:`video_iared.flops` read through the model's
structure — its backbone's dimensions and, for IA-RED², its interpreter groups.

``flops`` stays a pure function of shapes and keep masks (``models.iared`` imports its cost proxy);
this module is where a model object meets it, for every caller that reports MACs: evaluation and its
baselines, validation during training, single-video prediction and ``video-iared flops``.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Sequence

from torch import Tensor, nn

from ..flops import keep_ratio_masks, model_macs, shape_of
from .iared import backbone_of, group_starts_of

__all__ = ["forward_macs", "model_cost_report"]


def forward_macs(model: nn.Module, clip: Tensor, keep: Sequence[Tensor] = (), *,
                 group_starts: Sequence[int] | None = None, interpreter_heads: int | None = None) -> Tensor:
    """MACs per sample (B,) float64 of one forward of ``model`` on ``clip`` (B, C, T, H, W; images
    (B, C, H, W)) that kept ``keep[g]`` (B, T, N) bool, on any device, from block ``group_starts[g]``
    on; without masks the forward is dense.

    ``model`` is a backbone or an IA-RED² model (costed through its backbone); ``group_starts`` and
    ``interpreter_heads`` default to its interpreters'. A training-free scorer passes its own (heads
    0: a free one). The token grid is the clip's, which may differ from the one the model was built for.
    """
    shape = shape_of(backbone_of(model))
    height, width = clip.shape[-2] // shape.patch_size, clip.shape[-1] // shape.patch_size
    shape = replace(shape, num_frames=clip.shape[2] if clip.dim() == 5 else 1, num_patches=height * width)
    if not keep:
        return model_macs(shape, batch=clip.shape[0])
    starts = group_starts_of(model) if group_starts is None else list(group_starts)
    heads = model.interpreters[0].num_heads if interpreter_heads is None else interpreter_heads
    return model_macs(shape, group_starts=starts, group_keep=[k.cpu() for k in keep], interpreter_heads=heads)


def model_cost_report(model: nn.Module, keep_ratio: float = 1.0, name: str = "",
                      budget: Sequence[float] = ()) -> str:
    """A short text report of a (TimeSformer, DeiT or IA-RED²) model: parameters and GFLOPs per view.

    With interpreters, ``budget`` gives the cumulative kept share after each group (a ``budget``
    decision); without it ``keep_ratio`` is the share of the remaining tokens each interpreter keeps
    (so after group g the cumulative share is keep_ratio ** (g + 1)).
    """
    backbone = backbone_of(model)
    shape = shape_of(backbone)
    starts = group_starts_of(model)
    heads = model.interpreters[0].num_heads if starts else 0
    ratios = list(budget) or [keep_ratio ** (g + 1) for g in range(len(starts))]
    macs = model_macs(shape, group_starts=starts, group_keep=keep_ratio_masks(shape, ratios),
                      interpreter_heads=heads).item()
    dense = model_macs(shape).item()
    params = sum(p.numel() for p in model.parameters())
    lines = [f"model            {name or type(backbone).__name__} "
             f"({shape.attention_type}, {shape.num_frames} frames, {shape.num_patches} patches/frame)",
             f"parameters       {params / 1e6:.2f} M",
             f"GFLOPs per view  {macs / 1e9:.2f}  (dense {dense / 1e9:.2f}, ratio {macs / dense:.3f})"]
    if starts:
        lines.append(f"interpreters     before blocks {starts}, {heads} heads, cumulative keep "
                     + ", ".join(f"{r:.3f}" for r in ratios))
    return "\n".join(lines)
