"""Optimiser and learning-rate schedule from ``OptimConfig``.

Official TimeSformer K400 recipe: SGD (momentum 0.9, nesterov), weight decay 1e-4, lr 0.005 for a
global batch of 64, x0.1 at epochs 11 and 14. DeiT/timm practice excludes norms, biases and the
learned embeddings (cls token, position and time embeddings) from weight decay. The schedule is
evaluated per optimiser step, so warmup and cosine are smooth within an epoch.
"""
from __future__ import annotations

import functools
import math

import torch
from torch import nn

from video_iared.config import ConfigError, OptimConfig

__all__ = ["NO_DECAY_NAMES", "param_groups", "scaled_lr", "build_optimizer", "lr_factor",
           "build_scheduler"]

NO_DECAY_NAMES = ("cls_token", "pos_embed", "time_embed")


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Trainable parameters split into a decayed group and an undecayed one (1-D tensors: norms,
    biases; and the learned embeddings)."""
    # Not timm.optim.param_groups_weight_decay: it puts the undecayed group first and returns one group at
    # weight_decay 0 (the interpreters stage), so checkpointed optimiser states would no longer resume.
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        skip = param.ndim <= 1 or name.split(".")[-1] in NO_DECAY_NAMES
        (no_decay if skip else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def scaled_lr(cfg: OptimConfig, global_batch: int) -> float:
    """Linear scaling rule (Goyal et al. 2017): ``cfg.lr`` is meant for ``cfg.global_batch``."""
    return cfg.lr * global_batch / cfg.global_batch


def build_optimizer(model: nn.Module, cfg: OptimConfig, global_batch: int) -> torch.optim.Optimizer:
    """SGD (nesterov) or AdamW over ``model``'s trainable parameters, lr scaled to ``global_batch``."""
    groups = param_groups(model, cfg.weight_decay)
    if not any(group["params"] for group in groups):
        raise ConfigError("the model has no trainable parameters for this stage")
    lr = scaled_lr(cfg, global_batch)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    return torch.optim.AdamW(groups, lr=lr)


# Not timm's CosineLRScheduler: its warmup starts at warmup_lr_init on step 0 (here lr/warmup), and it steps
# by step_update(n) outside torch's LRScheduler, whose state_dict the checkpoints resume from.
def lr_factor(step: int, *, steps_per_epoch: int, cfg: OptimConfig) -> float:
    """Multiplier of the base lr at optimiser ``step``: linear warmup, then cosine to 0 or steps."""
    warmup = round(cfg.warmup_epochs * steps_per_epoch)
    if step < warmup:
        return (step + 1) / warmup
    if cfg.schedule == "cosine":
        total = cfg.epochs * steps_per_epoch
        progress = (step - warmup) / max(total - warmup, 1)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
    epoch = step // steps_per_epoch
    return cfg.lr_decay ** sum(epoch >= milestone for milestone in cfg.lr_steps)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig,
                    steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step ``LambdaLR`` following :func:`lr_factor` (its state is just the step count)."""
    if steps_per_epoch < 1:
        raise ConfigError("an epoch must hold at least one optimiser step; lower data.batch_size, "
                          "optim.accum_steps or the number of processes")
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, functools.partial(lr_factor, steps_per_epoch=steps_per_epoch, cfg=cfg))
