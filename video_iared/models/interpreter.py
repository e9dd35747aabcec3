"""IA-RED² multi-head interpreter and keep decisions (Pan et al., NeurIPS 2021).

Released tool's scoring: affine-free LayerNorm, query of the CLS token against the key of every token,
per head ``sigmoid(q_cls . k_j / sqrt(d))``, mean over heads, times the previous keep mask; CLS always
kept. Only ``q_cls . k_j`` is needed, so the query is folded through each head's key weights:
``q_h . (W_h x + b_h) = x . (W_h^T q_h) + q_h . b_h``, i.e. ``heads x dim`` MACs per token instead of
the ``3 dim^2`` of a full projection; the scores are the same.
"""
from __future__ import annotations

from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn


Decision = Literal["sample", "threshold", "budget", "none"]
DECISIONS = ("sample", "threshold", "budget", "none")


class MultiHeadInterpreter(nn.Module):
    """Scores every present patch token by how much the CLS query of its clip (or frame) attends to it.

    Parameters ``qk`` are the query and key thirds of the plain formulation's ``Linear(dim, 3*dim)``;
    a state dict holding that ``qkv`` Linear loads directly (its value third is unused and dropped).
    """

    def __init__(self, dim: int, num_heads: int = 6, qkv_bias: bool = True, eps: float = 1e-6,
                 init_keep: float = 0.9) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.dim, self.num_heads, self.eps = dim, num_heads, eps
        self.scale = (dim // num_heads) ** -0.5
        self.qk = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        self.reset_parameters(init_keep)
        self._register_load_state_dict_pre_hook(self._from_qkv)

    @torch.no_grad()
    def reset_parameters(self, init_keep: float) -> None:
        """Start every score near ``init_keep``: small weights (timm's ViT init) and equal query and key
        biases whose product is ``logit(init_keep)``. REINFORCE then starts from a policy that keeps
        most tokens and stays accurate, and learns which tokens it can drop, instead of first having to
        learn to keep the tokens a coin-flip policy (scores ~0.5, compounded over groups) throws away."""
        if not 0.0 < init_keep < 1.0:
            raise ValueError(f"init_keep must be in (0, 1), got {init_keep}")
        nn.init.trunc_normal_(self.qk.weight, std=0.02)
        if self.qk.bias is None:
            return
        logit = torch.logit(torch.tensor(init_keep)).item()
        head_dim = self.dim // self.num_heads
        # with W ~ 0, q_h . k_h * scale = ±head_dim * b² * scale: the query biases carry the logit's sign
        b = (abs(logit) / (head_dim * self.scale)) ** 0.5
        self.qk.bias[: self.dim].fill_(b if logit >= 0 else -b)
        self.qk.bias[self.dim:].fill_(b)

    def _from_qkv(self, state_dict: dict, prefix: str, *args) -> None:
        """Accept the plain formulation's ``qkv`` Linear: keep its query and key thirds."""
        for name in ("weight", "bias"):
            qkv = state_dict.pop(prefix + "qkv." + name, None)
            if qkv is not None:
                state_dict[prefix + "qk." + name] = qkv[: 2 * self.dim]

    def forward(self, cls: Tensor, tokens: Tensor) -> Tensor:
        """cls (Q, D) query rows, tokens (Q, L, D) the patch tokens each one scores -> (Q, L) scores
        (the caller discards those of padding slots)."""
        weight, bias = self.qk.weight, self.qk.bias
        dim, heads = self.dim, self.num_heads
        q = F.layer_norm(cls, (dim,), eps=self.eps)
        q = F.linear(q, weight[:dim], None if bias is None else bias[:dim])
        q = rearrange(q * self.scale, "q (h d) -> h q d", h=heads)
        folded = torch.bmm(q, rearrange(weight[dim:], "(h d) c -> h d c", h=heads))   # (h, Q, D): W_kᵀ q
        logits = torch.bmm(F.layer_norm(tokens, (dim,), eps=self.eps), rearrange(folded, "h q c -> q c h"))
        if bias is not None:                                                # + q · b_k, per head
            offset = torch.bmm(q, rearrange(bias[dim:], "(h d) -> h d 1", h=heads))         # (h, Q, 1)
            logits = logits + rearrange(offset, "h q 1 -> q 1 h")
        return logits.sigmoid().mean(-1)                                    # (Q, L)


def check_budgets(budgets: Sequence[float]) -> None:
    """Cumulative keep ratios, one per group: non-increasing (a token dropped by one group stays
    dropped) and in (0, 1]."""
    if any(not 0.0 < r <= 1.0 for r in budgets) or list(budgets) != sorted(budgets, reverse=True):
        raise ValueError(f"budget {list(budgets)} must be non-increasing keep ratios in (0, 1]")


def decide(scores: Tensor, present: Tensor, mode: Decision, *, threshold: float = 0.5,
           count: int | None = None, frames: int = 1) -> tuple[Tensor, Tensor]:
    """Keep decisions over (B, L) patch tokens in ``(n t)`` order -> (keep (B, L) bool, log-probability (B,)).

    ``sample``: keep ~ Bernoulli(score) (training, REINFORCE); ``threshold``: score > threshold (the
    paper's inference); ``budget``: the ``count`` highest scores of every one of the ``frames`` frames
    (``frames=1``: of the sample), so every frame keeps the same count and the kept tokens pack into
    fixed shapes; ``none``: keep all present.
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
        if count is None:
            raise ValueError("decision 'budget' needs a token count")
        ranked = scores.masked_fill(~present, -1.0).view(scores.shape[0], -1, frames)   # (B, N, T)
        top = ranked.topk(min(count, ranked.shape[1]), dim=1).indices
        keep = torch.zeros_like(ranked, dtype=torch.bool).scatter_(1, top, True)
        return keep.view_as(present) & present, log_prob
    raise ValueError(f"decision {mode!r} is not one of {DECISIONS}")
