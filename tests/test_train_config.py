"""Bad configs fail before any work with a message naming the key; a NaN loss stops the run."""
from __future__ import annotations

import pytest
import torch

from video_iared.config import ConfigError, load_config
from video_iared.engine import train as train_module
from video_iared.engine.train import check_config, train

CPU = torch.device("cpu")


@pytest.mark.parametrize("overrides, match", [
    (["run.amp=fp16"], "fp16 needs CUDA"),
    (["optim.accum_steps=0"], "must be >= 1"),
    (["iared.curriculum_epochs=[0,1,2]"], "interpreters stage only"),
    (["optim.ema_decay=1.0"], "ema_decay"),
])
def test_engine_settings_are_checked(overrides, match):
    with pytest.raises(ConfigError, match=match):
        check_config(load_config(None, overrides), CPU)


@pytest.mark.parametrize("overrides, match", [
    (["iared.stage=interpreters"], "needs interpreters: set model.interpreter_blocks"),
    (["iared.stage=interpreters", "model.interpreter_blocks=[1,2]", "iared.curriculum_epochs=[0]"],
     "one start epoch per group"),
    (["model.interpreter_blocks=[2,1]"], "must be increasing"),
    (["data.root="], "data.root is not set"),
    (["data.train_jitter_scales=[40,32]"], r"\[min, max\]"),
])
def test_model_and_data_settings_are_checked(overrides, match, tmp_path):
    base = [f"run.output_dir={tmp_path}", "model.num_classes=6", "data.root=/nonexistent"]
    with pytest.raises(ConfigError, match=match):
        train(load_config(None, base + overrides))


def test_non_finite_loss_names_step_and_last_checkpoint(small_synthetic, tmp_path, monkeypatch):
    calls = {"n": 0}
    real_loss = train_module.backbone_loss

    def loss_goes_nan(*args, **kwargs):
        calls["n"] += 1
        loss, stats = real_loss(*args, **kwargs)
        return (loss * float("nan") if calls["n"] == 3 else loss), stats

    monkeypatch.setattr(train_module, "backbone_loss", loss_goes_nan)
    cfg = load_config(None, [f"data.root={small_synthetic}", "data.batch_size=4", "data.num_workers=0",
                             "model.num_classes=6", "run.ckpt_every_steps=2", f"run.output_dir={tmp_path}"])
    with pytest.raises(FloatingPointError, match=r"loss is nan at optimiser step 3 .*checkpoint\.pth"):
        train(cfg)
