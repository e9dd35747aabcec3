"""The accuracy–GFLOPs frontier: IA-RED² over thresholds and budgets, the training-free baselines at
matched budgets, and the dense model — one checkpoint, one test set, one harness.

Every point is a full multi-view evaluation (``engine.harness`` on an ``engine.session``). The test
clips are decoded once and reused by every point when they fit in ``cache_bytes``. Budgets are
cumulative keep ratios per group ``[ρ, ρ², ..., ρ^G]`` (each group keeps a share ρ of the tokens the
previous one left), so random and CLS-attention top-k run exactly IA-RED²'s token counts at its group
positions. A budget point is given by ρ (``keep_ratios``) or by its final cumulative keep c after the
G groups (``final_keeps``, ρ = c^(1/G)); by default c = 0.7, 0.5, 0.3, 0.2, 0.1 for any G, deep enough
for the rules to separate.

A checkpoint with calibrated thresholds (``video-iared calibrate``) adds ``iared-calibrated``: the
threshold decision at the cost it was fitted to. With ``oracle``, the test views' actor masks are loaded
and three reference rows added (they read the masks, so they bound the methods rather than compete):
``oracle`` (top-k by mask coverage at every budget), ``actor-tube`` (only the locations the mask touches
in any frame, one drop at the first group) and ``random-same-count`` (as many random tokens per sample,
same block).
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
from video_iared.engine.harness import MaskPredictor, Predictor, gather_views, model_predictor, run_views
from video_iared.engine.metrics import dataset_metrics
from video_iared.engine.session import evaluation_session
from video_iared.models.iared import backbone_of, group_starts_of

__all__ = ["SweepPoint", "DEFAULT_FINAL_KEEPS", "MASK_METHODS", "cumulative_budget", "final_keep_ratio",
           "budget_points", "default_group_starts", "method_points", "reduction_within", "curve_style",
           "plot_frontier", "summary_lines", "sweep"]

# cumulative keeps of the default budget points: the same depth whatever the number of groups
DEFAULT_FINAL_KEEPS = (0.7, 0.5, 0.3, 0.2, 0.1)
# rows that read the test set's actor masks: references, listed and drawn apart from the methods
MASK_METHODS = ("oracle", "actor-tube", "random-same-count")


@dataclass
class SweepPoint:
    # dense | iared-threshold | iared-calibrated | iared-budget | random | cls-topk | tome | MASK_METHODS
    method: str
    setting: str
    gflops_per_view: float
    video_top1: float
    clip_top1: float
    kept_share: float
    clips_per_second: float


def cumulative_budget(rho: float, groups: int) -> list[float]:
    """``[ρ, ρ², ..., ρ^groups]``: every group keeps the share ρ of the tokens left to it."""
    return [rho ** (g + 1) for g in range(groups)]


def final_keep_ratio(final_keep: float, groups: int) -> float:
    """ρ = c^(1/G): the keep ratio per group whose cumulative keep after ``groups`` groups is c."""
    if not 0.0 < final_keep <= 1.0:
        raise ValueError(f"a final keep is a share of the tokens in (0, 1], got {final_keep}")
    return final_keep ** (1.0 / groups)


def budget_points(keep_ratios: Sequence[float], final_keeps: Sequence[float] | None,
                  groups: int) -> list[tuple[str, float]]:
    """(setting label, ρ) of every budget point: each ρ of ``keep_ratios`` (``rho=0.7``), then each final
    cumulative keep c of ``final_keeps`` at ρ = c^(1/G) (``keep=0.1 (rho=0.46)``); ``final_keeps`` None:
    :data:`DEFAULT_FINAL_KEEPS` unless ``keep_ratios`` are given."""
    if final_keeps is None:
        final_keeps = () if keep_ratios else DEFAULT_FINAL_KEEPS
    points = [(f"rho={rho:g}", rho) for rho in keep_ratios]
    for c in final_keeps:
        rho = final_keep_ratio(c, groups)
        points.append((f"keep={c:g} (rho={rho:.2f})", rho))
    return points


def default_group_starts(depth: int) -> list[int]:
    """Three groups at 0, depth/3, 2·depth/3 (the paper's [0, 4, 8] of 12) for a dense checkpoint."""
    return sorted({round(g * depth / 3) for g in range(3)})


def method_points(model: nn.Module, *, threshold_points: Sequence[float], keep_ratios: Sequence[float],
                  tome_r: Sequence[int], interpreter_heads: int, starts: Sequence[int],
                  final_keeps: Sequence[float] | None = None, oracle: bool = False,
                  seed: int = 0) -> Iterable[tuple[str, str, Predictor | MaskPredictor, list[int]]]:
    """(method, setting, predictor, first block of each reduction step) for every point of the sweep;
    with ``oracle`` the mask-reading rows too (their predictors are :class:`MaskPredictor`)."""
    backbone = backbone_of(model)
    yield "dense", "-", model_predictor(model, decision="none"), []
    iared = bool(group_starts_of(model))
    for t in threshold_points if iared else ():
        yield ("iared-threshold", f"t={t:g}",
               model_predictor(model, threshold=t, interpreter_heads=interpreter_heads), list(starts))
    if iared and getattr(model, "thresholds", None) is not None:  # calibrated into the checkpoint
        predict = model_predictor(model, decision="calibrated", interpreter_heads=interpreter_heads)
        yield "iared-calibrated", "fitted", predict, list(starts)
    for setting, rho in budget_points(keep_ratios, final_keeps, len(starts)):
        budget = cumulative_budget(rho, len(starts))
        if iared:
            predict = model_predictor(model, decision="budget", budget=budget,
                                      interpreter_heads=interpreter_heads)
            yield "iared-budget", setting, predict, list(starts)
        yield "random", setting, baselines.random_predictor(backbone, starts, budget, seed=seed), list(starts)
        yield "cls-topk", setting, baselines.topk_predictor(backbone, starts, budget), list(starts)
        if oracle:
            predict = baselines.oracle_predictor(backbone, starts, budget, seed=seed)
            yield "oracle", setting, predict, list(starts)
    if oracle:
        first = starts[0]
        yield "actor-tube", f"block {first}", baselines.actor_tube_predictor(backbone, first), [first]
        yield ("random-same-count", f"block {first}",
               baselines.random_same_count_predictor(backbone, first, seed=seed), [first])
    for r in tome_r:
        yield "tome", f"r={r}", baselines.tome_predictor(backbone, r), list(range(len(backbone.blocks)))


def reduction_within(points: Sequence[SweepPoint], points_of_dense: float) -> dict[str, float | None]:
    """Per method, the largest GFLOPs reduction (dense / method, ×) whose video top-1 is within
    ``points_of_dense`` of the dense model's; None when no setting of the method gets there. The
    mask-reading references (:data:`MASK_METHODS`) are rows like any other: what the masks allow."""
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
    lines = [f"{'method':<17} {'setting':<20} {'GFLOPs':>9} {'video top-1':>12} {'clip top-1':>11} "
             f"{'kept':>6}"]
    lines += [f"{p.method:<17} {p.setting:<20} {p.gflops_per_view:>9.4f} {p.video_top1:>12.2f} "
              f"{p.clip_top1:>11.2f} {p.kept_share:>6.3f}" for p in points]
    if any(p.method in MASK_METHODS for p in points):
        lines.append(f"{', '.join(MASK_METHODS)}: read the test set's actor masks (references, not methods)")
    half, one = reduction_within(points, 0.5), reduction_within(points, 1.0)
    lines.append("GFLOPs reduction (dense / method) within 0.5 and 1.0 points of dense video top-1:")
    for method in half:
        fmt = [f"{x:.2f}x" if x else "none" for x in (half[method], one[method])]
        lines.append(f"  {method:<17} {fmt[0]:>7}  {fmt[1]:>7}")
    return lines


def curve_style(method: str) -> dict[str, Any]:
    """Matplotlib line style of a method's curve: the mask-reading references dashed or as lone markers."""
    styles = {"oracle": dict(linestyle="--", marker="s", markerfacecolor="none"),
              "actor-tube": dict(linestyle="none", marker="D", markersize=8),
              "random-same-count": dict(linestyle="none", marker="X", markersize=8)}
    return styles.get(method, dict(marker="o"))


def plot_frontier(points: Sequence[SweepPoint], path: str | Path, title: str) -> None:
    """Video top-1 against GFLOPs per view, one curve per method (:func:`curve_style`), dense as a star
    with −0.5/−1 lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    dense = next(p for p in points if p.method == "dense")
    for method in dict.fromkeys(p.method for p in points if p.method != "dense"):
        curve = sorted((p for p in points if p.method == method), key=lambda p: p.gflops_per_view)
        ax.plot([p.gflops_per_view for p in curve], [p.video_top1 for p in curve], label=method,
                **curve_style(method))
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


def sweep(cfg: Config, checkpoint: str, *, threshold_points: Sequence[float] = (0.3, 0.5, 0.7, 0.8, 0.9),
          keep_ratios: Sequence[float] = (), final_keeps: Sequence[float] | None = None,
          tome_r: Sequence[int] = (1, 2, 3), oracle: bool = False, methods: Sequence[str] | None = None,
          group_starts: Sequence[int] | None = None, warmup: int = 1,
          cache_bytes: float = 4e9) -> list[SweepPoint] | None:
    """Evaluate every point on ``cfg.data.test_list``; rank 0 writes ``sweep.json`` and ``sweep.png``
    into ``cfg.run.output_dir``, prints the summary and returns the points.

    Budget points: ``keep_ratios`` (ρ) and ``final_keeps`` (c); with neither, :data:`DEFAULT_FINAL_KEEPS`
    (:func:`budget_points`). ``oracle``: the mask-reading rows, from the test videos' ``x.masks.npz``
    sidecars (``FileNotFoundError`` naming the first missing one). ``methods``: run only these (and
    dense, every table's reference). ``group_starts``: where a dense checkpoint's baselines drop tokens
    (default: ``model.group_starts``, else three even groups); an IA-RED² model uses its own.
    """
    with evaluation_session(cfg, checkpoint, with_masks=oracle) as run:
        clip_bytes = (3 + oracle) * run.spec.num_frames * run.spec.crop_size ** 2  # masks: one byte a pixel
        cached = len(run.dataset) * clip_bytes / run.env.world_size <= cache_bytes
        if cached:
            run.batches = list(run.batches)  # decode once, reuse for every point
        depth = len(backbone_of(run.model).blocks)
        starts = (group_starts_of(run.model) or list(group_starts or cfg.model.group_starts)
                  or default_group_starts(depth))
        points = []
        for method, setting, predict, steps in method_points(
                run.model, threshold_points=threshold_points, keep_ratios=keep_ratios,
                final_keeps=final_keeps,
                tome_r=tome_r, interpreter_heads=cfg.model.interpreter_heads, starts=starts, oracle=oracle,
                seed=cfg.run.seed):
            if methods is not None and method not in methods and method != "dense":
                continue
            if not cached and points:
                run.reload()
            local = run_views(predict, run.batches, warmup=warmup, sync=run.sync, prepare=run.prepare)
            views = gather_views(local, distributed.all_gather_objects)
            m = dataset_metrics(views, run.dataset, num_classes=cfg.model.num_classes, depth=depth,
                                group_starts=steps)
            points.append(SweepPoint(method, setting, m["gflops_per_view"], m["video_top1"], m["clip_top1"],
                                     m["kept_share"], m["clips_per_second"]))
            if run.env.is_main:
                print(f"sweep {method:<17} {setting:<20} {m['gflops_per_view']:.4f} GFLOPs  "
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
