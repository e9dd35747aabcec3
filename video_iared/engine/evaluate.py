"""``video-iared evaluate``: multi-view evaluation of one checkpoint on ``data.test_list`` — clip and
video accuracy, GFLOPs per view, kept share, throughput (definitions in :mod:`.metrics`).

The parts have one module each: :mod:`.session` (distributed setup, strict loading through
:mod:`.loading`, the test loader), :mod:`.harness` (the predictor loop), :mod:`.metrics` and
:mod:`.results` (the table and the files).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from video_iared.config import Config
from video_iared.models.iared import backbone_of, group_starts_of

from . import distributed
from .harness import gather_views, model_predictor, run_views
from .metrics import dataset_metrics
from .results import format_table, previous_evaluation, write_metrics, write_predictions
from .session import evaluation_session

__all__ = ["evaluate", "decision_label"]


def evaluate(cfg: Config, checkpoint: str, *, warmup: int = 2) -> dict[str, Any] | None:
    """Evaluate ``checkpoint`` on ``cfg.data.test_list`` on every process of the job.

    Rank 0 prints the table and writes ``metrics.json`` and ``predictions.csv`` into
    ``cfg.run.output_dir``, and returns the metrics (other ranks return None).
    """
    with evaluation_session(cfg, checkpoint) as run:
        predict = model_predictor(run.model, decision=cfg.iared.decision, threshold=cfg.iared.threshold,
                                  budget=cfg.iared.budget, interpreter_heads=cfg.model.interpreter_heads)
        local = run_views(predict, run.batches, warmup=warmup, sync=run.sync, prepare=run.prepare)
        views = gather_views(local, distributed.all_gather_objects)
        failures = distributed.all_gather_objects(run.dataset.failures)
        if not run.env.is_main:
            return None
        metrics = dataset_metrics(views, run.dataset, num_classes=cfg.model.num_classes,
                                  depth=len(backbone_of(run.model).blocks),
                                  group_starts=group_starts_of(run.model))
        metrics["decision"] = decision_label(cfg, run.calibration)
        metrics["failed_videos_detail"] = sorted({(f.path, f.reason) for part in failures for f in part})
        out = Path(cfg.run.output_dir)
        previous = previous_evaluation(out / "metrics.json")
        if previous is not None and previous != (str(checkpoint), metrics["decision"]):
            print(f"replacing {out / 'metrics.json'} and predictions.csv, which held {previous[0]} "
                  f"({previous[1]}); set run.output_dir to keep both")
        write_metrics({"checkpoint": str(checkpoint), **metrics}, out / "metrics.json")
        write_predictions(views.records, [path for path, _ in run.dataset.items], run.dataset.num_videos,
                          out / "predictions.csv")
        print(format_table(metrics, title=f"evaluate {checkpoint} ({metrics['decision']})"))
        return metrics


def decision_label(cfg: Config, calibration: Mapping | None = None) -> str:
    """How an evaluated model chose its tokens, for tables: ``threshold 0.5``, ``budget 0.45/0.2``,
    ``thresholds calibrated to 0.45/0.2`` (the budget saved with the ``calibration``, which the
    thresholds were fitted to, not ``iared.budget``), ``dense``."""
    if not cfg.model.group_starts or cfg.iared.decision == "none":
        return "dense"
    if cfg.iared.decision == "budget":
        return "budget " + "/".join(f"{ratio:g}" for ratio in cfg.iared.budget)
    if cfg.iared.decision == "calibrated":
        budget = (calibration or {}).get("budget") or cfg.iared.budget
        return "thresholds calibrated to " + "/".join(f"{ratio:g}" for ratio in budget)
    return f"threshold {cfg.iared.threshold:g}"
