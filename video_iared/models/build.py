"""Config -> model: the only place that maps ``ModelConfig`` to constructor keyword arguments."""
from __future__ import annotations

import logging

import timm
from torch import nn

from video_iared.config import ModelConfig

from .weights import load_weights

__all__ = ["build_model", "model_kwargs"]

log = logging.getLogger(__name__)


def model_kwargs(cfg: ModelConfig) -> dict:
    """Constructor keyword arguments for ``timm.create_model(cfg.name, **kwargs)``; ``None`` values
    (frames, image size) keep the registered variant's defaults."""
    kwargs = dict(num_classes=cfg.num_classes, attention_type=cfg.attention_type, drop_rate=cfg.drop_rate,
                  attn_drop_rate=cfg.attn_drop_rate, drop_path_rate=cfg.drop_path_rate)
    if cfg.num_frames is not None:
        kwargs["num_frames"] = cfg.num_frames
    if cfg.img_size is not None:
        kwargs["img_size"] = cfg.img_size
    if cfg.interpreter_blocks:
        kwargs.update(interpreter_blocks=list(cfg.interpreter_blocks), interpreter_heads=cfg.interpreter_heads)
    return kwargs


def build_model(cfg: ModelConfig) -> nn.Module:
    """Create the registered model ``cfg.name`` and load ``cfg.weights`` (any file ``load_weights``
    understands: official ``.pyth``, ImageNet ViT/DeiT, this project's checkpoints)."""
    model = timm.create_model(cfg.name, **model_kwargs(cfg))
    if cfg.grad_checkpointing:
        model.set_grad_checkpointing(True)
    if cfg.weights:
        log.info("%s", load_weights(model, cfg.weights))
    return model
