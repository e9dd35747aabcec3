"""What one training step optimises in each of the paper's three stages (Pan et al. 2021, Sec. 3.4).

- ``backbone``: the dense model under cross-entropy (with optional label smoothing).
- ``interpreters``: backbone frozen; the interpreters of the active curriculum groups sample keep
  decisions (``sample`` mode) and are trained with REINFORCE on R = 1 - c² / -tau.
- ``finetune``: interpreters frozen and deterministic (the deployed decision, ``iared.decision``:
  ``threshold`` as in the paper, or ``budget``); the backbone is trained with cross-entropy on the
  tokens they keep.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from video_iared.config import Config, ConfigError
from video_iared.models.iared import IARedOutput
from video_iared.models.build import check_decision

from . import distributed, policy

__all__ = ["StageInfo", "check_stage", "stage_info", "set_trainable", "backbone_loss", "interpreter_loss",
           "finetune_loss", "forward", "dense_logits", "kept_counts", "INTERPRETER_PREFIX"]

INTERPRETER_PREFIX = "interpreters."


@dataclass(frozen=True)
class StageInfo:
    """The shapes the reward needs: interpreter groups and token counts."""

    spans: tuple[int, ...]  # blocks per interpreter group
    depth: int
    num_tokens: int  # patch tokens per clip, T x N

    @property
    def num_groups(self) -> int:
        return len(self.spans)


def check_stage(cfg: Config, depth: int) -> tuple[int, ...]:
    """Check that the stage, the interpreter positions and the curriculum fit a ``depth``-block model;
    returns the blocks per interpreter group."""
    stage, blocks = cfg.iared.stage, cfg.model.group_starts
    if stage != "backbone" and not blocks:
        raise ConfigError(f"iared.stage={stage} needs interpreters: set model.group_starts")
    check_decision(cfg.iared, len(blocks))
    try:
        spans = tuple(policy.group_spans(blocks, depth)) if blocks else ()
        policy.check_curriculum(cfg.iared.curriculum_epochs, len(spans))
    except ValueError as err:
        raise ConfigError(f"model.group_starts / iared.curriculum_epochs: {err}") from err
    return spans


def stage_info(cfg: Config, depth: int, num_tokens: int) -> StageInfo:
    """The reward's shapes for a built model (``num_tokens`` = T x patches per frame)."""
    return StageInfo(check_stage(cfg, depth), depth, num_tokens)


def set_trainable(model: nn.Module, stage: str) -> None:
    """Freeze what the stage keeps fixed: the backbone in ``interpreters``, the interpreters elsewhere
    (the ``backbone`` stage runs the dense model, so interpreters get no gradient there)."""
    for name, param in model.named_parameters():
        is_interpreter = name.startswith(INTERPRETER_PREFIX)
        param.requires_grad_(is_interpreter if stage == "interpreters" else not is_interpreter)


def forward(model: nn.Module, clips: torch.Tensor, *, decision: str,
            active_groups: int | None = None) -> IARedOutput:
    """The IA-RED2 model's output (logits and one :class:`GroupDecision` per group) with the first
    ``active_groups`` interpreters deciding and the later ones keeping every token."""
    return model(clips, decision=decision, active_groups=active_groups)


def dense_logits(model: nn.Module, clips: torch.Tensor, info: StageInfo) -> torch.Tensor:
    """Logits of the dense model (a plain backbone, or an IA-RED2 model with decisions off)."""
    return forward(model, clips, decision="none").logits if info.num_groups else model(clips)


def kept_counts(out: IARedOutput) -> torch.Tensor:
    """(B, G) patch tokens each group's blocks run on."""
    return torch.stack([group.kept for group in out.groups], -1)


def _accuracy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return (logits.argmax(-1) == labels).float().mean()


def backbone_loss(model: nn.Module, clips: torch.Tensor, labels: torch.Tensor, label_smoothing: float,
                  info: StageInfo) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Cross-entropy of the dense model."""
    logits = dense_logits(model, clips, info)
    loss = F.cross_entropy(logits.float(), labels, label_smoothing=label_smoothing)
    return loss, {"acc": _accuracy(logits, labels)}


def finetune_loss(model: nn.Module, clips: torch.Tensor, labels: torch.Tensor, label_smoothing: float,
                  info: StageInfo,
                  decision: str = "threshold") -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Cross-entropy of the backbone on the tokens the fixed interpreters keep under ``decision``
    (``threshold``; ``budget``: the model's ``budgets``)."""
    out = forward(model, clips, decision=decision)
    loss = F.cross_entropy(out.logits.float(), labels, label_smoothing=label_smoothing)
    return loss, {"acc": _accuracy(out.logits, labels), **_keep_stats(kept_counts(out), info)}


def _keep_stats(counts: torch.Tensor, info: StageInfo) -> dict[str, torch.Tensor]:
    counts = counts.float()
    stats = {f"kept_share_g{g}": counts[:, g].mean() / info.num_tokens for g in range(info.num_groups)}
    stats["kept_share"] = policy.kept_share(counts, info.num_tokens, info.spans, info.depth).mean()
    return stats


def interpreter_loss(model: nn.Module, clips: torch.Tensor, labels: torch.Tensor, *, active: int,
                     info: StageInfo, wrong_penalty: float, baseline_kind: str,
                     running: policy.RunningMean,
                     rollouts: int = 1) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """REINFORCE on ``rollouts`` sampled rollouts per clip of the first ``active`` groups.

    Baseline ``running_mean``: the running mean of the (all-process) batch reward; ``greedy``: the
    self-critical reward of the threshold rollout of the same clip (Rennie et al. 2017);
    ``leave_one_out``: the mean reward of the clip's other rollouts.
    """
    batch = clips.shape[0]
    repeated = clips if rollouts == 1 else clips.repeat(rollouts, *[1] * (clips.dim() - 1))  # (K·B, ...)
    out = forward(model, repeated, decision="sample", active_groups=active)
    counts = kept_counts(out)
    correct = out.logits.argmax(-1) == labels.repeat(rollouts)
    rewards = policy.reward(correct, policy.kept_share(counts, info.num_tokens, info.spans, info.depth),
                            wrong_penalty)
    log_prob = torch.stack([group.log_prob for group in out.groups[:active]], -1).sum(-1)
    if baseline_kind == "greedy":
        with torch.no_grad():
            greedy = forward(model, clips, decision="threshold", active_groups=active)
            greedy_share = policy.kept_share(kept_counts(greedy), info.num_tokens, info.spans, info.depth)
            greedy_reward = policy.reward(greedy.logits.argmax(-1) == labels, greedy_share, wrong_penalty)
            base = greedy_reward.repeat(rollouts)
    elif baseline_kind == "leave_one_out":
        base = policy.leave_one_out_baseline(rewards.view(rollouts, batch)).flatten()
    else:
        batch_mean = distributed.all_reduce_mean(rewards.mean()).item()
        base = torch.tensor(running.value(batch_mean), device=rewards.device)
        running.update(batch_mean)
    loss = policy.reinforce_loss(rewards, base, log_prob)
    return loss, {"reward": rewards.mean(), "acc": correct.float().mean(), **_keep_stats(counts, info)}
