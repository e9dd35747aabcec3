"""Strict loading for inference (evaluate, sweep, predict, interpret): the config's model with every
weight from a checkpoint and its deployed decision, in eval mode.

Stricter than training's loading (``build_model`` with ``model.weights``): a checkpoint that leaves any
parameter at its initialisation — a head for another class count, interpreters missing from a dense
checkpoint — is an error that names the keys, since it would silently run random weights.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from video_iared.config import Config
from video_iared.models.build import build_model, set_decision
from video_iared.models.iared import IARed
from video_iared.models.weights import WeightsError, load_weights, read_checkpoint

__all__ = ["load_for_inference"]


def load_for_inference(cfg: Config, checkpoint: str | Path | Mapping, device: torch.device | str, *,
                       source: str = "") -> nn.Module:
    """``build_model(cfg.model)`` with every weight from ``checkpoint`` (a path, or a checkpoint already
    read, named ``source`` in errors), ``cfg.iared``'s decision deployed, in eval mode on ``device``.
    Thresholds calibrated into the checkpoint (``video-iared calibrate``) come with it."""
    model = build_model(cfg.model, load=False)  # every weight comes from ``checkpoint``
    set_decision(model, cfg.iared)  # checks iared.budget before any work; predictors set theirs per call
    if not isinstance(checkpoint, Mapping):
        source, checkpoint = source or str(checkpoint), read_checkpoint(checkpoint)
    calibration = checkpoint.get("calibration")
    if isinstance(model, IARed) and calibration:
        if len(calibration["thresholds"]) != len(model.group_starts):
            raise WeightsError(f"{source}: {len(calibration['thresholds'])} calibrated thresholds for "
                               f"{len(model.group_starts)} interpreter groups; calibrate it again")
        model.thresholds = list(calibration["thresholds"])
        model.min_kept = list(calibration.get("min_kept", []))
    if cfg.iared.decision == "calibrated" and not (isinstance(model, IARed) and calibration):
        raise WeightsError(f"iared.decision=calibrated: {source} holds no calibrated thresholds; run "
                           f"`video-iared calibrate --config CFG --checkpoint {source}` first")
    report = load_weights(model, checkpoint, strict=True)
    if report.missing:
        raise WeightsError(
            f"{source or checkpoint} does not hold every weight of {cfg.model.name} (interpreters before "
            f"blocks {list(cfg.model.interpreter_blocks)}, {cfg.model.num_classes} classes): "
            f"missing {', '.join(report.missing[:6])}{' ...' if len(report.missing) > 6 else ''}")
    return model.to(device).eval()
