"""Calibrated thresholds: the pure fit, its cost on the fitting clips, the checkpoint round trip."""
import math

import pytest
import torch

from tiny_videos import save_tiny_checkpoint, tiny_iared
from video_iared.cli import main
from video_iared.config import load_config
from video_iared.engine.calibrate import CALIBRATION_KEY, fit_thresholds, floored_threshold
from video_iared.engine.loading import load_for_inference
from video_iared.models import IARed
from video_iared.models.weights import WeightsError, read_checkpoint
from video_iared.predict import load_model
from video_iared.sweep import method_points

BLOCKS = ["model.group_starts=[0,2]", "model.interpreter_heads=4"]


def test_threshold_without_floor_keeps_exactly_the_asked_count():
    scores = torch.tensor([0.1, 0.9, 0.7, 0.8, 0.3])
    clips = [scores[:2], scores[2:]]
    assert floored_threshold(clips, 2) == pytest.approx(0.7)
    assert floored_threshold(clips, 0) == pytest.approx(0.9)       # nothing strictly above the top
    assert floored_threshold(clips, 5) == -math.inf
    for kept in range(6):
        assert int((scores > floored_threshold(clips, kept)).sum()) == kept
    with pytest.raises(ValueError, match="cannot keep 6 of 5"):
        floored_threshold(clips, 6)


def test_floor_counts_each_clips_best_tokens_in_the_total():
    # clip 0 scores high, clip 1 low: a pooled threshold for 4 tokens would starve clip 1
    clips = [torch.tensor([0.9, 0.8, 0.7, 0.6]), torch.tensor([0.2, 0.1, 0.05, 0.01])]
    assert floored_threshold(clips, 4) == pytest.approx(0.2)      # clip 0 keeps 4, clip 1 none
    t = floored_threshold(clips, 4, floor=1)
    kept = [max(int((c > t).sum()), 1) for c in clips]
    assert t == pytest.approx(0.6) and kept == [3, 1]               # the floor's token counts
    assert floored_threshold(clips, 1, floor=2) == pytest.approx(0.9)  # floors alone exceed the total


def test_fitted_thresholds_spend_the_budget_on_the_fitting_clips():
    model = tiny_iared([0, 2])
    for interpreter in model.interpreters:  # unsaturated scores: ties at a threshold would blur the count
        torch.nn.init.normal_(interpreter.qk.weight, std=0.05)
    torch.manual_seed(1)
    clips = [torch.randn(4, 3, 8, 32, 32) for _ in range(3)]
    budget = [0.6, 0.3]
    thresholds, floors = fit_thresholds(model, clips, budget)
    assert model.thresholds is None and floors == [0, 0]  # the fit leaves the model as it was
    kept = torch.zeros(2)
    with torch.no_grad():
        for clip in clips:
            out = model(clip, decision="calibrated", thresholds=thresholds)
            kept += torch.stack([g.keep.sum().float() for g in out.groups])
            per_clip = out.groups[1].kept
    total = 12 * 8 * 16  # clips x T x N
    assert kept.tolist() == [round(0.6 * total), round(0.3 * total)]
    assert per_clip.unique().numel() > 1  # per-clip counts adapt; only the mean is fixed
    thresholds, min_kept = fit_thresholds(model, clips, budget, floor_share=0.5)
    assert min_kept == [round(0.3 * 128), round(0.15 * 128)]
    with torch.no_grad():
        outs = [model(clip, decision="calibrated", thresholds=thresholds, min_kept=min_kept)
                for clip in clips]
    for g, share in enumerate(budget):
        counts = torch.cat([out.groups[g].kept for out in outs])
        assert counts.min() >= min_kept[g]
        assert abs(counts.sum().item() - round(share * total)) <= 2  # ties at the floor's edge aside


def test_calibrated_decision_without_thresholds_names_the_fix():
    model = tiny_iared([0, 2])
    with pytest.raises(ValueError, match="video-iared calibrate"):
        model(torch.randn(1, 3, 8, 32, 32), decision="calibrated")


def test_calibrate_command_writes_thresholds_that_inference_loads(small_synthetic, tmp_path, capsys):
    ckpt = save_tiny_checkpoint(tmp_path / "iared.pth", [*BLOCKS, "iared.budget=[0.5,0.25]"])
    overrides = [*BLOCKS, f"data.root={small_synthetic}", "data.num_workers=0", "data.batch_size=4",
                 "model.name=timesformer_tiny_patch8_32", "model.num_classes=3"]
    cfg = load_config(None, [*overrides, "iared.decision=calibrated", "iared.budget=[0.5,0.25]"])
    with pytest.raises(WeightsError, match="holds no calibrated thresholds"):
        load_for_inference(cfg, ckpt, "cpu")
    weights_before = read_checkpoint(ckpt)["model"]
    assert main(["calibrate", "--checkpoint", str(ckpt), "--videos", "12", *overrides,
                 "iared.budget=[0.5,0.25]"]) == 0
    assert "calibrated thresholds" in capsys.readouterr().out
    saved = read_checkpoint(ckpt)
    entry = saved[CALIBRATION_KEY]
    assert entry["budget"] == [0.5, 0.25] and entry["videos"] == 12 and len(entry["thresholds"]) == 2
    assert entry["min_kept"] == [round(0.9 * 0.5 * 128), round(0.9 * 0.25 * 128)]
    assert entry["floor_share"] == 0.9
    assert all(torch.equal(saved["model"][k], v) for k, v in weights_before.items())  # weights untouched
    model = load_for_inference(cfg, ckpt, "cpu")
    assert model.thresholds == entry["thresholds"] and model.decision == "calibrated"
    assert model.min_kept == entry["min_kept"]
    loaded = load_model(ckpt, overrides=["iared.decision=calibrated"])
    assert loaded.model.thresholds == entry["thresholds"]


def test_calibrate_needs_one_budget_per_group(small_synthetic, tmp_path):
    ckpt = save_tiny_checkpoint(tmp_path / "iared.pth", BLOCKS)
    assert main(["calibrate", "--checkpoint", str(ckpt), *BLOCKS, f"data.root={small_synthetic}",
                 "model.name=timesformer_tiny_patch8_32", "model.num_classes=3", "iared.budget=[0.5]"]) == 2


def test_sweep_adds_the_calibrated_row_only_when_calibrated():
    model = tiny_iared([0, 2])
    kwargs = dict(threshold_points=[0.5], keep_ratios=[0.7], tome_r=[], interpreter_heads=4, starts=[0, 2])
    assert "iared-calibrated" not in [m for m, *_ in method_points(model, **kwargs)]
    model = IARed(model.backbone, group_starts=[0, 2], interpreter_heads=4, thresholds=[0.6, 0.7])   # loaded
    rows = {m: predict for m, _, predict, _ in method_points(model, **kwargs)}
    clip = torch.randn(2, 3, 8, 32, 32)
    with torch.no_grad():
        expected = model(clip, decision="calibrated")
        got = rows["iared-calibrated"](clip)
    assert torch.equal(got.logits, expected.logits)
    assert got.kept_per_group.tolist() == [[g.keep[i].float().mean().item() for g in expected.groups]
                                           for i in range(2)]


def test_training_refuses_the_calibrated_decision():
    from video_iared.config import ConfigError
    from video_iared.engine.train import check_config

    cfg = load_config("configs/clutter/finetune.yaml", ["iared.decision=calibrated"])
    with pytest.raises(ConfigError, match="fitted after training"):
        check_config(cfg, torch.device("cpu"))
