"""Analytic multiply-accumulate counts, per sample, from kept-token masks — and fvcore to check them.

Convention (fvcore's, used by TimeSformer's and DeiT's papers): one multiply-add = one "flop"; linear
layers, convolutions and attention matmuls count ``in × out`` per token. Norms, softmax, GELU and
additions are not counted — the convention behind TimeSformer-B's 195.8 G per view and DeiT-S's 4.6 G
(fvcore's default LayerNorm handle would add ~0.1 %; ``fvcore_macs`` switches it off to match).

The counter is a pure function of the model's shape and the keep masks ``(B, T, N)`` after each
interpreter, so evaluation can average the real per-sample cost over a dataset (IA-RED2 keeps a
different number of tokens in every sample). It imports no model code (``models.iared`` imports its
``kept_share``); ``models.cost`` applies it to built models.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import torch


@dataclass(frozen=True)
class VitShape:
    """What the MAC count depends on: the backbone's dimensions and its token grid."""

    embed_dim: int
    depth: int
    num_heads: int
    mlp_ratio: float
    patch_size: int
    in_chans: int
    num_classes: int
    num_patches: int  # N per frame
    num_frames: int  # T (1 for images)
    attention_type: str  # divided_space_time | joint_space_time | space_only | image

    @property
    def mlp_hidden(self) -> int:
        return int(self.embed_dim * self.mlp_ratio)


def _attention(tokens: torch.Tensor, sq_lengths: torch.Tensor, dim: int) -> torch.Tensor:
    """qkv + attention matmuls (q·kᵀ and attn·v, summed over heads: L² · dim each) + out proj."""
    return tokens * 4 * dim * dim + 2 * sq_lengths * dim


def mlp_macs(shape: VitShape, tokens: torch.Tensor) -> torch.Tensor:
    """fc1 + fc2 on ``tokens`` tokens per sample."""
    return 2 * tokens * shape.embed_dim * shape.mlp_hidden


def kept_share(kept: torch.Tensor, num_tokens: int, spans: Sequence[int], depth: int) -> torch.Tensor:
    """Block-weighted kept share c = 1 - sum_g (1 - kept_g / N) * blocks_g / depth, per sample.

    ``kept`` (B, G) counts the patch tokens each group runs on (CLS excluded), ``num_tokens`` is N
    (T x patches per frame), ``spans`` the blocks of each group. Blocks before the first interpreter
    run all tokens, so they only enter through ``depth``.
    """
    if kept.shape[-1] != len(spans):
        raise ValueError(f"kept has {kept.shape[-1]} groups but {len(spans)} spans were given")
    weights = torch.as_tensor(spans, dtype=torch.float32, device=kept.device) / depth
    dropped = 1.0 - kept.float() / num_tokens
    return 1.0 - (dropped * weights).sum(-1)


def block_macs(shape: VitShape, keep: torch.Tensor) -> torch.Tensor:
    """MACs of one block for each sample, given its kept patch tokens ``keep`` (B, T, N) bool.

    Divided: temporal attention over the kept tokens of each location (CLS excluded) + temporal_fc,
    then spatial attention per frame over that frame's kept tokens and its copy of CLS, then the MLP
    over CLS + kept tokens. Joint / image: one sequence of CLS + kept tokens. Space-only: every frame
    is an image with its own CLS.
    """
    d = shape.embed_dim
    keep = keep.to(torch.float64)
    kept = keep.sum((1, 2))  # (B,)
    per_frame = keep.sum(2)  # (B, T)
    frames = keep.shape[1]
    if shape.attention_type == "divided_space_time":
        per_location = keep.sum(1)  # (B, N)
        temporal = _attention(kept, (per_location ** 2).sum(1), d) + kept * d * d  # + temporal_fc
        spatial_tokens = kept + frames  # each frame's tokens plus its CLS copy
        spatial = _attention(spatial_tokens, ((per_frame + 1) ** 2).sum(1), d)
        return temporal + spatial + mlp_macs(shape, kept + 1)
    if shape.attention_type in ("joint_space_time", "image"):
        tokens = kept + 1
        return _attention(tokens, tokens ** 2, d) + mlp_macs(shape, tokens)
    if shape.attention_type == "space_only":
        tokens = kept + frames
        return _attention(tokens, ((per_frame + 1) ** 2).sum(1), d) + mlp_macs(shape, tokens)
    raise ValueError(f"unknown attention_type {shape.attention_type!r}")


def interpreter_macs(shape: VitShape, kept: torch.Tensor, num_heads: int) -> torch.Tensor:
    """One multi-head interpreter (as implemented: query folded through the keys) scoring ``kept``
    present patch tokens per sample.

    Per CLS query (one per sample; one per frame for space-only): its projection (dim²), folding it
    through every head's key weights (dim²) and key bias (dim); per scored token one dot product per
    head (heads × dim). ``num_heads`` 0 is a free scorer (random dropping): no MACs.
    """
    if num_heads == 0:
        return torch.zeros_like(kept, dtype=torch.float64)
    d = shape.embed_dim
    queries = shape.num_frames if shape.attention_type == "space_only" else 1
    return queries * (2 * d * d + d) + kept * num_heads * d


