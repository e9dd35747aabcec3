"""``video-iared frontier`` (``make frontier``): IA-RED² against random, CLS top-k, ToMe and the actor-mask
oracle on the clutter set, over seeds, with mean ± spread; and the heatmaps of every method against the
masks, on the clutter set (TimeSformer) and on the image clutter set (DeiT).

Per seed: the three training stages (``configs/clutter/``), thresholds calibrated to the deployed budget,
then two sweeps on the same test views. The training-free rules (random, CLS top-k, ToMe) and the
mask references (oracle, actor-tube, random-same-count) run on the dense stage-1 backbone, as one would
apply them to a pretrained model; IA-RED² (budgets, calibrated thresholds, the paper's threshold 0.5)
runs on its fine-tuned checkpoint, whose heatmaps are then scored against the actor masks. On the image
clutter set a tiny DeiT goes through the same stages and calibration, and its heatmaps are scored. The
tables and the plot aggregate the seeds: the mean, and the spread (largest minus smallest) of every figure.
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any, Sequence

from video_iared.config import CONFIG_DIR, load_config
from video_iared.pipeline import Step, cli, data_prep, output_folder, run_steps

__all__ = ["FINAL_KEEPS", "MAP_METRICS", "build_steps", "image_steps", "aggregate", "aggregate_maps",
           "format_table", "format_map_table", "plot", "add_arguments", "run"]

CLUTTER = CONFIG_DIR / "clutter"
IMAGES = CONFIG_DIR / "imagenet"   # the image clutter set's configs: clutter_{backbone,interpreters,finetune}
FINAL_KEEPS = "0.5,0.3,0.2,0.1,0.05"  # cumulative keep after the last group: where the rules separate
TOME_R = "4,8,12,16,24"  # locations merged per block, of 49 (24: 3.7x fewer GFLOPs, as deep as IA-RED2)
IARED_METHODS = "iared-budget,iared-calibrated,iared-threshold"


def build_steps(out: Path, seeds: Sequence[int], num_train: int, num_val: int) -> list[Step]:
    """Generate the clutter set once, then per seed: train, calibrate, sweep the backbone and IA-RED²."""
    data = out / "data"
    # the baselines drop tokens where IA-RED2's interpreters sit, so a budget means the same for all
    starts = ",".join(map(str, load_config(str(CLUTTER / "finetune.yaml")).model.group_starts))
    steps = [Step("generate clutter set",
                  data_prep("make_synthetic", str(data), "--set", "clutter", "--num-train", str(num_train),
                            "--num-val", str(num_val)),
                  data / "classes.json"),
             Step("generate image clutter set",
                  data_prep("make_synthetic", str(out / "images"), "--set", "images", "--num-train",
                            str(num_train), "--num-val", str(num_val)),
                  out / "images" / "classes.json")]
    for seed in seeds:
        runs = out / f"seed{seed}"
        ckpt = {name: runs / name / "checkpoint.pth" for name in ("backbone", "interpreters", "finetune")}
        common = [f"data.root={data}", f"run.seed={seed}"]
        views = ["data.num_spatial_crops=1"]  # the centre view: a third of the sweeps' time
        start = {"backbone": "", "interpreters": ckpt["backbone"], "finetune": ckpt["interpreters"]}
        for name in ("backbone", "interpreters", "finetune"):
            steps.append(Step(f"seed {seed}: train {name}",
                              cli("train", "--config", str(CLUTTER / f"{name}.yaml"), *common,
                                  f"model.weights={start[name]}", f"run.output_dir={runs / name}"),
                              runs / name / "final_metrics.json"))
        calibrated = runs / "finetune" / "calibrated.pth"
        steps.append(Step(f"seed {seed}: calibrate thresholds",
                          cli("calibrate", "--config", str(CLUTTER / "finetune.yaml"), "--checkpoint",
                              str(ckpt["finetune"]), "--out", str(calibrated), *common),
                          calibrated))
        steps.append(Step(f"seed {seed}: sweep the dense backbone (baselines, oracle)",
                          cli("sweep", "--config", str(CLUTTER / "backbone.yaml"), "--checkpoint",
                              str(ckpt["backbone"]), "--oracle", "--final-keeps", FINAL_KEEPS,
                              "--group-starts", starts, "--tome-r", TOME_R, *common, *views,
                              f"run.output_dir={runs / 'sweep_dense'}"),
                          runs / "sweep_dense" / "sweep.json"))
        steps.append(Step(f"seed {seed}: sweep IA-RED2",
                          cli("sweep", "--config", str(CLUTTER / "finetune.yaml"), "--checkpoint",
                              str(calibrated), "--methods", IARED_METHODS, "--threshold-points", "0.5",
                              "--final-keeps", FINAL_KEEPS, "--tome-r", "", *common, *views,
                              f"run.output_dir={runs / 'sweep_iared'}"),
                          runs / "sweep_iared" / "sweep.json"))
        steps.append(Step(f"seed {seed}: interpretability vs masks",
                          cli("interpret", "--config", str(CLUTTER / "finetune.yaml"), "--checkpoint",
                              str(calibrated), "--eval-masks", "--out", str(runs / "interpret"), *common,
                              "iared.decision=calibrated"),
                          runs / "interpret" / "interpretability.json"))
        steps += image_steps(out / "images", runs / "images", seed)
    return steps


def image_steps(data: Path, runs: Path, seed: int) -> list[Step]:
    """One seed on the image clutter set (DeiT): the three stages, calibration, heatmap scores."""
    common = [f"data.root={data}", f"run.seed={seed}"]
    steps, start = [], ""
    for name in ("backbone", "interpreters", "finetune"):
        steps.append(Step(f"seed {seed}: images: train {name}",
                          cli("train", "--config", str(IMAGES / f"clutter_{name}.yaml"), *common,
                              f"model.weights={start}", f"run.output_dir={runs / name}"),
                          runs / name / "final_metrics.json"))
        start = str(runs / name / "checkpoint.pth")
    calibrated = runs / "finetune" / "calibrated.pth"
    finetune = str(IMAGES / "clutter_finetune.yaml")
    steps.append(Step(f"seed {seed}: images: calibrate thresholds",
                      cli("calibrate", "--config", finetune, "--checkpoint", start, "--out", str(calibrated),
                          *common),
                      calibrated))
    steps.append(Step(f"seed {seed}: images: interpretability vs masks",
                      cli("interpret", "--config", finetune, "--checkpoint", str(calibrated), "--eval-masks",
                          "--out", str(runs / "interpret"), *common, "iared.decision=calibrated"),
                      runs / "interpret" / "interpretability.json"))
    return steps


def _spread(values: list[float]) -> float:
    return max(values) - min(values)


def aggregate(per_seed: Sequence[Sequence[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Sweep points of every seed (the dense backbone's sweep, then IA-RED²'s without its dense row) ->
    one row per (method, setting) present in every seed: mean and spread of GFLOPs, video top-1 and
    kept share, in the order of the first seed."""
    keyed = [{(p["method"], p["setting"]): p for p in points} for points in per_seed]
    rows = []
    for key in keyed[0]:
        if not all(key in seed for seed in keyed):
            continue
        points = [seed[key] for seed in keyed]
        row: dict[str, Any] = {"method": key[0], "setting": key[1], "seeds": len(points)}
        for name in ("gflops_per_view", "video_top1", "kept_share"):
            values = [p[name] for p in points]
            row[name] = statistics.fmean(values)
            row[f"{name}_spread"] = _spread(values)
        row["video_top1_per_seed"] = [p["video_top1"] for p in points]
        rows.append(row)
    return rows


