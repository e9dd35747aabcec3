"""The evaluation harness: any method is a :data:`Predictor` — a normalised clip batch in, a
:class:`Prediction` out (logits, analytic MACs per sample, kept share per reduction step) — so the
IA-RED² model, the dense model and the training-free baselines (``video_iared.baselines``) run through
the same loop, timed the same way, and their views are gathered from every rank the same way.
A :class:`MaskPredictor` (the oracle baselines) also receives each batch's actor masks.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, NamedTuple, Sequence

import torch
from torch import Tensor, nn

from video_iared.flops import group_kept_shares
from video_iared.models.cost import forward_macs
from video_iared.models.iared import backbone_of, group_starts_of

from .aggregate import ViewRecords, dedupe_views

__all__ = ["Prediction", "Predictor", "MaskPredictor", "Batch", "ViewPass", "run_views", "gather_views",
           "model_predictor"]


class Prediction(NamedTuple):
    """What a method returns for a batch of B views."""

    logits: Tensor  # (B, C)
    macs: Tensor  # (B,) float64, analytic, per view
    kept_per_group: Tensor  # (B, G) share of the T·N patch tokens after each group's drop (G = 0: dense)


Predictor = Callable[[Tensor], Prediction]


# A type of its own rather than a masks argument on every predictor: only the oracle rows read masks,
# so every other method and caller keeps clip -> Prediction, and run_views knows from the type alone
# which passes need masks (and fails at the first batch that carries none).
@dataclass(frozen=True)
class MaskPredictor:
    """A method that also reads the actor masks: ``(clip, masks (B, T, H, W) uint8 on the clip's
    device) -> Prediction``."""

    predict: Callable[[Tensor, Tensor], Prediction]

    def __call__(self, clip: Tensor, masks: Tensor) -> Prediction:
        return self.predict(clip, masks)


class Batch(NamedTuple):
    """A test-loader batch: uint8 clips (B, C, T, H, W) and per-view labels, video and view indices;
    ``masks`` (B, T, H, W) uint8, cropped like the clips, when the session loads them."""

    clip: Tensor
    label: Tensor
    video: Tensor
    view: Tensor
    masks: Tensor | None = None


@dataclass
class ViewPass:
    """This process's records of one pass over its share of the views, and the model time it took."""

    records: ViewRecords
    model_seconds: float = 0.0
    timed_views: int = 0


def run_views(predict: Predictor | MaskPredictor, batches: Iterable[Batch], *,
              prepare: Callable[[Tensor], Tensor], warmup: int = 1,
              sync: Callable[[], None] = lambda: None) -> ViewPass:
    """Run ``predict`` on every batch under ``torch.inference_mode`` (a :class:`MaskPredictor` with
    the batch's masks, on the clip's device).

    ``prepare`` moves a uint8 clip to the device and normalises it; ``sync`` waits for the device
    (``torch.cuda.synchronize``) so the model time of batches after the first ``warmup`` is exact.
    """
    parts, seconds, timed = [], 0.0, 0
    with torch.inference_mode():
        for step, batch in enumerate(batches):
            clip = prepare(batch.clip)
            inputs = (clip, _masks_of(batch, clip.device)) if isinstance(predict, MaskPredictor) else (clip,)
            sync()
            start = time.perf_counter()
            out = predict(*inputs)
            sync()
            if step >= warmup:
                seconds += time.perf_counter() - start
                timed += clip.shape[0]
            parts.append(ViewRecords(video=batch.video.long(), view=batch.view.long(),
                                     label=batch.label.long(), logits=out.logits.float().cpu(),
                                     macs=out.macs.double().cpu(),
                                     kept_per_group=out.kept_per_group.float().cpu()))
    return ViewPass(ViewRecords.cat(parts), seconds, timed)


def _masks_of(batch: Batch, device: torch.device) -> Tensor:
    if batch.masks is None:
        raise ValueError("this method reads actor masks, but the batches carry none: load them with "
                         "evaluation_session(cfg, checkpoint, with_masks=True)")
    return batch.masks.to(device)


def gather_views(local: ViewPass, all_gather: Callable[[Any], list[Any]]) -> ViewPass:
    """Every rank's records (``all_gather`` = ``distributed.all_gather_objects``), de-duplicated.

    Throughput is summed over ranks (they run in parallel, so views / mean time of the ranks).
    """
    passes: list[ViewPass] = all_gather(local)
    records = dedupe_views(ViewRecords.cat([p.records for p in passes]))
    mean_seconds = sum(p.model_seconds for p in passes) / len(passes)
    return ViewPass(records, mean_seconds, sum(p.timed_views for p in passes))


def model_predictor(model: nn.Module, *, decision: str = "threshold", threshold: float = 0.5,
                    budget: Sequence[float] = (), interpreter_heads: int | None = None) -> Predictor:
    """The IA-RED² model at a decision setting, or the dense backbone (``decision`` ``none``/no groups).

    ``budget`` (cumulative keep ratio per group) is used by decision ``budget``. MACs come from the
    kept-token masks the model reports, interpreters included (``interpreter_heads``: default the
    model's own).
    """
    backbone = backbone_of(model)
    if decision == "none" or not group_starts_of(model):
        def dense(clip: Tensor) -> Prediction:
            return Prediction(backbone(clip), forward_macs(backbone, clip), torch.ones(clip.shape[0], 0))
        return dense

    def predict(clip: Tensor) -> Prediction:
        out = model(clip, decision=decision, threshold=threshold, budgets=list(budget) or None)
        masks = [group.keep.cpu() for group in out.groups]
        return Prediction(out.logits, forward_macs(model, clip, masks, interpreter_heads=interpreter_heads),
                          group_kept_shares(masks))
    return predict
