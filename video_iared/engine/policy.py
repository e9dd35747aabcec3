"""IA-RED2's policy-gradient pieces (Pan et al. 2021, Sec. 3.3), as pure tensor functions.

The interpreters are trained with REINFORCE: each sampled keep/drop rollout earns R = 1 - c² when
the prediction is correct and -tau when it is wrong, where c is the block-weighted share of tokens
kept (the paper's cost proxy). A baseline b (running mean of R, the self-critical reward of the
greedy threshold rollout, or the mean reward of the clip's other sampled rollouts) reduces the
gradient's variance without biasing it.
"""
from __future__ import annotations

from typing import Sequence

import torch

from video_iared.flops import kept_share  # the cost proxy lives with the other cost formulas

__all__ = ["group_spans", "kept_share", "reward", "RunningMean", "leave_one_out_baseline", "reinforce_loss",
           "active_groups", "check_curriculum"]


def group_spans(group_starts: Sequence[int], depth: int) -> list[int]:
    """Number of blocks each interpreter's group runs: from its block to the next interpreter's."""
    starts = list(group_starts)
    if not starts:
        raise ValueError("an IA-RED2 model needs at least one interpreter block")
    if starts != sorted(set(starts)) or starts[0] < 0 or starts[-1] >= depth:
        raise ValueError(f"interpreter blocks {starts} must be increasing and within [0, {depth})")
    return [end - start for start, end in zip(starts, starts[1:] + [depth])]


def reward(correct: torch.Tensor, share: torch.Tensor, wrong_penalty: float) -> torch.Tensor:
    """R = 1 - c² for a correct prediction, -tau for a wrong one (the released tool's tau is 1)."""
    return torch.where(correct, 1.0 - share.float() ** 2, torch.full_like(share.float(), -wrong_penalty))


class RunningMean:
    """Exponential running mean of the batch-mean reward: b <- m * b + (1 - m) * mean(R).

    ``value`` is read before ``update`` so the baseline never depends on the rewards it centres;
    its state goes into checkpoints so a resumed run uses the same baseline.
    """

    def __init__(self, momentum: float) -> None:
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"baseline momentum must be in [0, 1), got {momentum}")
        self.momentum = momentum
        self.mean: float | None = None

    def value(self, batch_mean: float) -> float:
        """The baseline for this batch; the first batch is centred on its own mean."""
        return batch_mean if self.mean is None else self.mean

    def update(self, batch_mean: float) -> None:
        self.mean = batch_mean if self.mean is None else (
            self.momentum * self.mean + (1.0 - self.momentum) * batch_mean)

    def state_dict(self) -> dict[str, float | None]:
        return {"mean": self.mean}

    def load_state_dict(self, state: dict[str, float | None]) -> None:
        self.mean = state["mean"]


def leave_one_out_baseline(rewards: torch.Tensor) -> torch.Tensor:
    """(K, B) rewards of K rollouts per clip -> each rollout's baseline: the mean reward of the clip's
    K - 1 other rollouts (unbiased, as it never sees the rollout it centres; Kool et al. 2019)."""
    rollouts = rewards.shape[0]
    if rollouts < 2:
        raise ValueError("a leave-one-out baseline needs at least 2 rollouts per clip")
    return (rewards.sum(0, keepdim=True) - rewards) / (rollouts - 1)


def reinforce_loss(rewards: torch.Tensor, baseline: torch.Tensor | float,
                   log_prob: torch.Tensor) -> torch.Tensor:
    """-mean((R - b) * sum log p): ``log_prob`` (B,) sums the log-probabilities of every decision."""
    advantage = (rewards - baseline).detach()
    return -(advantage * log_prob).mean()


def check_curriculum(curriculum_epochs: Sequence[int], num_groups: int) -> None:
    """A curriculum switches groups on one at a time from the first: one start epoch per group,
    non-decreasing, the first at epoch 0 (otherwise early epochs would have nothing to train)."""
    epochs = list(curriculum_epochs)
    if not epochs:
        return
    if len(epochs) != num_groups:
        raise ValueError(f"iared.curriculum_epochs has {len(epochs)} entries for {num_groups} "
                         "interpreter groups; give one start epoch per group")
    if epochs[0] != 0 or any(b < a for a, b in zip(epochs, epochs[1:])):
        raise ValueError(f"iared.curriculum_epochs {epochs} must start at 0 and never decrease")


def active_groups(epoch: int, curriculum_epochs: Sequence[int], num_groups: int) -> int:
    """How many interpreter groups (the first ones) make decisions at ``epoch``; all when no curriculum."""
    check_curriculum(curriculum_epochs, num_groups)
    if not curriculum_epochs:
        return num_groups
    return sum(start <= epoch for start in curriculum_epochs)
