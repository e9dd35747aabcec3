"""``video-iared demo``: the whole pipeline on a generated synthetic dataset, with a report.

Each step runs the same command a user would type (printed before it runs), so the demo doubles as
a worked example: generate the Kinetics-layout synthetic set, check it, train the tiny TimeSformer,
train the interpreters (REINFORCE, curriculum), fine-tune (the paper's three stages), calibrate the
deployed thresholds to the budget, evaluate, sweep against the baselines (the paper's threshold 0.5 kept
as a reference row), score the heatmaps against the masks, render a few clips, and write ``REPORT.md``
with every step's time, led by the deployed decision. A finished step (its output file exists) is skipped on a
rerun, so an interrupted demo resumes.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from video_iared.config import CONFIG_DIR
from video_iared.pipeline import Step, cli, data_prep, output_folder, run_steps

TINY = CONFIG_DIR / "tiny"
RENDERED_CLIPS = 2
# (step name, configs/tiny/<config>.yaml, the run whose checkpoint it starts from, overrides): the
# paper's three stages at about a third of the tiny recipe's steps, so the demo fits 5 minutes on 2 cores
# (configs/tiny as written trains longer and ends higher: docs/results.md, The tiny recipe)
TRAINING = (("train backbone", "backbone", None,
             ("optim.epochs=3", "optim.warmup_epochs=0.5", "run.eval_every_epochs=3")),
            ("train interpreters", "interpreters", "backbone",
             ("optim.epochs=1", "iared.curriculum_epochs=[]")),  # one epoch: every group from the start
            ("fine-tune", "finetune", "interpreters", ("optim.epochs=1",)))
FINAL = TRAINING[-1][1]  # the deployed IA-RED2 model: evaluated, swept, interpreted
FRAME_SIZE = 32  # the model's input size: no resizing in the loader, and a quarter of the decoding of 64
# fewer points than the sweep's defaults (each is a pass over the test set): the demo's time budget
SWEEP_POINTS = ("--threshold-points", "0.5", "--keep-ratios", "0.8,0.5", "--tome-r", "2")


def build_steps(out: Path, num_train: int, num_val: int) -> list[Step]:
    """The demo's steps, in order; every path lives under ``out``."""
    data, runs = out / "data", out / "runs"
    ckpt = {config: runs / config / "checkpoint.pth" for _, config, _, _ in TRAINING}
    deployed = runs / FINAL / "calibrated.pth"   # the fine-tuned model with thresholds fitted to its budget
    common = [f"data.root={data}"]
    calibrated = [*common, "iared.decision=calibrated"]
    steps = [
        Step("generate synthetic dataset",
             data_prep("make_synthetic", str(data), "--num-train", str(num_train), "--num-val", str(num_val),
                       "--size", str(FRAME_SIZE)),
             data / "classes.json"),
        Step("check videos",
             data_prep("check_videos", str(data / "val.csv"), "--write-clean", str(out / "checked_val.csv")),
             out / "checked_val.csv"),
        *(Step(name, cli("train", "--config", str(TINY / f"{config}.yaml"), *common, *overrides,
                         f"model.weights={ckpt[start] if start else ''}",
                         f"run.output_dir={runs / config}"),
               runs / config / "final_metrics.json")
          for name, config, start, overrides in TRAINING),
        Step("calibrate thresholds",
             cli("calibrate", "--config", str(TINY / f"{FINAL}.yaml"), "--checkpoint", str(ckpt[FINAL]),
                 "--out", str(deployed), *common),
             deployed),
        Step("evaluate dense",
             cli("evaluate", "--config", str(TINY / "backbone.yaml"), "--checkpoint", str(ckpt["backbone"]),
                 *common, f"run.output_dir={out / 'eval_dense'}"),
             out / "eval_dense" / "metrics.json"),
        Step("evaluate IA-RED2",
             cli("evaluate", "--config", str(TINY / f"{FINAL}.yaml"), "--checkpoint", str(ckpt[FINAL]),
                 *common, f"run.output_dir={out / 'eval_iared'}"),
             out / "eval_iared" / "metrics.json"),
        Step("sweep (IA-RED2 vs baselines)",
             cli("sweep", "--config", str(TINY / f"{FINAL}.yaml"), "--checkpoint", str(deployed),
                 *SWEEP_POINTS, *common, f"run.output_dir={out / 'sweep'}"),
             out / "sweep" / "sweep.json"),
        Step("interpretability vs masks",
             cli("interpret", "--config", str(TINY / f"{FINAL}.yaml"), "--checkpoint", str(deployed),
                 "--eval-masks", "--out", str(out / "interpret"), *calibrated),
             out / "interpret" / "interpretability.json"),
    ]
    # labels cycle through the classes: videos 1 and 2 are "moving" and "changing size"
    rendered = [data / "videos" / "val" / f"{index:05d}.mp4" for index in range(1, 1 + RENDERED_CLIPS)]
    steps.append(Step(f"render heatmaps of {RENDERED_CLIPS} val videos",
                      cli("interpret", "--checkpoint", str(deployed), "--video", *map(str, rendered),
                          "--format", "gif", "--out", str(out / "renders"), "iared.decision=calibrated"),
                      out / "renders" / rendered[-1].stem / "heatmaps.png"))
    steps.append(Step("predict one video",
                      cli("predict", str(data / "videos" / "val" / "00001.mp4"), "--checkpoint",
                          str(deployed), "--classes", str(data / "classes.json"),
                          "--features", str(out / "features_val_00001.npy")),
                      out / "features_val_00001.npy"))
    return steps


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="demo_output", help="output folder (default demo_output)")
    parser.add_argument("--num-train", type=int, default=2400, help="synthetic training videos")
    parser.add_argument("--num-val", type=int, default=240,
                        help="synthetic validation videos (the test list is the val list, as on Kinetics)")
    parser.add_argument("--fresh", action="store_true", help="delete --out first")


def run(args: argparse.Namespace) -> int:
    """Run every step (skipping finished ones), then write REPORT.md."""
    out = output_folder(args.out, args.fresh)
    steps = build_steps(out, args.num_train, args.num_val)
    seconds = run_steps(steps, out, f"video-iared demo --out {args.out}")  # what make demo runs
    from video_iared.report import write_report

    report = write_report(out, [(s.name, s.seconds, s.skipped) for s in steps], seconds)
    print(f"\nreport: {report}")
    (out / "step_times.json").write_text(json.dumps({s.name: s.seconds for s in steps}, indent=1))
    return 0
