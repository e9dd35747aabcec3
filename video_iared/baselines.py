"""Training-free token reduction on the same TimeSformer and harness as IA-RED², for the frontier.

Three baselines, each a :data:`~video_iared.engine.harness.Predictor` (clip -> logits, MACs, kept
share) so ``evaluate`` and ``sweep`` treat them exactly like the IA-RED² model:

- **random**: before each group's first block, keep ``k`` present patch tokens drawn uniformly at random.
- **CLS-attention top-k** (EViT, Liang et al. 2022): keep the ``k`` present tokens that the CLS token
  attends to most — its spatial attention row in the group's first block, averaged over heads (a
  token is seen only by its own frame's CLS copy, whose output is averaged over the T frames).
  Computed like an interpreter with the block's frozen ``norm1`` and ``attn.qkv`` on the tokens
  entering the block (before its temporal step, so the decision precedes the block): the CLS query
  folded through the key weights, softmax over each frame's CLS copy and present tokens.
- **ToMe** (Bolya et al., ICLR 2023), adapted to divided attention: see :func:`tome_forward`.

Random and top-k share the IA-RED² model's ``budget`` decision (top ``k`` per sample) at the
cumulative budgets of its groups, and its packed path: dropped tokens are physically
removed by :meth:`~video_iared.models.tokens.TokenState.select`.

And references that read the test set's actor masks (:class:`~video_iared.engine.harness.MaskPredictor`:
``(clip, masks)``), so not methods but bounds and dataset checks:

- **oracle**: the same budgets, tokens ranked by the share of their pixels the actor mask covers
  (:func:`mask_coverage`, ties broken at random); scoring is free.
- **actor-tube**: keep exactly the actor's space-time tube (:func:`tube_coverage`: every location the
  mask touches in any frame, in every frame), one drop at the first group start, so every sample keeps
  its own count; **random-same-count** keeps as many random tokens per sample at the same block, its
  control. Together: does keeping only the actor's tokens hold accuracy?
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from einops import rearrange, reduce, repeat
from torch import Tensor, nn

from video_iared.engine.harness import MaskPredictor, Prediction, Predictor
from video_iared.flops import VitShape, block_macs, group_kept_shares, mlp_macs, model_macs, shape_of
from video_iared.models.cost import forward_macs
from video_iared.models.interpreter import check_budgets, decide
from video_iared.models.layers import Attention, attend, attention_weights, run_blocks, split_heads
from video_iared.models.timesformer import Block, TimeSformer
from video_iared.models.tokens import TokenState

__all__ = ["budget_counts", "random_scores", "cls_attention_scores", "mask_coverage", "oracle_scores",
           "keep_top", "drop_tokens", "drop_forward", "random_predictor", "topk_predictor",
           "tube_coverage", "oracle_predictor", "actor_tube_predictor", "random_same_count_predictor",
           "bipartite_matching", "merge_tokens", "tome_forward", "tome_macs", "tome_predictor",
           "tome_schedule"]

Scorer = Callable[[Block, TokenState], Tensor]  # (block about to run, state) -> scores (B, N*T)
Count = int | Tensor  # tokens kept per sample: one for all (a budget), or (B,) per sample


# ---------------------------------------------------------------------------------------------
# Keep decisions and scores


def budget_counts(budget: Sequence[float], num_tokens: int) -> list[int]:
    """Cumulative keep ratios per group -> tokens kept per sample, ``round(ratio * T * N)``.

    Non-increasing ratios in (0, 1] are required (a token dropped by one group stays dropped).
    """
    check_budgets(budget)
    return [max(1, round(r * num_tokens)) for r in budget]


def random_scores(generator: torch.Generator) -> Scorer:
    """Uniform scores: the top-k of them is a uniformly random subset of the present tokens."""

    def score(block: Block, state: TokenState) -> Tensor:
        layout = state.layout
        return torch.rand(layout.batch, layout.tokens_per_sample, generator=generator).to(state.cls.device)

    return score


def cls_attention_scores(block: Block, state: TokenState) -> Tensor:
    """(B, N*T) CLS attention of ``block``'s spatial attention on the present tokens (0 when absent).

    The block's own weights (:func:`~video_iared.models.layers.attention_weights`, over each frame's CLS
    copy and present tokens, the spatial step's sequences), mean over heads, with the query folded
    through the key weights: per head h, q·(W_k,h LN(x_j) + b_k,h) = (W_k,hᵀ q)·LN(x_j) + q·b_k,h, and
    q·b_k,h is the same for every key of a row, so the softmax drops it. Each token costs heads × dim MACs.
    """
    attn: Attention = block.attn
    layout, heads = state.layout, attn.num_heads
    dim = state.cls.shape[1]
    w_q, w_k = attn.qkv.weight[:dim], attn.qkv.weight[dim:2 * dim]
    b_q = attn.qkv.bias[:dim] if attn.qkv.bias is not None else None
    q = rearrange(F.linear(block.norm1(state.cls), w_q, b_q), "b (h c) -> b h c", h=heads)
    folded = torch.einsum("bhc,hcd->bhd", q, rearrange(w_k, "(h c) d -> h c d", h=heads))  # (B, h, D)
    plan = layout.frame_sequences    # rows: every frame's CLS copy, then the patches
    keys = plan.gather(block.norm1(torch.cat([repeat(state.cls, "b d -> (b t) d", t=layout.frames),
                                              state.patches])))                          # (G, L, D)
    query = repeat(folded, "b h d -> (b t) h 1 d", t=layout.frames)
    weights = attention_weights(query, keys[:, None], attn.scale, plan.mask)          # (G, h, 1, L)
    weights = plan.scatter(rearrange(weights, "g h 1 l -> g l h"))
    weights = weights[layout.batch * layout.frames:].mean(1)  # (M,) patch rows, mean over heads
    scores = torch.zeros(layout.batch * layout.tokens_per_sample, dtype=weights.dtype, device=weights.device)
    return scores.index_copy_(0, layout.flat, weights).view(layout.batch, layout.tokens_per_sample)


def mask_coverage(masks: Tensor, patch_size: int) -> Tensor:
    """Actor masks (B, T, H, W) (nonzero = actor) -> (B, N*T) share of each patch token's pixels that
    the mask covers, in the model's token order ``(n t)`` (location n row-major on the patch grid)."""
    return reduce((masks > 0).float(), "b t (h p) (w q) -> b (h w t)", "mean", p=patch_size, q=patch_size)


