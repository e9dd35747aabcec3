"""What an evaluation shows and leaves behind: the text table, ``metrics.json`` and ``predictions.csv``."""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Sequence

from .aggregate import ViewRecords, video_scores

__all__ = ["format_table", "previous_evaluation", "write_metrics", "write_predictions"]


def format_table(metrics: dict[str, Any], title: str = "evaluation") -> str:
    """The headline numbers as an aligned text table."""
    rows = [("clip top-1 / top-5", f"{metrics['clip_top1']:.2f} / {metrics['clip_top5']:.2f} %"),
            ("video top-1 / top-5", f"{metrics['video_top1']:.2f} / {metrics['video_top5']:.2f} %"),
            ("GFLOPs per view", f"{metrics['gflops_per_view']:.4f}"),
            ("kept share (block-weighted)", f"{metrics['kept_share']:.3f}"),
            ("kept share per group", ", ".join(f"{k:.3f}" for k in metrics["kept_share_per_group"]) or "-"),
            ("clips / s (model)", f"{metrics['clips_per_second']:.1f}"),
            ("videos / views", f"{metrics['num_videos']} / {metrics['num_views']}"),
            ("failed videos", str(metrics["failed_videos"]))]
    width = max(len(name) for name, _ in rows)
    return "\n".join([title, "-" * (width + 24)] + [f"{name:<{width}}  {value}" for name, value in rows])


def previous_evaluation(path: str | Path) -> tuple[str, str] | None:
    """(checkpoint, decision) of the evaluation whose ``metrics.json`` is at ``path``, if any."""
    try:
        saved = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return str(saved.get("checkpoint")), str(saved.get("decision"))


def write_metrics(metrics: dict[str, Any], path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(metrics, indent=2, allow_nan=True) + "\n")


def write_predictions(records: ViewRecords, paths: Sequence[str], num_videos: int, path: str | Path,
                      top: int = 5) -> None:
    """One row per evaluated video: path, label (-1: unreadable), top-``top`` class ids and scores.

    Scores are the video's mean softmax probability over its views.
    """
    scores, labels, views = video_scores(records, num_videos)
    mean = scores / views.clamp(min=1)[:, None]
    best = mean.topk(min(top, mean.shape[1]), dim=1)
    header = ["path", "label", "num_views"] + [f"top{i + 1}_{kind}" for i in range(best.indices.shape[1])
                                               for kind in ("id", "score")]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for v in views.nonzero().squeeze(1).tolist():
            pairs = [x for i, s in zip(best.indices[v].tolist(), best.values[v].tolist())
                     for x in (i, f"{s:.5f}")]
            writer.writerow([paths[v], int(labels[v]), int(views[v]), *pairs])
