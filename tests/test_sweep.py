"""`video-iared evaluate` and `video-iared sweep` end to end on a few generated videos, tiny models."""
import csv
import json

import numpy as np
import pytest
import torch

from video_iared.cli import main
from video_iared.data.video import write_video
from video_iared.models.build import build_model
from video_iared.config import load_config
from video_iared.sweep import SweepPoint, cumulative_budget, reduction_within, summary_lines

NUM_CLASSES = 3


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> str:
    """6 short videos (a bright square moving right, left or down) and a 'path label' test list."""
    root = tmp_path_factory.mktemp("videos")
    rng = np.random.default_rng(0)
    lines = []
    for index in range(6):
        label = index % NUM_CLASSES
        frames = np.full((24, 48, 64, 3), 30, dtype=np.uint8)
        for t in range(24):
            x, y = (8 + t, 12) if label == 0 else (40 - t, 12) if label == 1 else (20, 4 + t)
            frames[t, y:y + 8, x:x + 8] = 220
        frames += rng.integers(0, 10, frames.shape, dtype=np.uint8)
        write_video(str(root / f"{index}.mp4"), frames)
        lines.append(f"{index}.mp4 {label}")
    (root / "test.csv").write_text("\n".join(lines) + "\n")
    return str(root)


def overrides(dataset: str, out, *extra: str) -> list[str]:
    return [f"data.root={dataset}", "data.num_workers=0", "data.batch_size=4", "data.num_spatial_crops=3",
            f"model.num_classes={NUM_CLASSES}", "run.device=cpu", f"run.output_dir={out}", *extra]


def save_random_checkpoint(path, options: list[str]) -> None:
    torch.manual_seed(0)
    model = build_model(load_config(None, options).model)
    torch.save({"model": model.state_dict()}, path)


def test_evaluate_writes_metrics_and_predictions(dataset, tmp_path, capsys):
    options = overrides(dataset, tmp_path)
    save_random_checkpoint(tmp_path / "dense.pth", options)
    assert main(["evaluate", "--checkpoint", str(tmp_path / "dense.pth"), *options]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    for key in ("clip_top1", "clip_top5", "video_top1", "video_top5", "gflops_per_view", "kept_share",
                "clips_per_second", "num_videos", "failed_videos"):
        assert key in metrics
    assert metrics["num_videos"] == 6 and metrics["num_views"] == 18 and metrics["num_clip_views"] == 6
    assert metrics["failed_videos"] == 0 and metrics["kept_share"] == 1.0
    assert metrics["video_top5"] == 100.0  # 3 classes
    rows = list(csv.DictReader(open(tmp_path / "predictions.csv")))
    assert len(rows) == 6 and rows[0]["path"].endswith("0.mp4") and rows[0]["num_views"] == "3"
    assert "video top-1" in capsys.readouterr().out


def test_checkpoint_of_another_model_names_the_mismatch(dataset, tmp_path):
    save_random_checkpoint(tmp_path / "wide.pth", overrides(dataset, tmp_path, "model.num_classes=5"))
    with pytest.raises(Exception, match="head"):
        main(["evaluate", "--checkpoint", str(tmp_path / "wide.pth"), *overrides(dataset, tmp_path)])


def test_sweep_runs_every_method_and_writes_files(dataset, tmp_path, capsys):
    options = overrides(dataset, tmp_path)
    save_random_checkpoint(tmp_path / "dense.pth", options)
    assert main(["sweep", "--checkpoint", str(tmp_path / "dense.pth"), "--keep-ratios", "0.7,0.5",
                 "--tome-r", "2", *options]) == 0
    result = json.loads((tmp_path / "sweep.json").read_text())
    methods = [(p["method"], p["setting"]) for p in result["points"]]
    assert methods == [("dense", "-"), ("random", "rho=0.7"), ("cls-topk", "rho=0.7"), ("random", "rho=0.5"),
                       ("cls-topk", "rho=0.5"), ("tome", "r=2")]
    dense = result["points"][0]["gflops_per_view"]
    assert all(p["gflops_per_view"] < dense for p in result["points"][1:])
    assert (tmp_path / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    assert "within 0.5 and 1.0 points" in capsys.readouterr().out


def test_reduction_within_picks_the_cheapest_setting_close_to_dense():
    points = [SweepPoint("dense", "-", 10.0, 90.0, 88.0, 1.0, 1.0),
              SweepPoint("a", "1", 5.0, 89.6, 88.0, 0.5, 1.0),
              SweepPoint("a", "2", 4.0, 89.2, 88.0, 0.4, 1.0),
              SweepPoint("b", "1", 2.0, 70.0, 60.0, 0.2, 1.0)]
    assert reduction_within(points, 0.5) == {"a": 2.0, "b": None}
    assert reduction_within(points, 1.0) == {"a": 2.5, "b": None}
    assert summary_lines(points)[-2].split() == ["a", "2.00x", "2.50x"]
    assert cumulative_budget(0.5, 3) == [0.5, 0.25, 0.125]
