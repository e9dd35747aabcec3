"""IA-RED² multi-head interpreter and keep decisions (Pan et al., NeurIPS 2021).

Released tool's scoring: affine-free LayerNorm, query of the CLS token against the key of every token,
per head ``sigmoid(q_cls . k_j / sqrt(d))``, mean over heads, times the previous keep mask; CLS always
kept. Only ``q_cls . k_j`` is needed, so the query is folded through each head's key weights:
``q_h . (W_h x + b_h) = x . (W_h^T q_h) + q_h . b_h``, i.e. ``heads x dim`` MACs per token instead of
the ``3 dim^2`` of a full projection; the scores are the same.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from .tokens import TokenGroups

Decision = Literal["sample", "threshold", "budget", "none"]
DECISIONS = ("sample", "threshold", "budget", "none")


class MultiHeadInterpreter(nn.Module):
    """Scores every present patch token by how much the CLS query of its clip (or frame) attends to it.

    Parameters ``qk`` are the query and key thirds of the plain formulation's ``Linear(dim, 3*dim)``;
    a state dict holding that ``qkv`` Linear loads directly (its value third is unused and dropped).
    """

    def __init__(self, dim: int, num_heads: int = 6, qkv_bias: bool = True, eps: float = 1e-6) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.dim, self.num_heads, self.eps = dim, num_heads, eps
        self.scale = (dim // num_heads) ** -0.5
        self.qk = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        self._register_load_state_dict_pre_hook(self._from_qkv)

    def _from_qkv(self, state_dict: dict, prefix: str, *args) -> None:
        """Accept the plain formulation's ``qkv`` Linear: keep its query and key thirds."""
        for name in ("weight", "bias"):
            qkv = state_dict.pop(prefix + "qkv." + name, None)
            if qkv is not None:
                state_dict[prefix + "qk." + name] = qkv[: 2 * self.dim]

    def forward(self, cls: Tensor, patches: Tensor, rows_by_cls: TokenGroups) -> Tensor:
        """cls (Q, D) query rows, patches (M, D), ``rows_by_cls`` grouping row m under its CLS -> (M,)."""
        weight, bias = self.qk.weight, self.qk.bias
        q = F.linear(F.layer_norm(cls, (self.dim,), eps=self.eps), weight[: self.dim],
                     None if bias is None else bias[: self.dim])
        q = rearrange(q, "q (h d) -> q h d", h=self.num_heads) * self.scale
        w_k = rearrange(weight[self.dim:], "(h d) c -> h d c", h=self.num_heads)
        folded = torch.einsum("qhd,hdc->qch", q, w_k)                      # (Q, D, h)
        offset = None
        if bias is not None:
            b_k = rearrange(bias[self.dim:], "(h d) -> h d", h=self.num_heads)
            offset = torch.einsum("qhd,hd->qh", q, b_k)[:, None]           # (Q, 1, h)
        x = F.layer_norm(patches, (self.dim,), eps=self.eps)
        probs = []
        for part, bucket in zip(rows_by_cls.gather(x), rows_by_cls.buckets):   # (G, L, D) per bucket
            logits = part @ folded[bucket.groups]                           # (G, L, h)
            probs.append((logits if offset is None else logits + offset[bucket.groups]).sigmoid())
        return rows_by_cls.scatter(probs).mean(-1)


def decide(scores: Tensor, present: Tensor, mode: Decision, *, threshold: float = 0.5,
           budget: int | None = None) -> tuple[Tensor, Tensor]:
    """Keep decisions over (B, L) patch tokens -> (keep (B, L) bool, log-probability (B,)).

    ``sample``: keep ~ Bernoulli(score) (training, REINFORCE); ``threshold``: score > threshold (the
    paper's inference); ``budget``: the ``budget`` highest scores per sample; ``none``: keep all present.
    Tokens not ``present`` stay dropped and contribute nothing to the log-probability.
    """
    log_prob = scores.new_zeros(scores.shape[0])
    if mode == "none":
        return present, log_prob
    if mode == "sample":
        keep = torch.bernoulli(scores.detach()).bool() & present
        p = scores.clamp(1e-6, 1 - 1e-6)
        log_p = torch.where(keep, p.log(), (1 - p).log())
        return keep, (log_p * present).sum(1)
    if mode == "threshold":
        return (scores > threshold) & present, log_prob
    if mode == "budget":
        if budget is None:
            raise ValueError("decision 'budget' needs a token budget")
        top = scores.masked_fill(~present, -1.0).topk(min(budget, scores.shape[1]), dim=1).indices
        keep = torch.zeros_like(present).scatter_(1, top, True)
        return keep & present, log_prob
    raise ValueError(f"decision {mode!r} is not one of {DECISIONS}")
