"""Optimiser groups, linear lr scaling and the per-step schedule."""
import pytest
import torch
from torch import nn

from video_iared.config import OptimConfig
from video_iared.engine.optim import build_optimizer, build_scheduler, lr_factor, param_groups, scaled_lr


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, 4))
        self.pos_embed = nn.Parameter(torch.zeros(1, 3, 4))
        self.time_embed = nn.Parameter(torch.zeros(1, 2, 4))
        self.norm = nn.LayerNorm(4)
        self.head = nn.Linear(4, 2)
        self.frozen = nn.Linear(4, 4)
        self.frozen.requires_grad_(False)


def test_weight_decay_skips_norms_biases_embeddings_and_frozen():
    model = Tiny()
    decay, no_decay = param_groups(model, 0.05)
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert [id(p) for p in decay["params"]] == [id(model.head.weight)]
    assert len(no_decay["params"]) == 6  # 3 embeddings, norm weight+bias, head bias


def test_lr_scales_with_the_real_global_batch():
    cfg = OptimConfig(lr=0.005, global_batch=64)
    assert scaled_lr(cfg, 64) == 0.005 and scaled_lr(cfg, 16) == pytest.approx(0.00125)
    sgd = build_optimizer(Tiny(), cfg, 32)
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["nesterov"]
    assert sgd.param_groups[0]["lr"] == pytest.approx(0.0025)
    adamw = build_optimizer(Tiny(), OptimConfig(optimizer="adamw", lr=1e-3, global_batch=8), 8)
    assert isinstance(adamw, torch.optim.AdamW)
    with pytest.raises(ValueError, match="no trainable"):
        build_optimizer(Tiny().requires_grad_(False), cfg, 8)


def test_step_schedule_is_the_official_one():
    cfg = OptimConfig(schedule="step", lr_steps=[11, 14], lr_decay=0.1, epochs=15)
    factors = [lr_factor(e * 10, steps_per_epoch=10, cfg=cfg) for e in (0, 10, 11, 13, 14)]
    assert factors == pytest.approx([1, 1, 0.1, 0.1, 0.01])


def test_warmup_then_cosine():
    cfg = OptimConfig(schedule="cosine", warmup_epochs=1, epochs=3)
    f = [lr_factor(s, steps_per_epoch=4, cfg=cfg) for s in range(12)]
    assert f[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert f[4] == 1.0 and f[8] == pytest.approx(0.5) and all(a > b for a, b in zip(f[4:], f[5:]))


def test_scheduler_state_round_trips():
    cfg = OptimConfig(schedule="cosine", warmup_epochs=1, epochs=3)
    opt = build_optimizer(Tiny(), cfg, 64)
    sched = build_scheduler(opt, cfg, 4)
    for _ in range(5):
        opt.step(), sched.step()
    opt2 = build_optimizer(Tiny(), cfg, 64)
    sched2 = build_scheduler(opt2, cfg, 4)
    sched2.load_state_dict(sched.state_dict())
    opt2.load_state_dict(opt.state_dict())
    assert sched2.get_last_lr() == sched.get_last_lr()
    with pytest.raises(ValueError, match="at least one optimiser step"):
        build_scheduler(opt, cfg, 0)
