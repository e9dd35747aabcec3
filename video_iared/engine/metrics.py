"""Evaluation metrics from the de-duplicated views of every rank.

Definitions (docs/design.md, Evaluation):
- **clip top-k**: one view per video, the centred temporal window's centre crop.
- **video top-k**: all views of a video (temporal windows × spatial crops), softmax probabilities
  summed; views gathered from every rank, sampler padding duplicates removed.
- **gflops_per_view**: mean analytic MACs per view (fvcore convention, 1 multiply-add = 1 flop) / 1e9.
- **kept_share**: the paper's block-weighted share of patch tokens the blocks run on, averaged over
  views; ``kept_share_per_group``: share of the T·N patch tokens each group keeps.
- **clips_per_second**: views through the model per second of model time (data loading excluded),
  after ``warmup`` batches, on this process's device.
- Videos that could not be read (label -1 from the test dataset) are excluded from accuracy and listed.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor

from video_iared.data.kinetics import VideoDataset
from video_iared.errors import UserError
from video_iared.flops import kept_share

from .aggregate import centre_view, per_class_accuracy, topk_correct, video_scores
from .harness import ViewPass

__all__ = ["compute_metrics", "dataset_metrics"]


def compute_metrics(views: ViewPass, *, num_videos: int, num_classes: int, clip_view: int,
                    group_spans: Sequence[int], depth: int) -> dict[str, Any]:
    """Metrics of the module docstring from de-duplicated views.

    ``group_spans`` are the blocks each reduction step's tokens run through (the paper's cost proxy
    weights), ``depth`` the number of blocks. Raises when no readable view is left.
    """
    records = views.records
    scores, labels, view_counts = video_scores(records, num_videos)
    readable = labels >= 0
    missing = int((view_counts == 0).sum())
    if not bool(readable.any()):
        raise UserError("no readable video was evaluated; check the test list with data_prep/check_videos.py")
    # per-sample hits, not timm.utils.accuracy's batch mean: the per-class accuracy needs them
    video_hits = topk_correct(scores[readable], labels[readable])
    clip = records.take(((records.view == clip_view) & (records.label >= 0)).nonzero().squeeze(1))
    clip_hits = topk_correct(clip.logits, clip.label)
    per_group = records.kept_per_group
    share = kept_share(per_group, 1, group_spans, depth) if per_group.shape[1] else torch.ones(len(records))
    per_class = per_class_accuracy(video_hits[1], labels[readable], num_classes)
    failed = [int(v) for v in (~readable & (view_counts > 0)).nonzero().squeeze(1)]
    return {
        "clip_top1": _percent(clip_hits[1]), "clip_top5": _percent(clip_hits[5]),
        "video_top1": _percent(video_hits[1]), "video_top5": _percent(video_hits[5]),
        "gflops_per_view": records.macs.mean().item() / 1e9,
        "kept_share": share.mean().item(),
        "kept_share_per_group": per_group.mean(0).tolist(),
        "clips_per_second": views.timed_views / views.model_seconds if views.model_seconds else float("nan"),
        "num_videos": int(readable.sum()), "num_views": len(records), "num_clip_views": len(clip),
        "failed_videos": len(failed), "failed_video_indices": failed, "unevaluated_videos": missing,
        "per_class_top1": [None if acc != acc else round(acc * 100, 3) for acc in per_class.tolist()],
    }


def _percent(hits: Tensor) -> float:
    return 100.0 * hits.double().mean().item() if hits.numel() else float("nan")


def dataset_metrics(views: ViewPass, dataset: VideoDataset, *, num_classes: int, depth: int,
                    group_starts: Sequence[int]) -> dict[str, Any]:
    """:func:`compute_metrics` with the dataset's view layout; ``group_starts`` are the first blocks of
    the reduction steps recorded in ``views`` (each step's tokens run until the next one starts)."""
    starts = list(group_starts)
    spans = [end - start for start, end in zip(starts, starts[1:] + [depth])]
    return compute_metrics(views, num_videos=dataset.num_videos, num_classes=num_classes,
                           clip_view=centre_view(dataset.num_ensemble_views, dataset.num_spatial_crops),
                           group_spans=spans, depth=depth)
