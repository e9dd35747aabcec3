"""``video-iared calibrate``: one threshold per interpreter group, fitted so the threshold decision
spends on average what a cumulative budget spends, saved into the checkpoint.

Why: the paper's fixed threshold (0.5) lands wherever the interpreters' score scale happens to be after
REINFORCE, so its GFLOPs and accuracy move from run to run. A calibrated threshold keeps the threshold's
per-clip adaptivity (an easy clip keeps fewer tokens) at the budget's mean cost. The fit is label-free
and uses training videos under the test transform, so the test set stays untouched.

Group by group, in order: with the earlier groups at their fitted thresholds and group ``g`` keeping
every token left to it, ``t_g`` is the score above which ``budget[g] · T·N · clips`` of the pooled
present tokens lie (:func:`share_threshold`).
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

__all__ = ["CALIBRATION_KEY", "share_threshold", "fit_thresholds", "calibrate"]

CALIBRATION_KEY = "calibration"  # checkpoint entry: thresholds and what they were fitted to


def share_threshold(scores: Tensor, kept: int) -> float:
    """The threshold ``t`` with exactly ``kept`` of ``scores`` strictly above it (1-D, pooled over
    clips; ties aside): the highest score left out. It is one of the scores, so comparing in their own
    dtype (a float32 comparison rounds a midpoint) keeps the count exact."""
    if not 0 <= kept <= scores.numel():
        raise ValueError(f"cannot keep {kept} of {scores.numel()} scores")
    if kept == scores.numel():
        return -math.inf
    return scores.sort(descending=True).values[kept].item()


@torch.no_grad()
def fit_thresholds(model: IARed, clips: Sequence[Tensor], budget: Sequence[float]) -> list[float]:
    """Per-group thresholds for ``model`` on normalised ``clips`` (batches) so that group ``g`` keeps
    ``budget[g]`` of the T·N patch tokens on average over the clips (one pass per group)."""
    if len(budget) != len(model.group_starts):
        raise ValueError(f"{len(budget)} budgets for {len(model.group_starts)} interpreter groups")
    saved = model.thresholds
    fitted: list[float] = []
    try:
        for g, share in enumerate(budget):
            # earlier groups at their fitted thresholds; this one and later ones keep every token
            model.thresholds = fitted + [-math.inf] * (len(budget) - g)
            pooled, total = [], 0
            for clip in clips:
                group = model(clip, decision="calibrated").groups[g]
                pooled.append(group.scores[group.keep].float().cpu())
                total += group.keep[0].numel() * clip.shape[0]
            fitted.append(share_threshold(torch.cat(pooled), round(share * total)))
    finally:
        model.thresholds = saved
    return fitted


def _calibration_clips(cfg: Config, videos: int, device: torch.device) -> list[Tensor]:
    """``videos`` training videos spread evenly over the list, one centre clip each (the validation
    transform), normalised on ``device``."""
    spec = input_spec(cfg)
    data = replace(cfg.data, val_list=cfg.data.train_list)  # the train list under the val transform
    dataset = build_dataset(replace(cfg, data=data), "val", spec)
    picked = torch.linspace(0, len(dataset) - 1, min(videos, len(dataset))).round().long().unique()
    loader = DataLoader(Subset(dataset, picked.tolist()), batch_size=cfg.data.batch_size,
                        num_workers=cfg.data.num_workers)
    return [normalize_on_device(batch["clip"].to(device), spec.mean, spec.std) for batch in loader]


def calibrate(cfg: Config, checkpoint: str | Path, *, videos: int = 256, out: str | Path | None = None,
              budget: Sequence[float] | None = None) -> dict[str, Any]:
    """Fit thresholds to ``budget`` (default ``cfg.iared.budget``, the deployed one) on ``videos``
    training videos and write them into ``out`` (default: the checkpoint itself, atomically, weights
    untouched). Returns the calibration entry; decision ``calibrated`` then uses it."""
    budget = list(budget or cfg.iared.budget)
    if not cfg.model.interpreter_blocks:
        raise ConfigError("calibrate needs an IA-RED² model: model.interpreter_blocks is empty")
    if len(budget) != len(cfg.model.interpreter_blocks):
        raise ConfigError(f"calibrate fits thresholds to a cumulative budget, one keep ratio per interpreter "
                          f"group ({len(cfg.model.interpreter_blocks)}): set iared.budget or --budget "
                          f"(got {budget})")
    device = distributed.resolve_device(cfg.run.device)
    state = dict(read_checkpoint(checkpoint))
    model = load_for_inference(cfg, state, device, source=str(checkpoint))
    clips = _calibration_clips(cfg, videos, device)
    thresholds = fit_thresholds(model, clips, budget)
    entry = {"thresholds": thresholds, "budget": budget, "videos": sum(len(c) for c in clips),
             "list": cfg.data.train_list}
    state[CALIBRATION_KEY] = entry
    save_checkpoint(state, out or checkpoint)
    return entry