MAP_METRICS = (("pixel_acc", "pixel acc."), ("mean_acc", "mean acc."), ("miou", "mIoU"), ("map", "mAP"))


def aggregate_maps(per_seed: Sequence[dict[str, dict[str, float]]]) -> list[dict[str, Any]]:
    """``interpretability.json`` of every seed -> per map (interpreters, explanations, random) the mean
    and spread of each of :data:`MAP_METRICS` (those the seeds report), in percent, and the per-seed
    values of mIoU and mAP."""
    rows = []
    for name in per_seed[0]:
        row: dict[str, Any] = {"heatmap": name}
        for metric, _ in MAP_METRICS:
            if not all(metric in seed[name] for seed in per_seed):
                continue
            values = [100 * seed[name][metric] for seed in per_seed]
            row[metric], row[f"{metric}_spread"] = statistics.fmean(values), _spread(values)
            row[f"{metric}_per_seed"] = values
        rows.append(row)
    return rows


def format_map_table(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown: one row per map, each metric as mean ± spread over the seeds, mIoU per seed."""
    metrics = [(key, title) for key, title in MAP_METRICS if key in rows[0]]
    lines = ["| heatmap | " + " | ".join(title for _, title in metrics) + " | mIoU per seed |",
             "|---|" + "---:|" * len(metrics) + "---|"]
    for r in rows:
        cells = [f"{r[key]:.1f} ± {r[f'{key}_spread']:.1f}" for key, _ in metrics]
        seeds = " / ".join(f"{v:.1f}" for v in r.get("miou_per_seed", []))
        lines.append(f"| {r['heatmap']} | " + " | ".join(cells) + f" | {seeds} |")
    return "\n".join(lines)


def seed_points(runs: Path) -> list[dict[str, Any]]:
    """One seed's points: the dense backbone's sweep, then IA-RED²'s rows (its dense row is the
    fine-tuned backbone with every token, not the reference)."""
    dense = json.loads((runs / "sweep_dense" / "sweep.json").read_text())["points"]
    iared = json.loads((runs / "sweep_iared" / "sweep.json").read_text())["points"]
    return dense + [p for p in iared if p["method"] != "dense"]


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown: one row per (method, setting), GFLOPs reduction against dense, mean ± spread."""
    dense = next(r for r in rows if r["method"] == "dense")
    lines = ["| method | setting | GFLOPs / view | reduction | video top-1 (mean ± spread) | per seed |",
             "|---|---|---:|---:|---:|---|"]
    for r in rows:
        seeds = " / ".join(f"{v:.1f}" for v in r["video_top1_per_seed"])
        lines.append(f"| {r['method']} | {r['setting']} | {r['gflops_per_view']:.4f} "
                     f"| {dense['gflops_per_view'] / r['gflops_per_view']:.2f}× "
                     f"| {r['video_top1']:.2f} ± {r['video_top1_spread']:.2f} | {seeds} |")
    return "\n".join(lines)


