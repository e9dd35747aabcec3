"""make frontier: the stages it runs and how it aggregates seeds (the runs themselves are a benchmark)."""
import math
from pathlib import Path

import pytest

from video_iared.cli import build_parser
from video_iared.frontier import aggregate, aggregate_maps, build_stages, format_map_table, format_table


def point(method, setting, top1, gflops=0.4, kept=1.0):
    return {"method": method, "setting": setting, "video_top1": top1, "gflops_per_view": gflops,
            "kept_share": kept}


def test_aggregate_means_and_spreads_over_seeds_and_drops_rows_a_seed_lacks():
    seeds = [[point("dense", "-", 92.0), point("random", "keep=0.1", 40.0, 0.1, 0.2),
              point("oracle", "keep=0.1", 91.0, 0.1, 0.2)],
             [point("dense", "-", 94.0), point("random", "keep=0.1", 46.0, 0.1, 0.2)],
             [point("dense", "-", 93.0), point("random", "keep=0.1", 43.0, 0.1, 0.2),
              point("oracle", "keep=0.1", 90.0, 0.1, 0.2)]]
    rows = aggregate(seeds)
    assert [(r["method"], r["setting"]) for r in rows] == [("dense", "-"), ("random", "keep=0.1")]
    dense, random = rows
    assert dense["video_top1"] == pytest.approx(93.0) and dense["video_top1_spread"] == pytest.approx(2.0)
    assert random["video_top1_per_seed"] == [40.0, 46.0, 43.0] and random["video_top1_spread"] == 6.0
    table = format_table(rows)
    assert "| random | keep=0.1 | 0.1000 | 4.00× | 43.00 ± 6.00 | 40.0 / 46.0 / 43.0 |" in table
    assert not math.isnan(random["kept_share"])


def test_stages_train_three_stages_per_seed_then_calibrate_and_sweep(tmp_path: Path):
    stages = build_stages(tmp_path, [0, 5], num_train=30, num_val=9)
    names = [s.name for s in stages]
    assert names[0] == "generate clutter set" and len(stages) == 1 + 2 * 7
    assert "--set" in stages[0].argv and stages[0].argv[stages[0].argv.index("--set") + 1] == "clutter"
    seed5 = [s for s in stages if s.name.startswith("seed 5")]
    assert all("run.seed=5" in s.argv for s in seed5)
    finetune = next(s for s in seed5 if s.name.endswith("train finetune"))
    assert f"model.weights={tmp_path / 'seed5' / 'interpreters' / 'checkpoint.pth'}" in finetune.argv
    dense_sweep = next(s for s in seed5 if "dense backbone" in s.name)
    assert "--oracle" in dense_sweep.argv
    assert dense_sweep.argv[dense_sweep.argv.index("--group-starts") + 1] == "0,2,4"  # the interpreters'
    assert str(tmp_path / "seed5" / "backbone" / "checkpoint.pth") in dense_sweep.argv
    iared_sweep = next(s for s in seed5 if s.name.endswith("sweep IA-RED2"))
    assert str(tmp_path / "seed5" / "finetune" / "calibrated.pth") in iared_sweep.argv
    assert "--methods" in iared_sweep.argv


def test_frontier_command_is_registered():
    args = build_parser().parse_args(["frontier", "--seeds", "1,2", "--out", "x"])
    assert args.seeds == "1,2" and args.func.__module__ == "video_iared.frontier"


def test_heatmap_scores_aggregate_in_percent():
    seeds = [{"interpreters": {"miou": 0.5, "map": 0.4}, "rollout": {"miou": 0.3, "map": 0.35}},
             {"interpreters": {"miou": 0.6, "map": 0.5}, "rollout": {"miou": 0.32, "map": 0.3}}]
    rows = aggregate_maps(seeds)
    assert rows[0]["heatmap"] == "interpreters" and rows[0]["miou"] == pytest.approx(55.0)
    assert rows[0]["map_spread"] == pytest.approx(10.0)
    assert "| rollout | 31.0 ± 2.0 | 32.5 ± 5.0 |" in format_map_table(rows)
