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

    How tokens are kept is decided per call: ``forward``'s keyword arguments, each defaulting to the
    value given at construction (the deployed setting, e.g. from a config or a checkpoint):

    - ``decision``: ``sample`` (training) | ``threshold`` | ``calibrated`` | ``budget`` | ``none``;
    - ``threshold``: the ``threshold`` decision's score cut (the paper's 0.5);
    - ``budgets``: cumulative keep ratios per group against the patch tokens (decision ``budget``); each
      frame keeps ``round(budget * N)`` of its N tokens, so every shape is fixed by the budget;
    - ``thresholds`` and ``min_kept``: one score cut per group and the tokens every sample keeps at
      least (decision ``calibrated``; ``engine.calibrate`` fits them to a budget's mean cost);
    - ``active_groups``: the curriculum: interpreters after the first ``active_groups`` keep every token.
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
        self.backbone = backbone
        self.group_starts = starts
        self.group_ends = starts[1:] + [depth]
        self.interpreters = nn.ModuleList(
            MultiHeadInterpreter(backbone.embed_dim, interpreter_heads) for _ in starts)
        self._check(decision, budgets, thresholds, min_kept)
        self.decision: ModelDecision = decision
        self.threshold = threshold
        self.budgets = None if budgets is None else list(budgets)
        self.thresholds = None if thresholds is None else list(thresholds)
        self.min_kept = None if min_kept is None else list(min_kept)
        self.active_groups = len(starts) if active_groups is None else active_groups

    def _check(self, decision: ModelDecision, budgets: Sequence[float] | None,
               thresholds: Sequence[float] | None, min_kept: Sequence[int] | None) -> None:
        groups = len(self.group_starts)
        if decision not in MODEL_DECISIONS:
            raise ValueError(f"decision {decision!r} is not one of {MODEL_DECISIONS}")
        if budgets is not None:
            if len(budgets) != groups:
                raise ValueError(f"{len(budgets)} budgets for {groups} groups")
            check_budgets(budgets)
        if decision == "budget" and budgets is None:
            raise ValueError("decision 'budget' needs budgets: one cumulative keep ratio per group")
        if decision == "calibrated" and (thresholds is None or len(thresholds) != groups):
            raise ValueError(f"decision 'calibrated' needs one threshold per group ({groups}), "
                             f"have {thresholds}: run `video-iared calibrate` on the checkpoint")
        if min_kept and len(min_kept) != groups:
            raise ValueError(f"{len(min_kept)} min_kept values for {groups} groups")

    def forward(self, x: Tensor, *, decision: ModelDecision | None = None, threshold: float | None = None,
                budgets: Sequence[float] | None = None, thresholds: Sequence[float] | None = None,
                min_kept: Sequence[int] | None = None, active_groups: int | None = None,
                keep: Sequence[Tensor] | None = None) -> IARedOutput:
        """(B, C, T, H, W) clip -> logits and per-group decisions (arguments: see the class).

        ``keep`` (one (B, T, N) bool per group) imposes decisions instead of the interpreters' (tests,
        random-drop baselines); scores are still reported.
        """
        decision = self.decision if decision is None else decision
        threshold = self.threshold if threshold is None else threshold
        budgets = self.budgets if budgets is None else list(budgets)
        thresholds = self.thresholds if thresholds is None else list(thresholds)
        min_kept = self.min_kept if min_kept is None else list(min_kept)
        active = self.active_groups if active_groups is None else active_groups
        if keep is None:
            self._check(decision, budgets if decision == "budget" else None, thresholds, min_kept)
        state = self.backbone.forward_blocks(self.backbone.embed(x), 0, self.group_starts[0])
        layout = state.layout
        present = torch.ones(layout.batch, layout.tokens_per_sample, dtype=torch.bool, device=x.device)
        groups = []
        for g, (start, end) in enumerate(zip(self.group_starts, self.group_ends)):
            scores, log_prob = None, present.new_zeros(layout.batch, dtype=x.dtype)
            if g < active or keep is not None:
                scores = self._scores(g, state)
                per_frame = None
                if keep is not None:
                    new = rearrange(keep[g], "b t n -> b (n t)") & present
                elif decision == "calibrated":
                    floor = min_kept[g] if min_kept else 0
                    new, log_prob = self._calibrated(scores, present, thresholds[g], floor)
                elif decision == "budget":
                    per_frame = round(budgets[g] * layout.locations)
                    new, log_prob = decide(scores, present, "budget", count=per_frame, frames=layout.frames)
                else:
                    new, log_prob = decide(scores, present, decision, threshold=threshold)
                if decision != "none" or keep is not None:   # always select: comparing would sync
                    state, present = state.select(new, per_frame=per_frame), new
            groups.append(GroupDecision(start, end - start, self._frames_first(present, layout.frames),
                                        None if scores is None else self._frames_first(scores, layout.frames),
                                        log_prob))
            state = self.backbone.forward_blocks(state, start, end)
        return IARedOutput(self.backbone.head(self.backbone.pool(state)), groups)

    @staticmethod
    def _calibrated(scores: Tensor, present: Tensor, threshold: float, floor: int) -> tuple[Tensor, Tensor]:
        """Scores above the group's calibrated threshold, and at least its ``floor`` best ones."""
        keep, log_prob = decide(scores, present, "threshold", threshold=threshold)
        if floor:
            keep = keep | decide(scores, present, "budget", count=floor)[0]
        return keep, log_prob

    def _scores(self, group: int, state: TokenState) -> Tensor:
        """(B, N*T) interpreter scores of the present tokens, 0 for absent ones."""
        tokens = state.rows_by_query.gather(state.patches)            # (Q, L, D); absent slots dropped
        return state.per_token(self.interpreters[group](state.cls, tokens))

    @staticmethod
    def _frames_first(tokens: Tensor, frames: int) -> Tensor:
        return rearrange(tokens, "b (n t) -> b t n", t=frames)


def backbone_of(model: nn.Module) -> nn.Module:
    """The backbone inside an IA-RED² model (the model itself when it has no interpreters)."""
    return getattr(model, "backbone", model)


def group_starts_of(model: nn.Module) -> list[int]:
    """First block of each interpreter group (none for a dense model)."""
    return list(getattr(model, "group_starts", []))
