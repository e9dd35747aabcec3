"""make frontier: its steps form a chain per seed, and how it aggregates seeds (the runs themselves are
a benchmark)."""
import math
from pathlib import Path

import pytest

from video_iared.cli import build_parser
from video_iared.config import load_config
from video_iared.frontier import (CLUTTER, aggregate, aggregate_maps, build_steps, format_map_table,
                                  format_table)


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


def test_each_seed_is_a_chain_of_its_own_files(tmp_path: Path):
    steps = build_steps(tmp_path, [0, 5], num_train=30, num_val=9)
    written: set[Path] = set()
    for step in steps:
        words = [Path(w.split("=", 1)[-1]) for w in step.argv]
        reads = [w for w in words if w.suffix == ".pth" and w != step.done_when]
        produced = written | {p.parent / "checkpoint.pth" for p in written if p.name == "final_metrics.json"}
        assert all(path in produced for path in reads), f"{step.name} reads a checkpoint not yet written"
        if step.name.startswith("seed 5"):                 # a seed reads and writes only its own folder
            assert "run.seed=5" in step.argv
            assert all(tmp_path / "seed5" in path.parents for path in reads)
        written.add(step.done_when)
    assert steps[0].done_when == tmp_path / "data" / "classes.json"


def test_baselines_drop_where_the_interpreters_sit_and_iared_runs_calibrated(tmp_path: Path):
    steps = build_steps(tmp_path, [0], num_train=30, num_val=9)
    starts = load_config(str(CLUTTER / "finetune.yaml")).model.group_starts
    dense_sweep = next(s for s in steps if "--oracle" in s.argv)
    assert dense_sweep.argv[dense_sweep.argv.index("--group-starts") + 1] == ",".join(map(str, starts))
    for step in steps:
        if step.argv[3:4] in (["sweep"], ["interpret"]) and step is not dense_sweep:
            runs = tmp_path / "seed0" / ("images" if "images:" in step.name else "")
            assert str(runs / "finetune" / "calibrated.pth") in step.argv


def test_every_seed_scores_heatmaps_of_videos_and_images(tmp_path: Path):
    steps = build_steps(tmp_path, [0, 1], num_train=30, num_val=9)
    scored = {s.done_when for s in steps if s.argv[3:4] == ["interpret"]}
    assert scored == {tmp_path / f"seed{seed}" / kind / "interpretability.json"
                      for seed in (0, 1) for kind in ("interpret", "images/interpret")}
    generated = {s.done_when for s in steps if "make_synthetic" in " ".join(s.argv)}
    assert generated == {tmp_path / "data" / "classes.json", tmp_path / "images" / "classes.json"}


def test_frontier_command_is_registered():
    args = build_parser().parse_args(["frontier", "--seeds", "1,2", "--out", "x"])
    assert args.seeds == "1,2" and args.func.__module__ == "video_iared.frontier"


def test_heatmap_scores_aggregate_in_percent_for_every_metric():
    def scores(miou, ap):
        return {"pixel_acc": 0.7, "mean_acc": 0.6, "miou": miou, "map": ap}

    seeds = [{"interpreter": scores(0.5, 0.4), "rollout": scores(0.3, 0.35)},
             {"interpreter": scores(0.6, 0.5), "rollout": scores(0.32, 0.3)}]
    rows = aggregate_maps(seeds)
    assert rows[0]["heatmap"] == "interpreter" and rows[0]["miou"] == pytest.approx(55.0)
    assert rows[0]["map_spread"] == pytest.approx(10.0) and rows[0]["mean_acc"] == pytest.approx(60.0)
    table = format_map_table(rows)
    assert table.splitlines()[0] == "| heatmap | pixel acc. | mean acc. | mIoU | mAP | mIoU per seed |"
    assert "| rollout | 70.0 ± 0.0 | 60.0 ± 0.0 | 31.0 ± 2.0 | 32.5 ± 5.0 | 30.0 / 32.0 |" in table