def tube_coverage(masks: Tensor, patch_size: int, frames: int) -> Tensor:
    """(B, N*T) the actor's space-time tube: each location's largest :func:`mask_coverage` over the clip,
    in every frame. Why not the mask alone: divided attention reads motion at a location as the actor
    arriving over or leaving the background there, so the per-frame mask tokens alone make a moving actor
    look like a changing size (docs/results.md, The clutter set)."""
    coverage = rearrange(mask_coverage(masks, patch_size), "b (n t) -> b n t", t=frames)
    return repeat(coverage.amax(-1), "b n -> b (n t)", t=frames)


def oracle_scores(masks: Tensor, patch_size: int, generator: torch.Generator) -> Tensor:
    """(B, N*T) :func:`mask_coverage` plus a random tie-break below half a coverage step (1/p²): equal
    coverages (all the background) are ranked at random, not by position; distinct ones keep their order."""
    coverage = mask_coverage(masks, patch_size)
    noise = torch.rand(coverage.shape, generator=generator).to(coverage.device)
    return coverage + noise * (0.5 / patch_size ** 2)


def _fixed(scores: Tensor) -> Scorer:
    """A scorer returning precomputed (B, N*T) scores (absent tokens are masked by the decision)."""
    return lambda block, state: scores


# ---------------------------------------------------------------------------------------------
# Dropping on the packed path


