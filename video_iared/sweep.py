"""The accuracy–GFLOPs frontier: IA-RED² over thresholds and budgets, the training-free baselines at
matched budgets, and the dense model — one checkpoint, one test set, one harness.

Every point is a full multi-view evaluation (``engine.harness`` on an ``engine.session``). The test
clips are decoded once and reused by every point when they fit in ``cache_bytes``. Budgets are
cumulative keep ratios per group ``[ρ, ρ², ρ³, ...]`` (each group keeps a share ρ of the tokens the
previous one left), so random and CLS-attention top-k run exactly IA-RED²'s token counts at its group
positions.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from torch import nn

from video_iared import baselines
from video_iared.config import Config
from video_iared.engine import distributed
from video_iared.engine.harness import Predictor, gather_views, model_predictor, run_views
from video_iared.engine.metrics import dataset_metrics
from video_iared.engine.session import evaluation_session
from video_iared.models.iared import backbone_of, group_starts_of

__all__ = ["SweepPoint", "cumulative_budget", "default_group_starts", "method_points", "reduction_within",
           "plot_frontier", "summary_lines", "sweep"]


@dataclass
class SweepPoint:
    method: str  # dense | iared-threshold | iared-budget | random | cls-topk | tome
    setting: str
    gflops_per_view: float
    video_top1: float
    clip_top1: float
    kept_share: float
    clips_per_second: float


def cumulative_budget(rho: float, groups: int) -> list[float]:
    """``[ρ, ρ², ..., ρ^groups]``: every group keeps the share ρ of the tokens left to it."""
    return [rho ** (g + 1) for g in range(groups)]


def default_group_starts(depth: int) -> list[int]:
    """Three groups at 0, depth/3, 2·depth/3 (the paper's [0, 4, 8] of 12) for a dense checkpoint."""
    return sorted({round(g * depth / 3) for g in range(3)})


def method_points(model: nn.Module, *, thresholds: Sequence[float], keep_ratios: Sequence[float],
                  tome_r: Sequence[int], interpreter_heads: int, starts: Sequence[int],
                  seed: int = 0) -> Iterable[tuple[str, str, Predictor, list[int]]]:
    """(method, setting, predictor, first block of each reduction step) for every point of the sweep."""
    backbone = backbone_of(model)
    yield "dense", "-", model_predictor(model, decision="none"), []
    iared = bool(group_starts_of(model))
    for t in thresholds if iared else ():
        yield ("iared-threshold", f"t={t:g}",
               model_predictor(model, threshold=t, interpreter_heads=interpreter_heads), list(starts))
    for rho in keep_ratios:
        budget = cumulative_budget(rho, len(starts))
        setting = f"rho={rho:g}"
        if iared:
            predict = model_predictor(model, decision="budget", budget=budget,
                                      interpreter_heads=interpreter_heads)
            yield "iared-budget", setting, predict, list(starts)
        yield "random", setting, baselines.random_predictor(backbone, starts, budget, seed=seed), list(starts)
        yield "cls-topk", setting, baselines.topk_predictor(backbone, starts, budget), list(starts)
    for r in tome_r:
        yield "tome", f"r={r}", baselines.tome_predictor(backbone, r), list(range(len(backbone.blocks)))


def reduction_within(points: Sequence[SweepPoint], points_of_dense: float) -> dict[str, float | None]:
    """Per method, the largest GFLOPs reduction (dense / method, ×) whose video top-1 is within
    ``points_of_dense`` of the dense model's; None when no setting of the method gets there."""
    dense = next(p for p in points if p.method == "dense")
    best: dict[str, float | None] = {}
    for p in points:
        if p.method == "dense":
            continue
        ok = p.video_top1 >= dense.video_top1 - points_of_dense
        factor = dense.gflops_per_view / p.gflops_per_view if ok else None
        current = best.get(p.method)
        best[p.method] = factor if current is None else (current if factor is None else max(current, factor))
    return best


def summary_lines(points: Sequence[SweepPoint]) -> list[str]:
    """The frontier table and the reductions within 0.5 and 1.0 points of dense."""
    lines = [f"{'method':<16} {'setting':<10} {'GFLOPs':>9} {'video top-1':>12} {'clip top-1':>11} "
             f"{'kept':>6}"]
    lines += [f"{p.method:<16} {p.setting:<10} {p.gflops_per_view:>9.4f} {p.video_top1:>12.2f} "
              f"{p.clip_top1:>11.2f} {p.kept_share:>6.3f}" for p in points]
    half, one = reduction_within(points, 0.5), reduction_within(points, 1.0)
    lines.append("GFLOPs reduction (dense / method) within 0.5 and 1.0 points of dense video top-1:")
    for method in half:
        fmt = [f"{x:.2f}x" if x else "none" for x in (half[method], one[method])]
        lines.append(f"  {method:<16} {fmt[0]:>7}  {fmt[1]:>7}")
    return lines


def plot_frontier(points: Sequence[SweepPoint], path: str | Path, title: str) -> None:
    """Video top-1 against GFLOPs per view, one curve per method, dense as a star with −0.5/−1 lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    dense = next(p for p in points if p.method == "dense")
    for method in dict.fromkeys(p.method for p in points if p.method != "dense"):
        curve = sorted((p for p in points if p.method == method), key=lambda p: p.gflops_per_view)
        ax.plot([p.gflops_per_view for p in curve], [p.video_top1 for p in curve], marker="o", label=method)
    ax.scatter([dense.gflops_per_view], [dense.video_top1], marker="*", s=180, color="black", zorder=5,
               label="dense")
    for drop, style in ((0.5, ":"), (1.0, "--")):
        ax.axhline(dense.video_top1 - drop, color="grey", linestyle=style, linewidth=0.8)
    ax.set_xlabel("GFLOPs per view (analytic, 1 MAC = 1 FLOP)")
    ax.set_ylabel("video top-1 (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def sweep(cfg: Config, checkpoint: str, *, thresholds: Sequence[float] = (0.3, 0.5, 0.7, 0.8, 0.9),
          keep_ratios: Sequence[float] = (0.9, 0.8, 0.7, 0.6, 0.5), tome_r: Sequence[int] = (1, 2, 3),
          warmup: int = 1, cache_bytes: float = 4e9) -> list[SweepPoint] | None:
    """Evaluate every point on ``cfg.data.test_list``; rank 0 writes ``sweep.json`` and ``sweep.png``
    into ``cfg.run.output_dir``, prints the summary and returns the points."""
    with evaluation_session(cfg, checkpoint) as run:
        clip_bytes = 3 * run.spec.num_frames * run.spec.crop_size ** 2
        cached = len(run.dataset) * clip_bytes / run.env.world_size <= cache_bytes
        if cached:
            run.batches = list(run.batches)  # decode once, reuse for every point
        depth = len(backbone_of(run.model).blocks)
        starts = (group_starts_of(run.model) or list(cfg.model.interpreter_blocks)
                  or default_group_starts(depth))
        points = []
        for method, setting, predict, steps in method_points(
                run.model, thresholds=thresholds, keep_ratios=keep_ratios, tome_r=tome_r,
                interpreter_heads=cfg.model.interpreter_heads, starts=starts, seed=cfg.run.seed):
            if not cached and points:
                run.reload()
            local = run_views(predict, run.batches, warmup=warmup, sync=run.sync, prepare=run.prepare)
            views = gather_views(local, distributed.all_gather_objects)
            m = dataset_metrics(views, run.dataset, num_classes=cfg.model.num_classes, depth=depth,
                                group_starts=steps)
            points.append(SweepPoint(method, setting, m["gflops_per_view"], m["video_top1"], m["clip_top1"],
                                     m["kept_share"], m["clips_per_second"]))
            if run.env.is_main:
                print(f"sweep {method:<16} {setting:<8} {m['gflops_per_view']:.4f} GFLOPs  "
                      f"video {m['video_top1']:.2f}  clip {m['clip_top1']:.2f}", flush=True)
        if not run.env.is_main:
            return None
        out = Path(cfg.run.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        summary: dict[str, Any] = {"checkpoint": str(checkpoint), "points": [asdict(p) for p in points],
                                   "reduction_within_0.5": reduction_within(points, 0.5),
                                   "reduction_within_1.0": reduction_within(points, 1.0)}
        (out / "sweep.json").write_text(json.dumps(summary, indent=2) + "\n")
        plot_frontier(points, out / "sweep.png", title=f"{cfg.model.name}: accuracy vs GFLOPs")
        print("\n".join(summary_lines(points)))
        return points
