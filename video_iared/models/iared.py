"""IA-RED² model: a backbone split into groups, each an interpreter followed by its blocks; tokens
dropped by a group are physically removed for that group and every later one (hierarchical).

The backbone provides ``embed(x) -> TokenState``, ``forward_blocks(state, start, end)``,
``pool(state) -> (B, D)``, ``head``, ``blocks`` and ``embed_dim`` (TimeSformer does; a DeiT adapter can).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Union

import torch
from einops import rearrange
from torch import Tensor, nn

from .interpreter import DECISIONS, Decision, MultiHeadInterpreter, check_budgets, decide
from .tokens import TokenState
from ..flops import kept_share


# the model's decisions: the interpreters' own (``decide``) and thresholds calibrated per group
ModelDecision = Union[Decision, Literal["calibrated"]]
MODEL_DECISIONS = (*DECISIONS, "calibrated")


@dataclass
class GroupDecision:
    """One group's decisions; token maps are (B, T, N): frame t, location n (row-major patch grid)."""

    first_block: int
    num_blocks: int
    keep: Tensor              # (B, T, N) bool: tokens present in this group's blocks
    scores: Tensor | None     # (B, T, N) interpreter scores, 0 where dropped earlier; None when inactive
    log_prob: Tensor          # (B,) log-probability of the sampled decisions (0 unless decision 'sample')

    @property
    def kept(self) -> Tensor:
        """(B,) patch tokens kept."""
        return self.keep.sum((1, 2))

    @property
    def kept_per_frame(self) -> Tensor:
        """(B, T)."""
        return self.keep.sum(2)

    @property
    def kept_per_location(self) -> Tensor:
        """(B, N)."""
        return self.keep.sum(1)


@dataclass
class IARedOutput:
    logits: Tensor
    groups: list[GroupDecision]

    @property
    def log_prob(self) -> Tensor:
        """(B,) log-probability of all decisions (REINFORCE)."""
        return torch.stack([g.log_prob for g in self.groups]).sum(0)

    @property
    def kept_share(self) -> Tensor:
        """(B,) the paper's cost proxy c (:func:`video_iared.flops.kept_share`)."""
        depth = sum(g.num_blocks for g in self.groups) + self.groups[0].first_block
        kept = torch.stack([g.kept for g in self.groups], -1)
        return kept_share(kept, self.groups[0].keep[0].numel(), [g.num_blocks for g in self.groups], depth)