def keep_top(scores: Tensor, present: Tensor, count: Count) -> Tensor:
    """(B, L) keep mask of the ``count`` best-scored present tokens of each sample.

    An int count is the IA-RED² ``budget`` decision (the same for every sample); a (B,) tensor gives
    each sample its own, by the rank of its scores (a data-dependent decision, like a threshold).
    """
    if isinstance(count, int):
        return decide(scores, present, "budget", count=count)[0]
    order = scores.masked_fill(~present, float("-inf")).argsort(dim=1, descending=True, stable=True)
    positions = torch.arange(scores.shape[1], device=scores.device).expand_as(order)
    rank = torch.empty_like(order).scatter_(1, order, positions)
    return (rank < count.to(scores.device)[:, None]) & present


def _check_counts(counts: Sequence[Count], total: int) -> None:
    """Counts per group, non-increasing per sample (a dropped token stays dropped) and in [0, total]."""
    previous: Count = total
    for k in counts:
        if bool((torch.as_tensor(k) > previous).any() or (torch.as_tensor(k) < 0).any()):
            shown = [c if isinstance(c, int) else c.tolist() for c in counts]
            raise ValueError(f"token counts {shown} must be non-increasing and at most {total}")
        previous = k


def drop_tokens(model: TimeSformer, clip: Tensor, group_starts: Sequence[int], counts: Sequence[Count],
                scorer: Scorer) -> tuple[Tensor, list[Tensor]]:
    """Run ``model`` keeping the ``counts[g]`` best-scored present tokens per sample from block
    ``group_starts[g]`` on, physically removed -> (logits, keep masks (B, T, N) per group, on the device).

    An int count is the same for every sample: non-increasing, so every sample keeps exactly it and the
    row count needs no host read. A (B,) tensor count is per sample (:func:`keep_top`); its drop reads
    the kept counts once, like a threshold decision.
    """
    if len(group_starts) != len(counts) or not group_starts:
        raise ValueError(f"{len(group_starts)} group starts for {len(counts)} budgets")
    state, done, masks = model.embed(clip), 0, []
    _check_counts(counts, state.layout.tokens_per_sample)
    for start, k in zip(group_starts, counts):
        state = model.forward_blocks(state, done, start)
        keep = keep_top(scorer(model.blocks[start], state), state.layout.keep_mask(), k)
        state, done = state.select(keep, per_sample=k if isinstance(k, int) else None), start
        masks.append(rearrange(keep, "b (n t) -> b t n", t=state.layout.frames))
    return model.head(model.pool(model.forward_blocks(state, done))), masks


def drop_forward(model: TimeSformer, clip: Tensor, group_starts: Sequence[int], counts: Sequence[Count],
                 scorer: Scorer, scorer_heads: int) -> Prediction:
    """:func:`drop_tokens` as a prediction: MACs come from the analytic counter, the scorer counted
    like an interpreter with ``scorer_heads`` heads (0 = free)."""
    logits, masks = drop_tokens(model, clip, group_starts, counts, scorer)
    masks = [m.cpu() for m in masks]
    macs = forward_macs(model, clip, masks, group_starts=group_starts, interpreter_heads=scorer_heads)
    return Prediction(logits, macs, group_kept_shares(masks))


def random_predictor(model: TimeSformer, group_starts: Sequence[int], budget: Sequence[float],
                     seed: int = 0) -> Predictor:
    """Random dropping at a cumulative ``budget`` per group (a fixed seed: the same draws every run)."""
    generator = torch.Generator().manual_seed(seed)
    counts = budget_counts(budget, _tokens(model))
    return lambda clip: drop_forward(model, clip, group_starts, counts, random_scores(generator), 0)