def plot(rows: Sequence[dict[str, Any]], path: Path, title: str) -> None:
    """Mean video top-1 against mean GFLOPs per method, the seeds' spread as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from video_iared.sweep import curve_style

    fig, ax = plt.subplots(figsize=(7.0, 4.6), dpi=120)
    dense = next(r for r in rows if r["method"] == "dense")
    for method in dict.fromkeys(r["method"] for r in rows if r["method"] != "dense"):
        curve = sorted((r for r in rows if r["method"] == method), key=lambda r: r["gflops_per_view"])
        ax.errorbar([r["gflops_per_view"] for r in curve], [r["video_top1"] for r in curve],
                    yerr=[[r["video_top1_spread"] / 2 for r in curve]] * 2, label=method, capsize=2,
                    **curve_style(method))
    ax.errorbar([dense["gflops_per_view"]], [dense["video_top1"]], yerr=dense["video_top1_spread"] / 2,
                marker="*", markersize=12, color="black", label="dense", capsize=2)
    ax.axhline(dense["video_top1"] - 1.0, color="grey", linestyle="--", linewidth=0.8)
    ax.set_xlabel("GFLOPs per view (analytic)")
    ax.set_ylabel("video top-1 (%), mean over seeds")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="frontier_output", help="output folder (default frontier_output)")
    parser.add_argument("--seeds", default="0,1,2", help="training seeds, comma-separated (default 0,1,2)")
    parser.add_argument("--num-train", type=int, default=2400, help="clutter training videos")
    parser.add_argument("--num-val", type=int, default=480, help="clutter validation (= test) videos")
    parser.add_argument("--fresh", action="store_true", help="delete --out first")


def run(args: argparse.Namespace) -> int:
    """Run every step (skipping finished ones), then write FRONTIER.md, frontier.json, frontier.png."""
    out = output_folder(args.out, args.fresh)
    seeds = [int(s) for s in args.seeds.split(",") if s]
    steps = build_steps(out, seeds, args.num_train, args.num_val)
    seconds = run_steps(steps, out, f"video-iared frontier --out {args.out} --seeds {args.seeds}")
    rows = aggregate([seed_points(out / f"seed{seed}") for seed in seeds])
    maps = aggregate_maps([json.loads((out / f"seed{seed}" / "interpret" / "interpretability.json")
                                      .read_text()) for seed in seeds])
    image_maps = aggregate_maps([json.loads((out / f"seed{seed}" / "images" / "interpret" /
                                             "interpretability.json").read_text()) for seed in seeds])
    times = {s.name: round(s.seconds) for s in steps}
    (out / "frontier.json").write_text(json.dumps({"seeds": seeds, "rows": rows, "maps": maps,
                                                   "image_maps": image_maps, "step_seconds": times},
                                                  indent=1) + "\n")
    plot(rows, out / "frontier.png", f"clutter set, {len(seeds)} seeds: accuracy vs GFLOPs")
    report = ["# IA-RED² frontier on the clutter set", "",
              f"Seeds {', '.join(map(str, seeds))}; {seconds:.0f} s of steps (skipped steps count 0). "
              "Mean over seeds ± spread (largest − smallest); references that read the actor masks: "
              "oracle, actor-tube, random-same-count.", "", "![frontier](frontier.png)", "",
              format_table(rows), "", "Heatmaps against the actor masks (validation videos, protocol of "
              "Chefer et al.; interpreters at the deployed decision, every token scored):", "",
              format_map_table(maps), "", "Heatmaps of the tiny DeiT on the image clutter set against the "
              "object masks (validation images, same protocol):", "", format_map_table(image_maps), ""]
    (out / "FRONTIER.md").write_text("\n".join(report))
    print("\n".join(report[4:]))
    print(f"\nreport: {out / 'FRONTIER.md'}")
    return 0
