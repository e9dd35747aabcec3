"""``video-iared calibrate``: one threshold per interpreter group, fitted so the threshold decision
spends on average what a cumulative budget spends, saved into the checkpoint.

Why: the paper's fixed threshold (0.5) lands wherever the interpreters' score scale happens to be after
REINFORCE, so its GFLOPs and accuracy move from run to run. A calibrated threshold keeps the threshold's
per-clip adaptivity (an easy clip keeps fewer tokens) at the budget's mean cost. The fit is label-free
and uses training videos under the test transform, so the test set stays untouched.

Group by group, in order: with the earlier groups at their fitted thresholds and group ``g`` keeping
every token left to it, ``t_g`` is the score above which ``budget[g] · T·N · clips`` of the pooled
present tokens lie, counting for each clip at least its floor of ``FLOOR_SHARE · budget[g] · T·N`` best
tokens (:func:`floored_threshold`).
"""
from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Subset

from video_iared.config import Config, ConfigError
from video_iared.data.transforms import normalize_on_device
from video_iared.models.iared import IARed
from video_iared.models.weights import read_checkpoint

from . import distributed
from .checkpoint import save_checkpoint
from .datasets import build_dataset, input_spec
from .loading import load_for_inference

__all__ = ["CALIBRATION_KEY", "FLOOR_SHARE", "floored_threshold", "fit_thresholds", "calibrate"]

CALIBRATION_KEY = "calibration"  # checkpoint entry: thresholds and what they were fitted to
# every clip keeps at least this share of a group's mean budget: a clip whose scores all sit below the
# threshold would otherwise lose nearly every token (on the clutter set, 3 seeds, the worst seed against
# the budget decision at its GFLOPs: -5.4 points with a floor of 0.5, -2.5 with 0.75, -1.5 with 0.9;
# docs/results.md, The clutter set)
FLOOR_SHARE = 0.9


def floored_threshold(per_clip: Sequence[Tensor], kept: int, floor: int = 0) -> float:
    """The threshold ``t`` under which the clips keep ``kept`` tokens in all, each clip its scores above
    ``t`` but at least its ``floor`` best: the largest total not above ``kept`` (exact when no floor and
    no ties). ``t`` is one of the scores (or -inf), so comparing in their own dtype keeps counts exact."""
    pooled = torch.cat(list(per_clip))
    if not 0 <= kept <= pooled.numel():
        raise ValueError(f"cannot keep {kept} of {pooled.numel()} scores")
    ranked = pooled.sort(descending=True).values
    ascending = [scores.sort().values for scores in per_clip]
    floors = [min(floor, scores.numel()) for scores in per_clip]

    def total(t: Tensor) -> int:
        return sum(max(len(s) - int(torch.searchsorted(s, t, right=True)), f)
                   for s, f in zip(ascending, floors))

    if kept == pooled.numel():
        return -math.inf
    if total(ranked[0]) > kept:
        return ranked[0].item()  # the floors alone exceed the budget
    lo, hi = 0, len(ranked) - 1  # total(ranked[i]) grows with i: the last i with total <= kept
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if total(ranked[mid]) <= kept else (lo, mid - 1)
    return ranked[lo].item()


@torch.no_grad()
def fit_thresholds(model: IARed, clips: Sequence[Tensor], budget: Sequence[float],
                   floor_share: float = 0.0) -> tuple[list[float], list[int]]:
    """Per-group thresholds and per-sample floors for ``model`` on normalised ``clips`` (batches): group
    ``g`` keeps ``budget[g]`` of the T·N patch tokens on average over the clips, and every clip at least
    ``floor_share`` of that (one pass per group)."""
    if len(budget) != len(model.group_starts):
        raise ValueError(f"{len(budget)} budgets for {len(model.group_starts)} interpreter groups")
    fitted: list[float] = []
    tokens = 0
    floors: list[int] = []
    for g, share in enumerate(budget):
        # earlier groups at their fitted thresholds; this one and later ones keep every token
        thresholds = fitted + [-math.inf] * (len(budget) - g)
        min_kept = floors + [0] * (len(budget) - g)
        per_clip, total = [], 0
        for clip in clips:
            group = model(clip, decision="calibrated", thresholds=thresholds, min_kept=min_kept).groups[g]
            tokens = group.keep[0].numel()
            per_clip += [scores[keep].float().cpu() for scores, keep in zip(group.scores, group.keep)]
            total += tokens * clip.shape[0]
        floors.append(round(floor_share * share * tokens))
        fitted.append(floored_threshold(per_clip, round(share * total), floors[-1]))
    return fitted, floors


def _calibration_clips(cfg: Config, videos: int, device: torch.device) -> list[Tensor]:
    """``videos`` training videos spread evenly over the list, one centre clip each (the validation
    transform), normalised on ``device``."""
    spec = input_spec(cfg)
    data = replace(cfg.data, val_list=cfg.data.train_list)  # the train list under the val transform
    dataset = build_dataset(replace(cfg, data=data), "val", spec)
    picked = torch.linspace(0, len(dataset) - 1, min(videos, len(dataset))).round().long().unique()
    loader = DataLoader(Subset(dataset, picked.tolist()), batch_size=cfg.data.batch_size,
                        num_workers=cfg.data.num_workers)
    # unreadable videos come back with label -1 and are left out
    return [normalize_on_device(batch["clip"][batch["label"] >= 0].to(device), spec.mean, spec.std)
            for batch in loader if (batch["label"] >= 0).any()]


def calibrate(cfg: Config, checkpoint: str | Path, *, videos: int = 256, out: str | Path | None = None,
              budget: Sequence[float] | None = None, floor_share: float | None = None) -> dict[str, Any]:
    """Fit thresholds to ``budget`` (default ``cfg.iared.budget``, the deployed one) on ``videos``
    training videos and write them into ``out`` (default: the checkpoint itself, atomically, weights
    untouched). Returns the calibration entry; decision ``calibrated`` then uses it."""
    budget = list(budget or cfg.iared.budget)
    if not cfg.model.group_starts:
        raise ConfigError("calibrate needs an IA-RED² model: model.group_starts is empty")
    if len(budget) != len(cfg.model.group_starts):
        raise ConfigError(f"calibrate fits thresholds to a cumulative budget, one keep ratio per interpreter "
                          f"group ({len(cfg.model.group_starts)}): set iared.budget or --budget "
                          f"(got {budget})")
    device = distributed.resolve_device(cfg.run.device)
    state = dict(read_checkpoint(checkpoint))
    model = load_for_inference(cfg, state, device, source=str(checkpoint))
    clips = _calibration_clips(cfg, videos, device)
    floor_share = FLOOR_SHARE if floor_share is None else floor_share
    if not 0.0 <= floor_share <= 1.0:
        raise ConfigError(f"the floor share must be in [0, 1], got {floor_share}")
    thresholds, min_kept = fit_thresholds(model, clips, budget, floor_share)
    entry = {"thresholds": thresholds, "min_kept": min_kept, "floor_share": floor_share, "budget": budget,
             "videos": sum(len(c) for c in clips), "list": cfg.data.train_list}
    state[CALIBRATION_KEY] = entry
    save_checkpoint(state, out or checkpoint)
    return entry