def topk_predictor(model: TimeSformer, group_starts: Sequence[int], budget: Sequence[float]) -> Predictor:
    """EViT-style CLS-attention top-k at a cumulative ``budget`` per group."""
    counts = budget_counts(budget, _tokens(model))
    heads = model.blocks[0].attn.num_heads
    return lambda clip: drop_forward(model, clip, group_starts, counts, cls_attention_scores, heads)


def oracle_predictor(model: TimeSformer, group_starts: Sequence[int], budget: Sequence[float],
                     seed: int = 0) -> MaskPredictor:
    """Top-k by actor-mask coverage (:func:`oracle_scores`) at a cumulative ``budget`` per group: the
    token counts of random and CLS top-k; the scorer reads the masks, so it costs no MACs."""
    generator = torch.Generator().manual_seed(seed)
    counts = budget_counts(budget, _tokens(model))

    def predict(clip: Tensor, masks: Tensor) -> Prediction:
        scores = oracle_scores(_masks_like(masks, clip), shape_of(model).patch_size, generator)
        return drop_forward(model, clip, group_starts, counts, _fixed(scores), 0)

    return MaskPredictor(predict)


def actor_tube_predictor(model: TimeSformer, group_start: int) -> MaskPredictor:
    """Keep exactly the actor's tube (:func:`tube_coverage` > 0) from block ``group_start`` on, one drop:
    each sample keeps its own count (none when its view shows no actor)."""

    def predict(clip: Tensor, masks: Tensor) -> Prediction:
        coverage = tube_coverage(_masks_like(masks, clip), *_patch_and_frames(model))
        return drop_forward(model, clip, [group_start], [(coverage > 0).sum(1)], _fixed(coverage), 0)

    return MaskPredictor(predict)


def random_same_count_predictor(model: TimeSformer, group_start: int, seed: int = 0) -> MaskPredictor:
    """The control of :func:`actor_tube_predictor`: per sample, as many uniformly random tokens as its
    tube holds, dropped at the same block."""
    generator = torch.Generator().manual_seed(seed)

    def predict(clip: Tensor, masks: Tensor) -> Prediction:
        count = (tube_coverage(_masks_like(masks, clip), *_patch_and_frames(model)) > 0).sum(1)
        return drop_forward(model, clip, [group_start], [count], random_scores(generator), 0)

    return MaskPredictor(predict)


def _patch_and_frames(model: TimeSformer) -> tuple[int, int]:
    shape = shape_of(model)
    return shape.patch_size, shape.num_frames


def _masks_like(masks: Tensor, clip: Tensor) -> Tensor:
    """``masks`` (B, T, H, W), checked against the clip (B, C, T, H, W) they were cropped with (images
    (B, C, H, W): masks (B, 1, H, W))."""
    if clip.dim() == 4:
        clip = clip[:, :, None]
    if masks.shape != clip[:, 0].shape:
        raise ValueError(f"actor masks {tuple(masks.shape)} do not match clips {tuple(clip.shape)}")
    return masks


def _tokens(model: TimeSformer) -> int:
    """T·N patch tokens of a TimeSformer or DeiT (T = 1) at its own input size."""
    shape = shape_of(model)
    return shape.num_frames * shape.num_patches


# ---------------------------------------------------------------------------------------------
# ToMe adapted to divided space-time attention


def bipartite_matching(metric: Tensor, r: int) -> Tensor:
    """ToMe's bipartite soft matching: (B, N, C) metric -> (B, N) slot of every token among N - r.

    Tokens alternate into sets A (even positions) and B (odd); each A token's most cosine-similar B
    token is its match, and the ``r`` A tokens with the most similar matches merge into them. Survivors
    keep their relative order; exactly ``r`` tokens disappear per sample.
    """
    batch, num, _ = metric.shape
    if not 0 <= r <= num // 2:
        raise ValueError(f"bipartite matching merges at most {num // 2} of {num} tokens, asked {r}")
    metric = F.normalize(metric.float(), dim=-1)
    similarity = metric[:, ::2] @ metric[:, 1::2].transpose(1, 2)  # (B, |A|, |B|)
    best, match = similarity.max(-1)
    merged = best.argsort(dim=-1, descending=True, stable=True)[:, :r]  # A positions that merge
    arange = torch.arange(num, device=metric.device)
    target = arange.expand(batch, num).clone()
    target.scatter_(1, 2 * merged, 2 * match.gather(1, merged) + 1)  # A token -> its B match
    slot = (target == arange).long().cumsum(1) - 1  # survivors numbered in order
    return slot.gather(1, target)


