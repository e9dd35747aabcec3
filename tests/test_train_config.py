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
    (["model.name=timesformer_huge"], "unknown model"),
    (["iared.stage=interpreters"], "needs interpreters: set model.group_starts"),
    (["iared.stage=interpreters", "model.group_starts=[1,2]", "iared.curriculum_epochs=[0]"],
     "one start epoch per group"),
    (["model.group_starts=[2,1]"], "must be increasing"),
    (["model.group_starts=[4]"], r"within \[0, 4\)"),
    (["iared.baseline=leave_one_out"], "iared.rollouts=1"),
    (["iared.rollouts=0"], "iared.rollouts=0"),
    (["model.group_starts=[1,2]", "iared.decision=budget", "iared.budget=[0.5]"],
     "one cumulative keep ratio per"),
    (["model.group_starts=[1,2]", "iared.decision=budget", "iared.budget=[0.3,0.5]"], "non-increasing"),
    (["model.group_starts=[1,2]", "iared.decision=budget", "iared.budget=[1.5,0.5]"], r"in \(0, 1\]"),
])
def test_engine_settings_are_checked(overrides, match):
    with pytest.raises(ConfigError, match=match):
        check_config(load_config(None, overrides), CPU)


@pytest.mark.parametrize("overrides, match", [
    (["data.root="], "data.root is not set"),
    (["data.train_jitter_scales=[40,32]"], r"\[min, max\]"),
])
def test_data_settings_are_checked(overrides, match, tmp_path):
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


def test_resuming_another_models_checkpoint_names_the_directory(small_synthetic, tmp_path):
    base = [f"data.root={small_synthetic}", "data.batch_size=4", "data.num_workers=0", "optim.epochs=1",
            f"run.output_dir={tmp_path}"]
    train(load_config(None, base + ["model.num_classes=6"]))
    with pytest.raises(ConfigError, match=r"holds a different model .*choose a new output_dir"):
        train(load_config(None, base + ["model.num_classes=4"]))


def test_build_model_maps_the_config():
    from video_iared.models.build import build_model
    from video_iared.models.iared import IARed

    dense = build_model(load_config(None, ["model.num_classes=6", "model.num_frames=4"]).model)
    assert dense.num_frames == 4 and dense.head.out_features == 6 and dense.grid_size == 4
    iared = build_model(load_config(None, ["model.num_classes=6", "model.group_starts=[1,3]",
                                           "model.interpreter_heads=2"]).model)
    assert isinstance(iared, IARed) and iared.group_starts == [1, 3] and len(iared.interpreters) == 2


def test_init_std_scales_a_from_scratch_timesformer_and_is_refused_by_image_models():
    from video_iared.models.build import build_model

    def qkv_std(overrides: list[str]) -> float:
        model = build_model(load_config(None, ["model.num_classes=3", *overrides]).model)
        assert all(block.temporal_fc.weight.count_nonzero() == 0 for block in model.blocks)  # still zero
        return torch.cat([block.attn.qkv.weight.flatten() for block in model.blocks]).std().item()

    assert qkv_std([]) == pytest.approx(0.02, rel=0.05)  # the official 0.02
    assert qkv_std(["model.init_std=0.06"]) == pytest.approx(0.06, rel=0.05)
    with pytest.raises(ConfigError, match=r"packed_deit_tiny_patch16_224 does not take .*init_std"):
        build_model(load_config(None, ["model.name=packed_deit_tiny_patch16_224",
                                       "model.init_std=0.06"]).model)


def test_input_spec_takes_the_model_metadata_then_data_overrides():
    from video_iared.engine.datasets import input_spec

    spec = input_spec(load_config())
    recipe = (spec.num_frames, spec.sampling_rate, spec.crop_size, spec.train_jitter_scales)
    assert recipe == (8, 4, 32, (32, 40))
    spec = input_spec(load_config(None, ["model.name=timesformer_base_patch16_224", "model.num_frames=16",
                                         "data.sampling_rate=8"]))
    recipe = (spec.num_frames, spec.sampling_rate, spec.crop_size, spec.train_jitter_scales)
    assert recipe == (16, 8, 224, (256, 320))
    assert spec.mean == (0.45,) * 3 and spec.std == (0.225,) * 3