class IARed(nn.Module):
    """IA-RED² around a backbone: interpreters before blocks ``group_starts`` (default 0, 4, 8 of 12).

    ``decision`` (``sample`` | ``threshold`` | ``calibrated`` | ``budget`` | ``none``) and ``active_groups``
    (curriculum: interpreters after the first ``active_groups`` keep every token) are attributes,
    overridable per call. ``budgets`` are cumulative keep ratios per group against the T*N patch tokens
    (decision ``budget``); ``thresholds`` one threshold per group and ``min_kept`` the tokens every sample
    keeps at least (decision ``calibrated``: what ``engine.calibrate`` fits to a budget's mean cost, read
    from the checkpoint).
    """

    def __init__(self, backbone: nn.Module, *, group_starts: Sequence[int] = (0, 4, 8),
                 interpreter_heads: int = 6, decision: ModelDecision = "threshold", threshold: float = 0.5,
                 budgets: Sequence[float] | None = None, thresholds: Sequence[float] | None = None,
                 min_kept: Sequence[int] | None = None, active_groups: int | None = None) -> None:
        super().__init__()
        depth = len(backbone.blocks)
        starts = list(group_starts)
        if not starts or starts != sorted(set(starts)) or starts[0] < 0 or starts[-1] >= depth:
            raise ValueError(f"group_starts {group_starts} must increase within 0..{depth - 1}")
        if budgets is not None and len(budgets) != len(starts):
            raise ValueError(f"{len(budgets)} budgets for {len(starts)} groups")
        if budgets is not None:
            check_budgets(budgets)
        if decision not in MODEL_DECISIONS:
            raise ValueError(f"decision {decision!r} is not one of {MODEL_DECISIONS}")
        self.backbone = backbone
        self.group_starts = starts
        self.group_ends = starts[1:] + [depth]
        self.interpreters = nn.ModuleList(
            MultiHeadInterpreter(backbone.embed_dim, interpreter_heads) for _ in starts)
        self.decision: ModelDecision = decision
        self.threshold = threshold
        self.budgets = None if budgets is None else list(budgets)
        self.thresholds = None if thresholds is None else list(thresholds)
        self.min_kept = None if min_kept is None else list(min_kept)
        self.active_groups = len(starts) if active_groups is None else active_groups

    def forward(self, x: Tensor, *, decision: ModelDecision | None = None, active_groups: int | None = None,
                keep: Sequence[Tensor] | None = None) -> IARedOutput:
        """(B, C, T, H, W) clip -> logits and per-group decisions.

        ``keep`` (one (B, T, N) bool per group) imposes decisions instead of the interpreters' (tests,
        random-drop baselines); scores are still reported.
        """
        decision = self.decision if decision is None else decision
        active = self.active_groups if active_groups is None else active_groups
        state = self.backbone.forward_blocks(self.backbone.embed(x), 0, self.group_starts[0])
        layout = state.layout
        present = torch.ones(layout.batch, layout.tokens_per_sample, dtype=torch.bool, device=x.device)
        groups = []
        for g, (start, end) in enumerate(zip(self.group_starts, self.group_ends)):
            scores, log_prob = None, present.new_zeros(layout.batch, dtype=x.dtype)
            if g < active or keep is not None:
                scores = self._scores(g, state)
                per_sample = None
                if keep is not None:
                    new = rearrange(keep[g], "b t n -> b (n t)") & present
                else:
                    budget = (None if self.budgets is None
                              else round(self.budgets[g] * layout.tokens_per_sample))
                    if decision == "calibrated":
                        new, log_prob = self._calibrated(g, scores, present)
                    else:
                        new, log_prob = decide(scores, present, decision, threshold=self.threshold,
                                               budget=budget)
                    per_sample = budget if decision == "budget" else None
                if decision != "none" or keep is not None:   # always select: comparing would sync
                    state, present = state.select(new, per_sample), new
            groups.append(GroupDecision(start, end - start, self._frames_first(present, layout.frames),
                                        None if scores is None else self._frames_first(scores, layout.frames),
                                        log_prob))
            state = self.backbone.forward_blocks(state, start, end)
        return IARedOutput(self.backbone.head(self.backbone.pool(state)), groups)

    def _calibrated(self, group: int, scores: Tensor, present: Tensor) -> tuple[Tensor, Tensor]:
        """Scores above the group's calibrated threshold, and at least its ``min_kept`` best ones."""
        groups = len(self.group_starts)
        if self.thresholds is None or len(self.thresholds) != groups:
            raise ValueError(f"decision 'calibrated' needs one threshold per group ({groups}), "
                             f"have {self.thresholds}: run `video-iared calibrate` on the checkpoint")
        keep, log_prob = decide(scores, present, "threshold", threshold=self.thresholds[group])
        floor = self.min_kept[group] if self.min_kept else 0
        if floor:
            keep = keep | decide(scores, present, "budget", budget=floor)[0]
        return keep, log_prob

    def _scores(self, group: int, state: TokenState) -> Tensor:
        """(B, N*T) interpreter scores of the present tokens, 0 for absent ones."""
        tokens = state.rows_by_query.gather(state.patches)            # (Q, L, D); absent slots dropped
        return state.token_map(self.interpreters[group](state.cls, tokens))

    @staticmethod
    def _frames_first(tokens: Tensor, frames: int) -> Tensor:
        return rearrange(tokens, "b (n t) -> b t n", t=frames)


def backbone_of(model: nn.Module) -> nn.Module:
    """The backbone inside an IA-RED² model (the model itself when it has no interpreters)."""
    return getattr(model, "backbone", model)


def group_starts_of(model: nn.Module) -> list[int]:
    """First block of each interpreter group (none for a dense model)."""
    return list(getattr(model, "group_starts", []))
