"""Building blocks shared by every backbone and attention type: attention within token sequences, the
per-sample drop path on packed rows, the block loop, and CLS-attention capture for heatmaps and baselines.

MLP and DropPath come from timm (``timm.layers``); parameter names follow the official TimeSformer
(``qkv``, ``proj``) so checkpoints load strictly.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager

import torch
import torch.nn.functional as F
from einops import rearrange
from timm.layers import DropPath
from timm.layers import PatchEmbed as TimmPatchEmbed
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.checkpoint import checkpoint

from .tokens import SequencePlan, TokenState

# receives a module and its attention weights (G, heads, L, L), still in the autograd graph
AttentionSink = Callable[["Attention", Tensor], None]

# Backends for masked attention on a GPU (temporal run windows, data-dependent frames). The default order
# prefers cuDNN on Hopper, which builds a plan per shape and turns a boolean mask into a bias;
# memory-efficient attention takes the mask as it is and builds nothing. Unmasked calls (dense, budget
# frames and samples) keep PyTorch's own choice (cuDNN or flash).
MASKED_BACKENDS = [SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]


def attend(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, dropout: float = 0.0) -> Tensor:
    """``F.scaled_dot_product_attention`` over (G, h, L, d) with a key mask (G, 1, 1, L) (bool, or an
    additive bias) or none; on a GPU a masked call is held to :data:`MASKED_BACKENDS`."""
    if mask is None or not q.is_cuda:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
    with sdpa_kernel(MASKED_BACKENDS):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)


def attention_weights(q: Tensor, k: Tensor, scale: float, mask: Tensor | None = None) -> Tensor:
    """Attention weights softmax(scale · q kᵀ + mask) (G, h, Q, L) of queries (G, h, Q, d) over keys
    (G, h, L, d).

    ``mask`` (G, 1, 1, L): bool, ``True`` for the keys attention may use (others weigh 0: a plan's key
    mask), or an additive bias (ToMe's log sizes); ``None``: every key. The one formula of attention
    weights: :class:`Attention`'s explicit path (:func:`capture_attention`: heatmaps, rollout,
    explanations), the CLS-attention top-k scores and ToMe's proportional attention all call it.
    """
    logits = (q * scale) @ k.transpose(-2, -1)
    if mask is not None:
        logits = logits.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else logits + mask
    return logits.softmax(-1)


def split_heads(qkv: Tensor, heads: int) -> tuple[Tensor, Tensor, Tensor]:
    """(G, L, 3D) projected sequences -> queries, keys and values, (G, heads, L, D / heads) each."""
    q, k, v = rearrange(qkv, "g l (three h d) -> three g h l d", three=3, h=heads).unbind(0)
    return q, k, v


class Attention(nn.Module):
    """Multi-head self-attention within sequences (Vaswani et al.; ViT/TimeSformer ``Attention``).

    ``forward(x)`` attends within each sequence of ``x`` (G, L, D). With ``plan`` (a
    :class:`~video_iared.models.tokens.SequencePlan`), ``x`` are rows (R, D): the linear layers run on
    the rows only, the attention on the plan's (G, L) grid with its mask: one SDPA call.
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
        self.attention_sink: AttentionSink | None = None

    def forward(self, x: Tensor, plan: SequencePlan | None = None) -> Tensor:
        qkv = self.qkv(x)
        if plan is None:
            out = self._attend(qkv, None)
        else:   # linears on the rows, attention on the padded grid
            out = plan.scatter(self._attend(plan.gather(qkv), plan.mask, plan.bias(qkv.dtype)))
        return self.proj_drop(self.proj(out))

    def _attend(self, qkv: Tensor, mask: Tensor | None, bias: Tensor | None = None) -> Tensor:
        """(G, L, 3D) query/key/value sequences, a mask (G, 1, 1 or L, L) bool and, optionally, the same
        mask as an additive bias -> (G, L, D) attention outputs."""
        q, k, v = split_heads(qkv, self.num_heads)
        if self.attention_sink is None:
            out = attend(q, k, v, mask if bias is None else bias, self.attn_drop if self.training else 0.0)
        else:  # softmax written out, to hand the weights to the sink
            weights = attention_weights(q, k, self.scale, mask)                  # (G, h, L, L)
            self.attention_sink(self, weights)
            out = F.dropout(weights, self.attn_drop, self.training) @ v
        return rearrange(out, "g h l d -> g l (h d)")


@contextmanager
def capture_attention(model: nn.Module, *, first_query: bool = False) -> Iterator[dict[str, Tensor]]:
    """Record, per attention module name, the attention weights of every sequence.

    Inside the context every :class:`Attention` of ``model`` uses the explicit softmax
    (:func:`attention_weights`) and stores its weights (G, heads, L, L), sequences in plan order and keys
    in slot order (zero on padding); ``first_query`` keeps only the first query's row (G, heads, L) (the
    CLS token's, where a sequence has one). The weights stay in the autograd graph when gradients are
    on, so ``torch.autograd.grad(logit, list(weights.values()))`` gives their gradients (explanations).
    For the spatial attention of TimeSformer blocks sequence ``b*T + t`` is frame t of clip b, query 0
    its CLS copy and slot ``1 + n`` location n; for the temporal attention sequence ``b*N + n`` is
    location n of clip b, slot t its frame::

        with capture_attention(model) as weights:
            model(clip)
        weights["blocks.11.attn"]  # (B*T, heads, 1+N, 1+N)
    """
    captured: dict[str, Tensor] = {}
    names = {module: name for name, module in model.named_modules() if isinstance(module, Attention)}

    def sink(module: Attention, weights: Tensor) -> None:
        captured[names[module]] = weights[:, :, 0] if first_query else weights

    for module in names:
        module.attention_sink = sink
    try:
        yield captured
    finally:
        for module in names:
            module.attention_sink = None


def capture_cls_attention(model: nn.Module) -> AbstractContextManager[dict[str, Tensor]]:
    """:func:`capture_attention` of the first query only: (G, heads, L) per module name (raw-attention
    heatmaps, the CLS-attention top-k baseline)."""
    return capture_attention(model, first_query=True)


class SampleDropPath(DropPath):
    """timm's DropPath (stochastic depth, per sample) for packed rows: ``forward(x, sample_of_row)``."""

    def forward(self, x: Tensor, sample_of_row: Tensor | None = None, num_samples: int = 0) -> Tensor:
        if not self.training or self.drop_prob == 0.0:
            return x
        if sample_of_row is None:
            return super().forward(x)
        scale = super().forward(x.new_ones(num_samples, 1))       # 0 or 1/keep per sample
        return x * scale.index_select(0, sample_of_row)


class PatchEmbed(TimmPatchEmbed):
    """timm's ``PatchEmbed`` (the official ``patch_embed.proj`` Conv2d, channels-last output, any frame
    size) applied to every frame of a clip."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__(None, patch_size, in_chans, embed_dim, output_fmt="NHWC", strict_img_size=False)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, T, H, W) -> (B, T, h, w, D)."""
        frames = x.shape[2]
        x = super().forward(rearrange(x, "b c t h w -> (b t) c h w"))
        return rearrange(x, "(b t) h w d -> b t h w d", t=frames)


def run_blocks(blocks: Iterable[nn.Module], state: TokenState, checkpointing: bool = False) -> TokenState:
    """Run ``state`` through ``blocks`` (each ``TokenState -> TokenState``); with ``checkpointing``
    each block's activations are recomputed in the backward pass (memory for compute)."""
    for block in blocks:
        if checkpointing and torch.is_grad_enabled():
            state = checkpoint(block, state, use_reentrant=False)
        else:
            state = block(state)
    return state
