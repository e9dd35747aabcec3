"""Mismatches that would change results stop the run with one line naming both sides and the fix:
a head of another class count, weights missing outside the stage's allow-list, class lists that
differ, a curriculum that leaves groups untrained; evaluate runs the checkpoint's own config."""
from __future__ import annotations

import json

import pytest
import torch
from error_fixtures import CLASSES, save_checkpoint, write_three_class_set
from tiny_videos import TINY
from user_error_helpers import one_line_error

from video_iared.cli import main
from video_iared.config import ConfigError, load_config
from video_iared.engine.evaluate import decision_label
from video_iared.engine.loading import load_start_weights
from video_iared.engine.train import check_config
from video_iared.models.build import build_model
from video_iared.models.weights import WeightsError

IARED = ["model.group_starts=[1,2]", "model.interpreter_heads=4"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = write_three_class_set(tmp_path_factory.mktemp("mismatch"))
    return {"root": root, "ckpt": save_checkpoint(root / "backbone.pth", [f"data.root={root}"])}


def train_args(data, out, *overrides: str) -> list[str]:
    return ["train", *TINY, *IARED, f"data.root={data['root']}", "data.num_workers=0", "data.batch_size=3",
            "optim.epochs=1", f"run.output_dir={out}", *overrides]


def test_head_of_another_class_count_stops_the_interpreters_stage(data, tmp_path, capsys):
    err = one_line_error(train_args(data, tmp_path, "iared.stage=interpreters",
                                    f"model.weights={data['ckpt']}", "model.num_classes=5"), capsys)
    assert "3-class head" in err and "5 classes" in err and "model.reset_head=true" in err
    assert not (tmp_path / "checkpoint.pth").exists()


def start_model(data, *overrides: str):
    cfg = load_config(None, [*TINY, f"model.weights={data['ckpt']}", *overrides])
    torch.manual_seed(1)
    return build_model(cfg.model, load=False), cfg


def test_reset_head_starts_a_new_head_and_loads_the_rest(data):
    model, cfg = start_model(data, "model.num_classes=5", "model.reset_head=true")
    report, classes = load_start_weights(model, cfg)
    assert report.missing == ["head.weight", "head.bias"] and classes == CLASSES
    saved = torch.load(data["ckpt"], weights_only=True)["model"]
    assert torch.equal(model.blocks[0].attn.qkv.weight, saved["blocks.0.attn.qkv.weight"])
    model, cfg = start_model(data, "model.reset_head=true", "iared.stage=interpreters", *IARED)
    with pytest.raises(ConfigError, match="random, frozen head"):
        load_start_weights(model, cfg)


def test_weights_outside_the_stage_allow_list_stop(data, tmp_path):
    model, cfg = start_model(data, "iared.stage=finetune", *IARED)  # a backbone checkpoint: no interpreters
    with pytest.raises(WeightsError, match=r"lacks 4 interpreters .*interpreters stage's checkpoint"):
        load_start_weights(model, cfg)
    model, cfg = start_model(data, "iared.stage=interpreters", *IARED)  # the stage that creates them
    assert len(load_start_weights(model, cfg)[0].missing) == 4
    state = torch.load(data["ckpt"], weights_only=True)
    state["model"]["extra.weight"] = torch.zeros(3)
    torch.save(state, tmp_path / "extra.pth")
    model, cfg = start_model(data, f"model.weights={tmp_path / 'extra.pth'}")
    with pytest.raises(WeightsError, match="unexpected extra.weight"):
        load_start_weights(model, cfg)


def test_training_on_other_classes_than_the_weights_stops(data, tmp_path, capsys):
    other = write_three_class_set(tmp_path / "other", classes=["up", "down", "still"])
    err = one_line_error(train_args({"root": other}, tmp_path / "run", "iared.stage=interpreters",
                                    f"model.weights={data['ckpt']}"), capsys)
    assert "class 0: 'up' here, 'left' in the checkpoint" in err


def test_evaluate_on_other_classes_stops(data, tmp_path, capsys):
    other = write_three_class_set(tmp_path / "other", classes=["up", "down", "still"])
    err = one_line_error(["evaluate", "--checkpoint", str(data["ckpt"]), f"data.root={other}",
                          f"run.output_dir={tmp_path / 'eval'}"], capsys)
    assert "classes.json" in err and "'up' here, 'left' in the checkpoint" in err
    assert not (tmp_path / "eval" / "metrics.json").exists()


def test_evaluate_runs_the_checkpoint_config(data, tmp_path, capsys):
    """No --config: the tiny 3-class model saved in the checkpoint, not the 400-class default."""
    assert main(["evaluate", "--checkpoint", str(data["ckpt"]), "--warmup", "0",
                 f"run.output_dir={tmp_path}"]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["num_videos"] == 3 and metrics["failed_videos"] == 0
    assert "replacing" not in capsys.readouterr().out
    other = tmp_path / "other.pth"
    other.write_bytes(data["ckpt"].read_bytes())
    assert main(["evaluate", "--checkpoint", str(other), "--warmup", "0", f"run.output_dir={tmp_path}"]) == 0
    assert f"which held {data['ckpt']} (dense)" in capsys.readouterr().out  # never replaced silently


def test_predict_names_classes_from_the_checkpoint_anywhere(data, tmp_path, capsys, monkeypatch):
    relative = save_checkpoint(tmp_path / "relative.pth", ["data.root=data/nowhere"])
    monkeypatch.chdir(tmp_path)
    video = str(data["root"] / "videos" / "0.mp4")
    assert main(["predict", video, "--checkpoint", str(relative)]) == 0
    out = capsys.readouterr().out
    assert "class 0" not in out and all(name in out for name in CLASSES)
    wrong = tmp_path / "classes.json"
    wrong.write_text(json.dumps(["up", "down", "still"]))
    err = one_line_error(["predict", video, "--checkpoint", str(relative), "--classes", str(wrong)], capsys)
    assert "'up' here, 'left' in the checkpoint" in err


def test_interpret_refuses_outputs_that_overwrite_each_other(data, tmp_path, capsys):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "bikes.mp4").write_bytes((data["root"] / "videos" / "0.mp4").read_bytes())
    err = one_line_error(["interpret", "--checkpoint", str(data["ckpt"]), "--video",
                          str(tmp_path / "a/bikes.mp4"), str(tmp_path / "b/bikes.mp4"), "--out",
                          str(tmp_path / "X")], capsys)
    assert "a/bikes.mp4" in err and "b/bikes.mp4" in err and "X/bikes" in err
    assert not (tmp_path / "X").exists()


def test_curriculum_that_leaves_groups_untrained_stops():
    cfg = load_config("configs/tiny/interpreters.yaml", ["optim.epochs=1"])
    with pytest.raises(ConfigError, match=r"starts 3 of 4 interpreter groups .*optim.epochs=1.*"
                                          r"optim.epochs >= 3"):
        check_config(cfg, torch.device("cpu"))
    check_config(load_config("configs/tiny/interpreters.yaml", ["optim.epochs=3"]), torch.device("cpu"))


def test_calibrated_label_names_the_calibration_budget():
    cfg = load_config(None, [*IARED, "iared.decision=calibrated", "iared.budget=[0.9,0.8]"])
    assert decision_label(cfg, {"budget": [0.5, 0.25]}) == "thresholds calibrated to 0.5/0.25"
