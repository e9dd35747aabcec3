"""Building blocks shared by every backbone and attention type: attention over token groups, the
per-sample drop path on packed rows, the block loop, and CLS-attention capture for heatmaps and baselines.

MLP and DropPath come from timm (``timm.layers``); parameter names follow the official TimeSformer
(``qkv``, ``proj``) so checkpoints load strictly.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from einops import rearrange
from timm.layers import DropPath
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from .tokens import TokenGroups, TokenState

ClsAttentionSink = Callable[["Attention", list[Tensor], "TokenGroups | None"], None]


def group_softmax(logits: Tensor, mask: Tensor | None) -> Tensor:
    """Attention weights of padded groups: logits (G, h, Q, L) -> softmax over the L keys.

    ``mask`` (G, 1, 1, L) is a bucket's key mask (``True`` for real keys, ``None`` without padding);
    padding keys get weight 0. The one softmax of :class:`Attention`'s explicit path and of scorers
    that compute only some queries' logits (the CLS-attention baseline).
    """
    if mask is not None:
        logits = logits.masked_fill(~mask, float("-inf"))
    return logits.softmax(-1)


class Attention(nn.Module):
    """Multi-head self-attention over token groups (Vaswani et al.; ViT/TimeSformer ``Attention``).

    ``forward(x)`` attends within each group of ``x`` (G, L, D). With ``groups`` (a
    :class:`~video_iared.models.tokens.TokenGroups` plan), ``x`` are rows (R, D): the linear layers run on
    the rows only (no padding), the attention on the padded groups with the plan's key mask.
    ``key_mask`` (G, L) bool marks real keys for grouped input without a plan.
    """

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = False,
                 attn_drop: float = 0.0, proj_drop: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.cls_attention_sink: ClsAttentionSink | None = None

    def forward(self, x: Tensor, groups: TokenGroups | None = None, key_mask: Tensor | None = None) -> Tensor:
        qkv = self.qkv(x)
        if groups is None:
            out = self._attend([qkv], [None if key_mask is None else key_mask[:, None, None, :]], None)[0]
        else:   # linears on the rows, attention per length bucket of padded groups
            out = groups.scatter(self._attend(groups.gather(qkv), [b.mask for b in groups.buckets], groups))
        return self.proj_drop(self.proj(out))

    def _attend(self, parts: list[Tensor], masks: list[Tensor | None],
                groups: TokenGroups | None) -> list[Tensor]:
        """(G, L, 3D) query/key/value groups -> (G, L, D) attention outputs, one per bucket."""
        outs, cls_rows = [], []
        for qkv, mask in zip(parts, masks):
            q, k, v = rearrange(qkv, "g l (three h d) -> three g h l d", three=3, h=self.num_heads).unbind(0)
            if self.cls_attention_sink is None:
                out = F.scaled_dot_product_attention(
                    q, k, v, attn_mask=mask, dropout_p=self.attn_drop if self.training else 0.0)
            else:  # softmax written out, to hand the first query's (CLS) attention row to the sink
                weights = group_softmax((q * self.scale) @ k.transpose(-2, -1), mask)   # (G, h, L, L)
                cls_rows.append(weights[:, :, 0])                        # (G, h, L)
                out = F.dropout(weights, self.attn_drop, self.training) @ v
            outs.append(rearrange(out, "g h l d -> g l (h d)"))
        if self.cls_attention_sink is not None:
            self.cls_attention_sink(self, cls_rows, groups)
        return outs


@contextmanager
def capture_cls_attention(model: nn.Module) -> Iterator[dict[str, Tensor]]:
    """Record, per attention module name, the first query's attention row of every group.

    Inside the context every :class:`Attention` of ``model`` uses the explicit softmax and stores
    (G, heads, L) weights, groups in id order and keys in slot order (zero on padding); for the spatial
    attention of TimeSformer blocks group ``b*T + t`` is frame t of clip b and query 0 its CLS copy
    (raw-attention heatmaps, the CLS-attention top-k baseline)::

        with capture_cls_attention(model) as rows:
            model(clip)
        rows["blocks.11.attn"]  # (B*T, heads, 1+N)
    """
    rows: dict[str, Tensor] = {}
    names = {module: name for name, module in model.named_modules() if isinstance(module, Attention)}

    def sink(module: Attention, weights: list[Tensor], groups: TokenGroups | None) -> None:
        if groups is None:
            rows[names[module]] = weights[0]
            return
        count = max(int(b.groups.max()) for b in groups.buckets) + 1
        full = weights[0].new_zeros(count, weights[0].shape[1], max(b.length for b in groups.buckets))
        for bucket, part in zip(groups.buckets, weights):
            full[bucket.groups, :, : bucket.length] = part
        rows[names[module]] = full

    for module in names:
        module.cls_attention_sink = sink
    try:
        yield rows
    finally:
        for module in names:
            module.cls_attention_sink = None


class SampleDropPath(DropPath):
    """timm's DropPath (stochastic depth, per sample) for packed rows: ``forward(x, sample_of_row)``."""

    def forward(self, x: Tensor, sample_of_row: Tensor | None = None, num_samples: int = 0) -> Tensor:
        if not self.training or self.drop_prob == 0.0:
            return x
        if sample_of_row is None:
            return super().forward(x)
        scale = super().forward(x.new_ones(num_samples, 1))       # 0 or 1/keep per sample
        return x * scale.index_select(0, sample_of_row)


class PatchEmbed(nn.Module):
    """Per-frame non-overlapping patch projection (official ``patch_embed.proj`` Conv2d)."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, T, H, W) -> (B, T, h, w, D)."""
        frames = x.shape[2]
        x = self.proj(rearrange(x, "b c t h w -> (b t) c h w"))
        return rearrange(x, "(b t) d h w -> b t h w d", t=frames)


def run_blocks(blocks: Iterable[nn.Module], state: TokenState, checkpointing: bool = False) -> TokenState:
    """Run ``state`` through ``blocks`` (each ``TokenState -> TokenState``); with ``checkpointing``
    each block's activations are recomputed in the backward pass (memory for compute)."""
    for block in blocks:
        if checkpointing and torch.is_grad_enabled():
            state = checkpoint(block, state, use_reentrant=False)
        else:
            state = block(state)
    return state
