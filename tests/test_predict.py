"""``video-iared predict``: top-5, cost, features; project and official checkpoints; clear errors."""
import json

import numpy as np
import pytest
import torch
from tiny_videos import TINY, save_tiny_checkpoint, tiny_iared, write_square_video

from video_iared.cli import main
from video_iared.config import ConfigError, load_config
from video_iared.data.transforms import normalize_on_device
from video_iared.engine.datasets import input_spec
from video_iared.errors import UserError
from video_iared.predict import (LoadedModel, infer_model_overrides, load_model, predict_clip,
                                 read_class_names, read_video)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    return {"video": write_square_video(root / "clip.mp4"), "ckpt": save_tiny_checkpoint(root / "tiny.pth"),
            "root": root}


def test_predict_prints_top5_cost_and_saves_features(files, capsys):
    out = files["root"] / "feat.npy"
    classes = files["root"] / "classes.json"
    classes.write_text(json.dumps({"walk": 0, "run": 1, "jump": 2}))             # Kinetics' {name: id}
    assert main(["predict", str(files["video"]), "--checkpoint", str(files["ckpt"]),
                 "--classes", str(classes), "--features", str(out)]) == 0
    text = capsys.readouterr().out
    assert "top-5:" in text and "1. " in text and "jump" in text
    assert "kept share 1.000" in text and "GFLOPs" in text
    features = np.load(out)
    loaded = load_model(files["ckpt"])
    clip = read_video(files["video"], loaded.spec)[None]
    clip = normalize_on_device(clip, loaded.spec.mean, loaded.spec.std)
    with torch.no_grad():
        expected = loaded.model.forward_features(clip)[0]
    assert features.shape == (96,) and np.allclose(features, expected.numpy(), atol=1e-5)


def test_official_checkpoint_is_recognised_from_its_weights(files, tmp_path):
    loaded = load_model(files["ckpt"])
    official = {"model_state": {f"model.{k}": v for k, v in loaded.model.state_dict().items()},
                "epoch": 15, "cfg": "TRAIN:\n  ENABLE: False\n"}
    path = tmp_path / "TimeSformer_tiny.pyth"
    torch.save(official, path)
    state = {k[len("model."):]: v for k, v in official["model_state"].items()}
    assert infer_model_overrides(state) == [
        "model.name=timesformer_tiny_patch8_32", "model.num_classes=3", "model.img_size=32",
        "model.attention_type=divided_space_time", "model.num_frames=8"]
    clip = read_video(files["video"], loaded.spec)
    official_probs = predict_clip(load_model(path), clip).probs
    assert torch.allclose(official_probs, predict_clip(loaded, clip).probs, atol=1e-6)


def test_iared_prediction_spends_fewer_flops():
    cfg = load_config(None, [*TINY, "model.group_starts=[0,2]", "model.interpreter_heads=4"])
    loaded = LoadedModel(tiny_iared([0, 2]), cfg, input_spec(cfg))
    prediction = predict_clip(loaded, torch.randint(0, 255, (3, 8, 32, 32), dtype=torch.uint8))
    first, second = prediction.kept_share_per_group
    assert 0 < second <= first < 1
    assert prediction.gflops < prediction.dense_gflops
    # the paper's block-weighted share: groups of 2 blocks each
    assert prediction.kept_share == pytest.approx((2 * first + 2 * second) / 4, abs=1e-6)
    assert prediction.probs.sum().item() == pytest.approx(1.0)


def test_a_checkpoint_predicts_with_the_decision_it_was_fine_tuned_with(tmp_path):
    """A checkpoint whose config deploys ``iared.decision=budget`` keeps exactly its budget in
    predict / interpret; without a decision in the config the paper's threshold applies."""
    blocks = ["model.group_starts=[0,2]", "model.interpreter_heads=4"]
    clip = torch.randint(0, 255, (3, 8, 32, 32), dtype=torch.uint8)
    budget = save_tiny_checkpoint(tmp_path / "budget.pth",
                                  [*blocks, "iared.decision=budget", "iared.budget=[0.5,0.25]"])
    assert predict_clip(load_model(budget), clip).kept_share_per_group == [0.5, 0.25]
    threshold = save_tiny_checkpoint(tmp_path / "threshold.pth", blocks)
    assert predict_clip(load_model(threshold), clip).kept_share_per_group == [1.0, 1.0]  # fresh scores ~0.9
    with pytest.raises(ConfigError, match="one cumulative keep ratio per interpreter group"):
        load_model(budget, overrides=["iared.budget=[0.5]"])


@pytest.mark.parametrize("content, expected", [
    (["a", "b", "c"], ["a", "b", "c"]),
    ({"classes": ["x", "y", "z"], "flip_sensitive": True}, ["x", "y", "z"]),
    ({"c": 2, "a": 0, "b": 1}, ["a", "b", "c"]),
])
def test_class_name_files(tmp_path, content, expected):
    path = tmp_path / "classes.json"
    path.write_text(json.dumps(content))
    assert read_class_names(path, load_config(), 3) == expected


def test_class_names_must_match_the_model(tmp_path):
    path = tmp_path / "classes.json"
    path.write_text(json.dumps(["a", "b"]))
    with pytest.raises(UserError, match="2 class names for a model with 3 classes"):
        read_class_names(path, load_config(), 3)


def test_clear_errors(files, tmp_path, capsys):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x01not a video" * 100)
    not_ckpt = tmp_path / "notes.pth"
    not_ckpt.write_text("hello")
    other = save_tiny_checkpoint(tmp_path / "other.pth")
    cases = [
        (["predict", str(tmp_path / "missing.mp4"), "--checkpoint", str(files["ckpt"])], "missing file"),
        (["predict", str(corrupt), "--checkpoint", str(files["ckpt"])], "cannot open"),
        (["predict", str(files["video"]), "--checkpoint", str(tmp_path / "none.pth")], "no checkpoint"),
        (["predict", str(files["video"]), "--checkpoint", str(not_ckpt)], "notes.pth"),
        # the checkpoint's weights do not fit the model the overrides ask for
        (["predict", str(files["video"]), "--checkpoint", str(other), "model.num_frames=4",
          "model.attention_type=joint_space_time"], "does not fit"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        assert message in capsys.readouterr().err
