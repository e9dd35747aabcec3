"""Pure helpers of multi-view evaluation: de-duplicate gathered views, aggregate them per video, score.

Each evaluated view is one row of a :class:`ViewRecords` (its video, its view, label, logits, MACs and
kept share per group). Rows from every rank are concatenated, the padding duplicates that a
``DistributedSampler`` adds to make ranks even are removed by their ``(video, view)`` key, and a
video's score is the **sum of its views' softmax probabilities** (the official TimeSformer/SlowFast
test ensembles the softmax outputs; the argmax equals that of their mean). Clip accuracy uses one
view per video: the centred temporal window's centre crop (:func:`centre_view`).
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Sequence

import torch
from torch import Tensor

__all__ = ["ViewRecords", "centre_view", "dedupe_views", "video_scores", "topk_correct", "per_class_accuracy"]


@dataclass
class ViewRecords:
    """One row per evaluated view; every field is a tensor whose first dimension is the row.

    ``label`` is -1 for a view of an unreadable video (the test dataset's convention).
    ``kept_per_group`` (V, G) is the share of the T·N patch tokens each group ran on (empty G for dense
    runs).
    """

    video: Tensor  # (V,) long
    view: Tensor  # (V,) long
    label: Tensor  # (V,) long
    logits: Tensor  # (V, C) float
    macs: Tensor  # (V,) float64, per view
    kept_per_group: Tensor  # (V, G) float

    def __len__(self) -> int:
        return self.video.shape[0]

    @classmethod
    def cat(cls, parts: Sequence[ViewRecords]) -> ViewRecords:
        """Concatenate batches (or ranks' records) in order."""
        if not parts:
            raise ValueError("no view records to concatenate (was the dataset empty?)")
        return cls(**{f.name: torch.cat([getattr(p, f.name) for p in parts]) for f in fields(cls)})

    def take(self, rows: Tensor) -> ViewRecords:
        return ViewRecords(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})


def centre_view(num_ensemble_views: int, num_spatial_crops: int) -> int:
    """View index of the centred temporal window's centre crop (views are ``temporal * crops + spatial``).

    With an even number of temporal windows none is centred; the later of the two middle ones is used.
    """
    return (num_ensemble_views // 2) * num_spatial_crops + num_spatial_crops // 2


def dedupe_views(records: ViewRecords) -> ViewRecords:
    """Keep the first row of every ``(video, view)`` key, in increasing key order.

    A ``DistributedSampler`` pads the last round with repeated items so every rank gets as many;
    counting those twice would bias accuracy towards the first videos of the list.
    """
    key = records.video * (int(records.view.max()) + 1) + records.view
    unique, inverse = torch.unique(key, return_inverse=True)
    first = torch.full((unique.numel(),), len(records), dtype=torch.long)
    first.scatter_reduce_(0, inverse, torch.arange(len(records)), reduce="amin")
    return records.take(first)


def video_scores(records: ViewRecords, num_videos: int) -> tuple[Tensor, Tensor, Tensor]:
    """Sum of softmax probabilities over each video's views.

    Returns ``scores`` (num_videos, C), ``labels`` (num_videos,) and ``views`` (num_videos,) — how
    many views each video had (0 for a video no rank evaluated; its label is -1).
    """
    if int(records.video.max()) >= num_videos:
        raise ValueError(f"video index {int(records.video.max())} outside {num_videos} videos")
    probs = records.logits.float().softmax(-1)
    scores = probs.new_zeros(num_videos, probs.shape[1]).index_add_(0, records.video, probs)
    views = torch.bincount(records.video, minlength=num_videos)
    labels = torch.full((num_videos,), -1, dtype=torch.long).scatter_(0, records.video, records.label)
    return scores, labels, views


def topk_correct(scores: Tensor, labels: Tensor, ks: Sequence[int] = (1, 5)) -> dict[int, Tensor]:
    """Per-row bool ``label in top-k(scores)`` for each k (k clipped to the number of classes)."""
    ranked = scores.topk(min(max(ks), scores.shape[1]), dim=1).indices
    hits = ranked == labels[:, None]
    return {k: hits[:, :k].any(1) for k in ks}


def per_class_accuracy(correct: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """(num_classes,) top-1 accuracy of each class, NaN for a class with no sample."""
    total = torch.bincount(labels, minlength=num_classes).double()
    right = torch.bincount(labels, weights=correct.double(), minlength=num_classes)
    return right / total.where(total > 0, torch.tensor(float("nan"), dtype=torch.float64))