def model_macs(shape: VitShape, batch: int = 1, group_starts: Sequence[int] = (),
               group_keep: Sequence[torch.Tensor] = (), interpreter_heads: int = 6) -> torch.Tensor:
    """MACs per sample (B,) of the whole model: patch embedding, interpreters, blocks, norm, head.

    ``group_keep[g]`` (B, T, N) bool is the keep mask after interpreter ``g`` (placed before block
    ``group_starts[g]``); blocks before the first interpreter, or all blocks without any, are dense.
    """
    if len(group_starts) != len(group_keep):
        raise ValueError(f"{len(group_starts)} group starts but {len(group_keep)} keep masks")
    t, n, d = shape.num_frames, shape.num_patches, shape.embed_dim
    if group_keep:
        batch = group_keep[0].shape[0]
    dense = torch.ones(batch, t, n, dtype=torch.bool)
    total = torch.full((batch,), float(t * n * d * shape.in_chans * shape.patch_size ** 2),
                       dtype=torch.float64)  # patch embedding conv
    keep, starts = dense, dict(zip(group_starts, group_keep))
    for b in range(shape.depth):
        if b in starts:
            total += interpreter_macs(shape, keep.sum((1, 2)).double(), interpreter_heads)
            keep = starts[b] & keep
        total += block_macs(shape, keep)
    return total + d * shape.num_classes


def group_kept_shares(keep: Sequence[torch.Tensor]) -> torch.Tensor:
    """(B, G): the share of the T·N patch tokens each (B, T, N) keep mask in ``keep`` holds."""
    return torch.stack([k.flatten(1).float().mean(1) for k in keep], 1)


def keep_ratio_masks(shape: VitShape, ratios: Sequence[float], batch: int = 1) -> list[torch.Tensor]:
    """Nested masks keeping the first ``round(r·T·N)`` tokens: for cost reports at a keep ratio."""
    total = shape.num_frames * shape.num_patches
    masks = []
    for ratio in ratios:
        flat = torch.zeros(batch, total, dtype=torch.bool)
        flat[:, : round(ratio * total)] = True
        masks.append(flat.view(batch, shape.num_frames, shape.num_patches))
    return masks


# ---------------------------------------------------------------------------------------------
# fvcore cross-check

_MATMUL_LIKE = ("matmul", "mm", "bmm", "addmm", "baddbmm", "einsum", "linear", "conv",
                "scaled_dot_product", "attention")


def _sdpa_handle(inputs: list[Any], outputs: list[Any]) -> int:
    """fvcore has no handle for aten::scaled_dot_product_attention and silently skips it."""
    from fvcore.nn.jit_handles import get_shape

    q, k, v = (get_shape(x) for x in inputs[:3])
    batch = 1
    for size in q[:-2]:
        batch *= size
    return batch * q[-2] * k[-2] * (q[-1] + v[-1])


def _einsum_handle(inputs: list[Any], outputs: list[Any]) -> int:
    """fvcore's einsum handle reads numpy's FLOP estimate rounded to 4 significant digits; a
    two-operand einsum costs exactly one MAC per combination of all its indices."""
    from fvcore.nn.jit_handles import einsum_flop_jit, get_shape

    equation = inputs[0].toIValue().replace(" ", "")
    shapes = [get_shape(v) for v in inputs[1].node().inputs()]
    terms = equation.split("->")[0].split(",")
    if len(shapes) != 2 or "." in equation:
        return einsum_flop_jit(inputs, outputs)
    sizes = {letter: size for term, shape in zip(terms, shapes) for letter, size in zip(term, shape)}
    return math.prod(sizes.values())


def fvcore_macs(model: torch.nn.Module, inputs: Any) -> tuple[int, dict[str, int]]:
    """Trace ``model(*inputs)`` with fvcore; returns (total MACs, unsupported matmul-like ops).

    A matmul-like op that fvcore cannot count would silently lower the total (DeiT-S read 4.25 G
    instead of 4.61 G before the SDPA handle), so callers should treat a non-empty dict as an error.
    """
    from fvcore.nn import FlopCountAnalysis

    analysis = FlopCountAnalysis(model, inputs)
    analysis.set_op_handle("aten::scaled_dot_product_attention", _sdpa_handle)
    analysis.set_op_handle("aten::einsum", _einsum_handle)
    for norm in ("aten::layer_norm", "aten::group_norm", "aten::batch_norm", "aten::instance_norm"):
        # Not counted (module docstring). A None handle would only silence fvcore, not drop the count.
        analysis.set_op_handle(norm, lambda inputs, outputs: 0)
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    total = analysis.total()
    unsupported = {op: n for op, n in analysis.unsupported_ops().items()
                   if any(word in op for word in _MATMUL_LIKE)}
    return total, unsupported


def shape_of(model: torch.nn.Module) -> VitShape:
    """Read a TimeSformer's or DeiT's (or timm ViT's) dimensions off the module; of an IA-RED² model
    (anything with a ``backbone`` and no ``blocks``), off its backbone."""
    if not hasattr(model, "blocks") and hasattr(model, "backbone"):
        model = model.backbone
    if not hasattr(model, "blocks"):
        raise TypeError(f"shape_of reads a backbone (TimeSformer, DeiT, ViT), not a {type(model).__name__}")
    block = model.blocks[0]
    patch = model.patch_embed.proj.kernel_size[0]
    num_patches = model.pos_embed.shape[1] - 1  # pos_embed holds CLS + one entry per patch
    return VitShape(embed_dim=model.embed_dim, depth=len(model.blocks), num_heads=block.attn.num_heads,
                    mlp_ratio=block.mlp.fc1.out_features / model.embed_dim, patch_size=patch,
                    in_chans=model.patch_embed.proj.in_channels, num_classes=model.num_classes,
                    num_patches=num_patches, num_frames=getattr(model, "num_frames", 1),
                    attention_type=getattr(model, "attention_type", "image"))
