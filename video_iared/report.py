"""``REPORT.md`` for a demo run: every table is read from the files the stages wrote. It leads with the
deployed decision (thresholds calibrated to the budget) and keeps the paper's threshold 0.5 as a
labelled reference row."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from video_iared.engine.calibrate import CALIBRATION_KEY
from video_iared.interpret.run import format_table as interpretability_table
from video_iared.models.weights import read_checkpoint

PAPER_THRESHOLD = "t=0.5"   # the sweep's setting of the paper's fixed threshold


def _read(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.exists() else None


def _accuracy_rows(dense: dict[str, Any], iared: dict[str, Any]) -> list[str]:
    rows = ["| model | video top-1 | clip top-1 | GFLOPs / view | kept share (block-weighted) "
            "| clips/s (model) |",
            "|---|---:|---:|---:|---:|---:|"]
    iared_name = f"IA-RED² ({iared.get('decision', 'threshold 0.5')})"
    for name, m in (("TimeSformer (dense)", dense), (iared_name, iared)):
        rows.append(f"| {name} | {m['video_top1']:.2f} | {m['clip_top1']:.2f} | {m['gflops_per_view']:.4f} "
                    f"| {m['kept_share']:.3f} | {m['clips_per_second']:.1f} |")
    gflops_ratio = dense["gflops_per_view"] / iared["gflops_per_view"]
    speed_ratio = iared["clips_per_second"] / dense["clips_per_second"]
    views = dense["num_views"] // max(dense["num_videos"], 1)
    rows.append(f"\nGFLOPs ratio dense / IA-RED²: **{gflops_ratio:.2f}×**; "
                f"measured throughput ratio: **{speed_ratio:.2f}×**; "
                f"accuracy change (video top-1): **{iared['video_top1'] - dense['video_top1']:+.2f} points** "
                f"on {dense['num_videos']} videos × {views} views.")
    return rows


def _deployed_rows(sweep: dict[str, Any], calibration: dict[str, Any] | None) -> list[str]:
    """The deployed decision against dense and the paper's threshold, from the sweep's points."""
    points = {(p["method"], p["setting"]): p for p in sweep["points"]}
    dense = points.get(("dense", "-"))
    rows_of = [("IA-RED², calibrated thresholds (deployed)", points.get(("iared-calibrated", "fitted"))),
               ("IA-RED², the paper's threshold 0.5 (reference)",
                points.get(("iared-threshold", PAPER_THRESHOLD))),
               ("dense", dense)]
    lines = []
    if calibration:
        thresholds = " / ".join(f"{t:.3g}" for t in calibration["thresholds"])
        budget = " / ".join(f"{b:g}" for b in calibration["budget"])
        lines += [f"Deployed: one threshold per interpreter group ({thresholds}), fitted by `video-iared "
                  f"calibrate` on {calibration['videos']} training videos so that the model spends on "
                  f"average what the cumulative budget {budget} spends; every clip keeps at least "
                  f"{calibration['floor_share']:g} of each group's budget.", ""]
    lines += ["| decision | GFLOPs / view | × fewer than dense | video top-1 | change vs dense |",
              "|---|---:|---:|---:|---:|"]
    for name, p in rows_of:
        if p is None or dense is None:
            continue
        fewer = dense["gflops_per_view"] / p["gflops_per_view"]
        lines.append(f"| {name} | {p['gflops_per_view']:.4f} | {fewer:.2f}× | {p['video_top1']:.2f} "
                     f"| {p['video_top1'] - dense['video_top1']:+.2f} |")
    return lines


def _calibration(checkpoint: Path) -> dict[str, Any] | None:
    return read_checkpoint(checkpoint).get(CALIBRATION_KEY) if checkpoint.exists() else None


def _sweep_rows(sweep: dict[str, Any]) -> list[str]:
    rows = ["| method | setting | GFLOPs / view | video top-1 | clip top-1 |", "|---|---|---:|---:|---:|"]
    rows += [f"| {p['method']} | {p['setting']} | {p['gflops_per_view']:.4f} | {p['video_top1']:.2f} "
             f"| {p['clip_top1']:.2f} |" for p in sweep["points"]]
    for tolerance in ("0.5", "1.0"):
        reductions = sweep.get(f"reduction_within_{tolerance}", {})
        text = ", ".join(f"{method} {value:.2f}×" if value else f"{method} –"
                         for method, value in reductions.items())
        rows.append(f"\nGFLOPs reduction within {tolerance} point of dense: {text}")
    return rows


def write_report(out: Path, step_times: Sequence[tuple[str, float, bool]], total_seconds: float) -> Path:
    """Write ``out/REPORT.md`` from the demo's outputs; returns its path."""
    lines = ["# video_iared demo report", "",
             "The whole IA-RED² pipeline on the generated synthetic motion dataset (tiny TimeSformer, "
             "CPU). Produced by `make demo`; every number below was read from this run's output files.", ""]
    sweep = _read(out / "sweep" / "sweep.json")
    if sweep:
        calibration = _calibration(out / "runs" / "finetune" / "calibrated.pth")
        lines += ["## The deployed decision", "", *_deployed_rows(sweep, calibration), ""]
    lines += ["## Stages", "", "| stage | seconds |", "|---|---:|"]
    lines += [f"| {name} | {'skipped (done earlier)' if skipped else f'{seconds:.0f}'} |"
              for name, seconds, skipped in step_times]
    lines += [f"| **total** | **{total_seconds:.0f}** |", ""]
    dense, iared = _read(out / "eval_dense" / "metrics.json"), _read(out / "eval_iared" / "metrics.json")
    if dense and iared:
        lines += ["## Accuracy and cost (test set, multi-view)", "", *_accuracy_rows(dense, iared), ""]
    if sweep:
        lines += ["## Accuracy vs GFLOPs: IA-RED² and the training-free baselines", "",
                  "![accuracy vs GFLOPs](sweep/sweep.png)", "", *_sweep_rows(sweep), ""]
    scores = _read(out / "interpret" / "interpretability.json")
    if scores:
        lines += ["## Interpretability against the actor masks", "", interpretability_table(scores), ""]
    renders = sorted((out / "renders").glob("*/heatmaps.png"))
    if renders:
        lines += ["## Heatmaps", ""]
        lines += [f"![{path.parent.name}]({path.relative_to(out)})" for path in renders]
        lines.append("")
    path = out / "REPORT.md"
    path.write_text("\n".join(lines))
    return path
