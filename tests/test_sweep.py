"""`video-iared evaluate` and `video-iared sweep` end to end on a few generated videos, tiny models
(the oracle rows on square videos with actor-mask sidecars)."""
import csv
import json

import numpy as np
import pytest
import torch

from tiny_videos import write_dataset
from video_iared.baselines import budget_counts
from video_iared.cli import main
from video_iared.data.video import write_video
from video_iared.models.build import build_model
from video_iared.config import load_config
from video_iared.sweep import (DEFAULT_FINAL_KEEPS, SweepPoint, budget_points, cumulative_budget, curve_style,
                               final_keep_ratio, plot_frontier, reduction_within, summary_lines)

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


def test_checkpoint_of_another_model_names_the_mismatch(dataset, tmp_path, capsys):
    save_random_checkpoint(tmp_path / "wide.pth", overrides(dataset, tmp_path, "model.num_classes=5"))
    assert main(["evaluate", "--checkpoint", str(tmp_path / "wide.pth"), *overrides(dataset, tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1                          # one line, no traceback
    assert "5-class head" in error and "3 classes" in error and "model.num_classes=5" in error
    assert not (tmp_path / "metrics.json").exists()


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


@pytest.fixture(scope="module")
def masked_dataset(tmp_path_factory) -> str:
    """3 square videos with their actor-mask sidecars, listed in ``val.csv``."""
    return str(write_dataset(tmp_path_factory.mktemp("masked"), num_videos=3))


def test_budget_points_by_final_keep():
    assert budget_points([0.7], [0.1], 4) == [("rho=0.7", 0.7), ("keep=0.1 (rho=0.56)", 0.1 ** 0.25)]
    assert cumulative_budget(final_keep_ratio(0.1, 4), 4)[-1] == pytest.approx(0.1)
    assert budget_points([0.7, 0.5], None, 3) == [("rho=0.7", 0.7), ("rho=0.5", 0.5)]
    for groups in (1, 3, 4, 12):  # the default reaches a cumulative keep of 0.1 whatever the group count
        settings = budget_points([], None, groups)
        assert len(settings) == len(DEFAULT_FINAL_KEEPS)
        assert cumulative_budget(settings[-1][1], groups)[-1] == pytest.approx(0.1)
        assert settings[-1][0].startswith("keep=0.1 (rho=")
    with pytest.raises(ValueError, match="final keep"):
        final_keep_ratio(0.0, 3)


def test_mask_rows_are_reduced_and_drawn_apart(tmp_path):
    points = [SweepPoint("dense", "-", 10.0, 90.0, 88.0, 1.0, 1.0),
              SweepPoint("random", "keep=0.1 (rho=0.46)", 2.0, 70.0, 60.0, 0.2, 1.0),
              SweepPoint("oracle", "keep=0.5 (rho=0.79)", 5.0, 89.8, 88.0, 0.5, 1.0),
              SweepPoint("oracle", "keep=0.1 (rho=0.46)", 2.0, 89.0, 88.0, 0.2, 1.0),
              SweepPoint("actor-tube", "block 0", 1.5, 90.0, 88.0, 0.1, 1.0),
              SweepPoint("random-same-count", "block 0", 1.5, 60.0, 55.0, 0.1, 1.0)]
    assert reduction_within(points, 0.5) == {"random": None, "oracle": 2.0, "actor-tube": 10 / 1.5,
                                             "random-same-count": None}
    assert reduction_within(points, 1.0)["oracle"] == 5.0
    lines = summary_lines(points)
    assert any("read the test set's actor masks" in line for line in lines)
    assert "keep=0.1 (rho=0.46)" in lines[2]
    assert curve_style("oracle")["linestyle"] == "--" and curve_style("random") == {"marker": "o"}
    assert curve_style("actor-tube")["linestyle"] == "none"
    plot_frontier(points, tmp_path / "frontier.png", title="t")
    assert (tmp_path / "frontier.png").read_bytes()[:4] == b"\x89PNG"


def test_sweep_oracle_rows_and_deep_budgets(masked_dataset, tmp_path, capsys):
    options = overrides(masked_dataset, tmp_path, "data.test_list=val.csv")
    save_random_checkpoint(tmp_path / "dense.pth", options)
    assert main(["sweep", "--checkpoint", str(tmp_path / "dense.pth"), "--final-keeps", "0.5,0.1",
                 "--tome-r", "1", "--oracle", *options]) == 0
    result = json.loads((tmp_path / "sweep.json").read_text())
    points = {(p["method"], p["setting"]): p for p in result["points"]}
    half, tenth = "keep=0.5 (rho=0.79)", "keep=0.1 (rho=0.46)"  # 3 groups at blocks 0, 1, 3 of 4
    assert list(points) == [("dense", "-"), ("random", half), ("cls-topk", half), ("oracle", half),
                            ("random", tenth), ("cls-topk", tenth), ("oracle", tenth),
                            ("actor-tube", "block 0"), ("random-same-count", "block 0"), ("tome", "r=1")]
    counts = budget_counts(cumulative_budget(final_keep_ratio(0.1, 3), 3), 128)  # 8 frames x 16 patches
    assert counts[-1] == 13
    deep = sum(k / 128 * blocks for k, blocks in zip(counts, [1, 2, 1])) / 4
    for method in ("random", "cls-topk", "oracle"):
        assert points[(method, tenth)]["kept_share"] == pytest.approx(deep, abs=1e-6)
        assert points[(method, tenth)]["gflops_per_view"] < points[(method, half)]["gflops_per_view"]
    actor, control = points[("actor-tube", "block 0")], points[("random-same-count", "block 0")]
    assert 0 < actor["kept_share"] < 1 and actor["kept_share"] == pytest.approx(control["kept_share"])
    assert "oracle" in result["reduction_within_0.5"] and "actor-tube" in result["reduction_within_1.0"]
    assert "read the test set's actor masks" in capsys.readouterr().out


def test_sweep_oracle_without_sidecars_names_the_missing_one(dataset, tmp_path, capsys):
    options = overrides(dataset, tmp_path)
    save_random_checkpoint(tmp_path / "dense.pth", options)
    assert main(["sweep", "--checkpoint", str(tmp_path / "dense.pth"), "--oracle", *options]) == 2
    err = capsys.readouterr().err
    assert "6 of 6 videos have no actor-mask sidecar" in err and "0.masks.npz" in err
    assert "without --oracle" in err and not (tmp_path / "sweep.json").exists()