def merge_tokens(x: Tensor, size: Tensor, slot: Tensor, num_out: int) -> tuple[Tensor, Tensor]:
    """Size-weighted average of the tokens sharing a slot: x (B, N, ...), size (B, N) -> (B, num_out, ...)."""
    batch, num = slot.shape
    tail = (1,) * (x.dim() - 2)
    weight = size.to(x.dtype).view(batch, num, *tail)
    index = slot.view(batch, num, *tail).expand_as(x)
    summed = x.new_zeros(batch, num_out, *x.shape[2:]).scatter_add_(1, index, x * weight)
    new_size = size.new_zeros(batch, num_out).scatter_add_(1, slot, size)
    return summed / new_size.to(x.dtype).view(batch, num_out, *tail), new_size


def tome_schedule(num_locations: int, depth: int, r: int) -> list[int]:
    """Locations merged in each block: ``r`` (ToMe's constant schedule), capped at half of those left."""
    merges, left = [], num_locations
    for _ in range(depth):
        merges.append(min(r, left // 2))
        left -= merges[-1]
    return merges


def tome_macs(shape: VitShape, r: int) -> float:
    """MACs per sample of :func:`tome_forward`: each block's attention at its location count, its MLP at
    the merged count (analytic counter), plus the matching's similarity matmul ``|A|·|B|·head_dim``."""
    frames, head_dim = shape.num_frames, shape.embed_dim // shape.num_heads
    total = model_macs(shape).item()
    locations = shape.num_patches
    for merge in tome_schedule(locations, shape.depth, r):
        merged = locations - merge
        total += (block_macs(shape, _grid(locations, frames))
                  - block_macs(shape, _grid(shape.num_patches, frames))
                  - mlp_macs(shape, torch.tensor([locations * frames + 1.0]))
                  + mlp_macs(shape, torch.tensor([merged * frames + 1.0]))).item()
        total += math.ceil(locations / 2) * (locations // 2) * head_dim * (merge > 0)
        locations = merged
    return total


def _grid(locations: int, frames: int) -> Tensor:
    """A keep mask (1, T, locations) with every token present."""
    return torch.ones(1, frames, locations, dtype=torch.bool)


@dataclass
class MergedTokens:
    """ToMe's tokens between blocks: CLS (B, D), patches (B, N', T, D) at N' merged locations and the
    original locations each one holds, its size (B, N')."""

    cls: Tensor
    x: Tensor
    size: Tensor


class ToMeBlock(nn.Module):
    """A divided space-time :class:`~video_iared.models.timesformer.Block`, or a DeiT block (one frame, no
    temporal step: ToMe as published), wrapped with its own modules, not copied, on
    :class:`MergedTokens`, after ToMe's ``tome/patch/timm.py``. Modifications:

    - the spatial softmax adds log(size) to each key's logit (proportional attention; the CLS copy has
      size 1), so a merged token counts as the tokens it replaced. In the temporal step all keys of a
      location share one size, so the bias is a constant there and is omitted;
    - between the spatial attention and the MLP (where ToMe merges), ``merge`` locations are merged:
      the metric of a location is its spatial keys averaged over heads and the T frames, pairs come from
      :func:`bipartite_matching` and are averaged by size (:func:`merge_tokens`) in every frame, so the
      clip stays a T × N' grid and the temporal step still attends along time at each location.
    """

    def __init__(self, block: Block, merge: int) -> None:
        super().__init__()
        kind = getattr(block, "attention_type", "image")
        if kind not in ("divided_space_time", "image"):
            raise ValueError(f"ToMe is adapted to divided_space_time attention and images, not {kind}")
        self.block, self.merge, self.temporal = block, merge, kind == "divided_space_time"
        # DeiT's layer scales (identities unless the weights carry them)
        self.scale_attn = getattr(block, "ls1", nn.Identity())
        self.scale_mlp = getattr(block, "ls2", nn.Identity())

    def forward(self, state: MergedTokens) -> MergedTokens:
        block, (batch, _, frames, _) = self.block, state.x.shape
        x, cls = state.x, state.cls
        if self.temporal:
            temporal = block.temporal_attn(rearrange(block.temporal_norm1(x), "b n t d -> (b n) t d"))
            x = x + block.temporal_fc(rearrange(temporal, "(b n) t d -> b n t d", b=batch))
        rows = torch.cat([repeat(cls, "b d -> (b t) 1 d", t=frames), rearrange(x, "b n t d -> (b t) n d")], 1)
        q, k, v = split_heads(block.attn.qkv(block.norm1(rows)), block.attn.num_heads)
        log_size = repeat(F.pad(state.size, (1, 0), value=1.0).log(), "b l -> (b t) 1 1 l", t=frames)
        out = attend(q, k, v, log_size.to(q.dtype))      # one SDPA call, log(size) as an additive key bias
        res = self.scale_attn(block.attn.proj(rearrange(out, "g h l c -> g l (h c)")))
        cls = cls + reduce(res[:, 0], "(b t) d -> b d", "mean", b=batch)
        x = x + rearrange(res[:, 1:], "(b t) n d -> b n t d", b=batch)
        size = state.size
        if self.merge:
            metric = reduce(k[:, :, 1:].mean(1), "(b t) n c -> b n c", "mean", b=batch)
            x, size = merge_tokens(x, size, bipartite_matching(metric, self.merge), x.shape[1] - self.merge)
        cls = cls + self.scale_mlp(block.mlp(block.norm2(cls)))
        return MergedTokens(cls, x + self.scale_mlp(block.mlp(block.norm2(x))), size)


def tome_forward(model: TimeSformer, clip: Tensor, r: int) -> tuple[Tensor, Tensor]:
    """Divided space-time TimeSformer (or DeiT) merging ``r`` *locations* per block (inference only): the
    backbone's blocks patched by :class:`ToMeBlock` at :func:`tome_schedule`, run by the backbone's own
    loop (:func:`~video_iared.models.layers.run_blocks`). Returns logits (B, C) and the locations left
    after each block (depth,)."""
    state = model.embed(clip)
    layout = state.layout
    x = rearrange(state.patches, "(b n t) d -> b n t d", b=layout.batch, t=layout.frames)
    tokens = MergedTokens(state.cls, x, torch.ones(layout.batch, layout.locations, device=clip.device))
    schedule = tome_schedule(layout.locations, len(model.blocks), r)
    tokens = run_blocks([ToMeBlock(block, merge) for block, merge in zip(model.blocks, schedule)], tokens)
    left = layout.locations - torch.tensor(schedule).cumsum(0)
    return model.head(model.pool(replace(state, cls=tokens.cls))), left


def tome_predictor(model: TimeSformer, r: int) -> Predictor:
    """ToMe merging ``r`` locations per block; kept share per block = locations left / N."""
    macs = tome_macs(shape_of(model), r)

    def predict(clip: Tensor) -> Prediction:
        logits, left = tome_forward(model, clip, r)
        batch = clip.shape[0]
        keep = (left.float() / _tokens(model) * model.num_frames).expand(batch, -1)
        return Prediction(logits, torch.full((batch,), macs, dtype=torch.float64), keep)

    return predict
