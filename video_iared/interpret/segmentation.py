"""Segmentation scores of heatmaps against foreground masks, with the protocol of Chefer et al.

Chefer, Gur & Wolf, "Transformer Interpretability Beyond Attention Visualization" (CVPR 2021), as used
by IA-RED² (Pan et al. 2021, Sec. 4.4) on ImageNet-Segmentation. Every frame (or image) is one unit:

1. the patch map (h, w) is upsampled bilinearly to the mask's size (H, W);
2. min-max normalised to [0, 1] (a constant map becomes all zeros: nothing is foreground);
3. thresholded at its own mean -> predicted foreground (strictly above the mean).

Scores over a dataset (:class:`SegmentationMeter`):
- **pixel accuracy**: correctly labelled pixels / all pixels;
- **mean accuracy**: the pixel accuracy of each class (background, foreground) summed over the dataset,
  then the mean of the two, so a map that calls everything background scores 50 %, not the background
  share;
- **mIoU**: intersections and unions of the two classes (background, foreground) summed over the
  dataset, IoU per class, mean of the two;
- **mAP**: average precision of the continuous normalised map against the mask, per frame, averaged.
  A frame whose mask is empty has no AP (no positive pixel): it is skipped for mAP and still counted
  for pixel accuracy and mIoU.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["normalize_maps", "foreground", "average_precision", "SegmentationMeter"]


def normalize_maps(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """(F, h, w) patch maps -> (F, H, W) float maps, bilinearly upsampled and min-max normalised per map."""
    up = F.interpolate(maps[:, None].float(), size=size, mode="bilinear", align_corners=False)[:, 0]
    low = up.amin((1, 2), keepdim=True)
    span = up.amax((1, 2), keepdim=True) - low
    scaled = (up - low) / span.clamp_min(torch.finfo(up.dtype).tiny)
    return torch.where(span > 0, scaled, torch.zeros_like(up))


def foreground(normalised: Tensor) -> Tensor:
    """(F, H, W) normalised maps -> bool foreground, ``map > mean(map)`` per map."""
    return normalised > normalised.mean((1, 2), keepdim=True)


def average_precision(scores: Tensor, target: Tensor) -> float | None:
    """Average precision of ``scores`` ranking the ``True`` pixels of ``target`` (both any shape).

    AP = sum over distinct score thresholds (high to low) of (recall_k - recall_{k-1}) * precision_k,
    ties counted together (scikit-learn's ``average_precision_score``). ``None`` when ``target`` has no
    positive pixel.
    """
    labels = target.flatten().to(torch.float64)
    if labels.sum() == 0:
        return None
    values, order = scores.flatten().to(torch.float64).sort(descending=True, stable=True)
    labels = labels[order]
    last_of_tie = torch.cat([(values[1:] != values[:-1]).nonzero().squeeze(1),
                             torch.tensor([values.numel() - 1])])
    true_pos = labels.cumsum(0)[last_of_tie]
    precision = true_pos / (last_of_tie + 1).to(torch.float64)
    recall = true_pos / labels.sum()
    gain = torch.diff(recall, prepend=recall.new_zeros(1))
    return float((gain * precision).sum())


@dataclass
class SegmentationMeter:
    """Accumulates pixel accuracy, two-class mIoU and mAP of heatmaps over a dataset."""

    correct: int = 0
    pixels: int = 0
    frames: int = 0
    ap_sum: float = 0.0
    ap_frames: int = 0
    intersection: list[int] = field(default_factory=lambda: [0, 0])  # background, foreground
    union: list[int] = field(default_factory=lambda: [0, 0])
    truth: list[int] = field(default_factory=lambda: [0, 0])          # pixels of each class

    def update(self, maps: Tensor, masks: Tensor) -> None:
        """Add frames: ``maps`` (F, h, w) patch heatmaps, ``masks`` (F, H, W) with nonzero = foreground."""
        if maps.shape[0] != masks.shape[0]:
            raise ValueError(f"{maps.shape[0]} heatmaps for {masks.shape[0]} masks")
        target = masks != 0
        normalised = normalize_maps(maps, tuple(masks.shape[1:]))
        predicted = foreground(normalised)
        self.correct += int((predicted == target).sum())
        self.pixels += target.numel()
        self.frames += target.shape[0]
        for cls, (pred_c, true_c) in enumerate([(~predicted, ~target), (predicted, target)]):
            self.intersection[cls] += int((pred_c & true_c).sum())
            self.union[cls] += int((pred_c | true_c).sum())
            self.truth[cls] += int(true_c.sum())
        for score, truth in zip(normalised, target):
            ap = average_precision(score, truth)
            if ap is not None:
                self.ap_sum += ap
                self.ap_frames += 1

    def compute(self) -> dict[str, float]:
        """``{"pixel_acc", "mean_acc", "miou", "map", "frames", "ap_frames"}``; scores as fractions in
        [0, 1]."""
        if not self.frames:
            raise ValueError("no frames were added")
        ious = [inter / union for inter, union in zip(self.intersection, self.union) if union]
        accuracies = [inter / truth for inter, truth in zip(self.intersection, self.truth) if truth]
        return {
            "pixel_acc": self.correct / self.pixels,
            "mean_acc": sum(accuracies) / len(accuracies),
            "miou": sum(ious) / len(ious),
            "map": self.ap_sum / self.ap_frames if self.ap_frames else float("nan"),
            "frames": self.frames,
            "ap_frames": self.ap_frames,
        }
