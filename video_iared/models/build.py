"""Config -> model: the only place that maps ``ModelConfig`` to constructor keyword arguments."""
from __future__ import annotations

import difflib
import logging
from collections.abc import Mapping

import timm
from torch import nn

from video_iared.config import ConfigError, IARedConfig, ModelConfig

from .iared import IARed
from .interpreter import check_budgets
from .weights import load_weights

__all__ = ["build_model", "backbone_kwargs", "check_decision", "decision_kwargs"]

log = logging.getLogger(__name__)


def backbone_kwargs(cfg: ModelConfig) -> dict:
    """Keyword arguments for ``timm.create_model(cfg.name, **kwargs)``; ``None`` values (frames,
    image size, attention type, init std — which image models don't take) keep the registered defaults."""
    kwargs = dict(num_classes=cfg.num_classes, drop_rate=cfg.drop_rate, attn_drop_rate=cfg.attn_drop_rate,
                  drop_path_rate=cfg.drop_path_rate)
    optional = {"attention_type": cfg.attention_type, "num_frames": cfg.num_frames, "img_size": cfg.img_size,
                "init_std": cfg.init_std}
    return kwargs | {key: value for key, value in optional.items() if value is not None}


def build_model(cfg: ModelConfig, load: bool = True, *, decision: IARedConfig | None = None,
                calibration: Mapping | None = None) -> nn.Module:
    """The registered backbone ``cfg.name``, wrapped in :class:`IARed` when ``cfg.group_starts``
    is set, with ``cfg.weights`` loaded (any file ``load_weights`` understands: official ``.pyth``,
    ImageNet ViT/DeiT, this project's checkpoints; backbone-only files go into the backbone).
    ``load=False`` skips ``cfg.weights`` (evaluation loads its ``--checkpoint`` instead).
    ``decision`` (and a checkpoint's ``calibration``) set the IA-RED² model's deployed decision, its
    default for every call (:func:`decision_kwargs`)."""
    if not timm.is_model(cfg.name):
        from .registry import list_variants

        names = list_variants()
        near = difflib.get_close_matches(cfg.name, names, n=1)
        hint = f"did you mean {near[0]}?" if near else f"choose one of {', '.join(names)}"
        raise ConfigError(f"model.name={cfg.name} is not a registered model; {hint}")
    try:
        model = timm.create_model(cfg.name, **backbone_kwargs(cfg))
    except TypeError as err:  # a video-only key (attention_type, num_frames, init_std) on an image model
        raise ConfigError(f"model.name={cfg.name} does not take a key set under model: ({err}); "
                          "remove it from the config") from err
    if cfg.grad_checkpointing:
        model.set_grad_checkpointing(True)
    if cfg.group_starts:
        try:
            kwargs = {} if decision is None else decision_kwargs(decision, len(cfg.group_starts),
                                                                 calibration)
            model = IARed(model, group_starts=cfg.group_starts, interpreter_heads=cfg.interpreter_heads,
                          **kwargs)
        except ValueError as err:  # positions beyond the depth, heads that do not divide the width
            raise ConfigError(f"model.group_starts / interpreter_heads do not fit "
                              f"model.name={cfg.name}: {err}") from err
    if load and cfg.weights:
        log.info("%s", load_weights(model, cfg.weights, new_head=cfg.reset_head))
    return model


def check_decision(cfg: IARedConfig, num_groups: int) -> None:
    """``iared.budget``, whenever set, is one cumulative keep ratio per interpreter group, non-increasing,
    in (0, 1], and a ``budget`` decision needs it; raises :class:`ConfigError` naming ``iared.budget``
    otherwise. Every command checks its config with this one function."""
    if cfg.budget and num_groups and len(cfg.budget) != num_groups:
        raise ConfigError(f"iared.budget {cfg.budget} has {len(cfg.budget)} keep ratios for {num_groups} "
                          "interpreter groups; give one cumulative keep ratio per interpreter group")
    if cfg.budget:
        try:
            check_budgets(cfg.budget)
        except ValueError as err:
            raise ConfigError(f"iared.budget: {err}") from err
    if num_groups and cfg.decision == "budget" and not cfg.budget:
        raise ConfigError(f"iared.decision=budget needs iared.budget: one cumulative keep ratio per "
                          f"interpreter group ({num_groups})")


def decision_kwargs(cfg: IARedConfig, num_groups: int, calibration: Mapping | None = None) -> dict:
    """``IARed`` keyword arguments of the deployed decision: ``cfg.decision`` with ``cfg.threshold`` or
    ``cfg.budget``, and the per-group thresholds of a ``video-iared calibrate`` ``calibration``."""
    check_decision(cfg, num_groups)
    kwargs = dict(decision=cfg.decision, threshold=cfg.threshold, budgets=list(cfg.budget) or None)
    if calibration:
        kwargs |= dict(thresholds=list(calibration["thresholds"]),
                       min_kept=list(calibration.get("min_kept", [])) or None)
    return kwargs
