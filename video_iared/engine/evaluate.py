"""Multi-view evaluation: clip and video accuracy, GFLOPs per view, kept share, throughput.

Any method is a :data:`Predictor` — a normalised clip batch in, a :class:`Prediction` out (logits,
analytic MACs per sample, kept share per reduction step) — so the IA-RED² model, the dense model and
the training-free baselines (``video_iared.baselines``) run through the same harness.

Definitions (``docs/evaluation.md``):
- **clip top-k**: one view per video, the centred temporal window's centre crop.
- **video top-k**: all views of a video (temporal windows × spatial crops), softmax probabilities
  summed; views gathered from every rank, sampler padding duplicates removed.
- **gflops_per_view**: mean analytic MACs per view (fvcore convention, 1 multiply-add = 1 flop) / 1e9.
- **keep_ratio**: the paper's block-weighted share of patch tokens the blocks run on, averaged over
  views; ``keep_per_group``: share of the T·N patch tokens each group keeps.
- **clips_per_second**: views through the model per second of model time (data loading excluded),
  after ``warmup`` batches, on this process's device.
- Videos that could not be read (label -1 from the test dataset) are excluded from accuracy and listed.
"""
from __future__ import annotations

import contextlib
import csv
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, NamedTuple, Sequence

import torch
from torch import Tensor, nn

from video_iared.config import Config
from video_iared.data.kinetics import VideoDataset
from video_iared.data.transforms import normalize_on_device
from video_iared.flops import keep_share, model_macs, shape_of
from video_iared.models.build import build_model, set_decision
from video_iared.models.weights import WeightsError, load_weights

from . import distributed
from .datasets import InputSpec, build_dataset, build_loader, input_spec
from .sampler import ResumableSampler
from .train import resolve_device
from .aggregate import ViewRecords, centre_view, dedupe_views, per_class_accuracy, topk_correct, video_scores

__all__ = ["Prediction", "Predictor", "Batch", "ViewPass", "run_views", "gather_views", "compute_metrics",
           "format_table", "write_metrics", "write_predictions", "load_model", "backbone_of", "group_starts", "model_predictor",
           "test_loader", "evaluate", "dataset_metrics"]


class Prediction(NamedTuple):
    """What a method returns for a batch of B views."""

    logits: Tensor  # (B, C)
    macs: Tensor  # (B,) float64, analytic, per view
    keep: Tensor  # (B, G) share of the T·N patch tokens after each reduction step (G = 0: dense)


Predictor = Callable[[Tensor], Prediction]


class Batch(NamedTuple):
    """A test-loader batch: uint8 clips (B, C, T, H, W) and per-view labels, video and view indices."""

    clip: Tensor
    label: Tensor
    video: Tensor
    view: Tensor


@dataclass
class ViewPass:
    """This process's records of one pass over its share of the views, and the model time it took."""

    records: ViewRecords
    model_seconds: float = 0.0
    timed_views: int = 0


def run_views(predict: Predictor, batches: Iterable[Batch], *, prepare: Callable[[Tensor], Tensor],
              warmup: int = 1, sync: Callable[[], None] = lambda: None) -> ViewPass:
    """Run ``predict`` on every batch under ``torch.inference_mode``.

    ``prepare`` moves a uint8 clip to the device and normalises it; ``sync`` waits for the device
    (``torch.cuda.synchronize``) so the model time of batches after the first ``warmup`` is exact.
    """
    parts, seconds, timed = [], 0.0, 0
    with torch.inference_mode():
        for step, batch in enumerate(batches):
            clip = prepare(batch.clip)
            sync()
            start = time.perf_counter()
            out = predict(clip)
            sync()
            if step >= warmup:
                seconds += time.perf_counter() - start
                timed += clip.shape[0]
            parts.append(ViewRecords(video=batch.video.long(), view=batch.view.long(), label=batch.label.long(),
                                     logits=out.logits.float().cpu(), macs=out.macs.double().cpu(),
                                     keep=out.keep.float().cpu()))
    return ViewPass(ViewRecords.cat(parts), seconds, timed)


def gather_views(local: ViewPass, all_gather: Callable[[Any], list[Any]]) -> ViewPass:
    """Every rank's records (``all_gather`` = ``distributed.all_gather_objects``), de-duplicated.

    Throughput is summed over ranks (they run in parallel, so views / mean time of the ranks).
    """
    passes: list[ViewPass] = all_gather(local)
    records = dedupe_views(ViewRecords.cat([p.records for p in passes]))
    mean_seconds = sum(p.model_seconds for p in passes) / len(passes)
    return ViewPass(records, mean_seconds, sum(p.timed_views for p in passes))


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
        raise RuntimeError("no readable video was evaluated; check the test list and the failed videos")
    video_hits = topk_correct(scores[readable], labels[readable])
    clip = records.take(((records.view == clip_view) & (records.label >= 0)).nonzero().squeeze(1))
    clip_hits = topk_correct(clip.logits, clip.label)
    keep = records.keep
    keep_ratio = keep_share(keep, 1, group_spans, depth) if keep.shape[1] else torch.ones(len(records))
    per_class = per_class_accuracy(video_hits[1], labels[readable], num_classes)
    failed = [int(v) for v in (~readable & (view_counts > 0)).nonzero().squeeze(1)]
    return {
        "clip_top1": _percent(clip_hits[1]), "clip_top5": _percent(clip_hits[5]),
        "video_top1": _percent(video_hits[1]), "video_top5": _percent(video_hits[5]),
        "gflops_per_view": records.macs.mean().item() / 1e9,
        "keep_ratio": keep_ratio.mean().item(),
        "keep_per_group": keep.mean(0).tolist(),
        "clips_per_second": views.timed_views / views.model_seconds if views.model_seconds else float("nan"),
        "num_videos": int(readable.sum()), "num_views": len(records), "num_clip_views": len(clip),
        "failed_videos": len(failed), "failed_video_indices": failed, "unevaluated_videos": missing,
        "per_class_top1": [None if acc != acc else round(acc * 100, 3) for acc in per_class.tolist()],
    }


def _percent(hits: Tensor) -> float:
    return 100.0 * hits.double().mean().item() if hits.numel() else float("nan")


def format_table(metrics: dict[str, Any], title: str = "evaluation") -> str:
    """The headline numbers as an aligned text table."""
    rows = [("clip top-1 / top-5", f"{metrics['clip_top1']:.2f} / {metrics['clip_top5']:.2f} %"),
            ("video top-1 / top-5", f"{metrics['video_top1']:.2f} / {metrics['video_top5']:.2f} %"),
            ("GFLOPs per view", f"{metrics['gflops_per_view']:.4f}"),
            ("keep ratio (block-weighted)", f"{metrics['keep_ratio']:.3f}"),
            ("kept share per group", ", ".join(f"{k:.3f}" for k in metrics["keep_per_group"]) or "-"),
            ("clips / s (model)", f"{metrics['clips_per_second']:.1f}"),
            ("videos / views", f"{metrics['num_videos']} / {metrics['num_views']}"),
            ("failed videos", str(metrics["failed_videos"]))]
    width = max(len(name) for name, _ in rows)
    return "\n".join([title, "-" * (width + 24)] + [f"{name:<{width}}  {value}" for name, value in rows])


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
            pairs = [x for i, s in zip(best.indices[v].tolist(), best.values[v].tolist()) for x in (i, f"{s:.5f}")]
            writer.writerow([paths[v], int(labels[v]), int(views[v]), *pairs])


# ---------------------------------------------------------------------------------------------
# The model under test, and the `video-iared evaluate` entry


def load_model(cfg: Config, checkpoint: str, device: torch.device) -> nn.Module:
    """``build_model(cfg.model)`` with every weight from ``checkpoint``, in eval mode on ``device``.

    Stricter than training's loading: a checkpoint that leaves any parameter at its initialisation —
    a head for another class count, interpreters missing from a dense checkpoint — is an error that
    names the keys, since it would silently evaluate random weights.
    """
    model = build_model(cfg.model, load=False)  # every weight comes from ``checkpoint``
    set_decision(model, cfg.iared)  # checks iared.budget before any work; predictors set theirs per call
    report = load_weights(model, checkpoint, strict=True)
    if report.missing:
        raise WeightsError(
            f"{checkpoint} does not hold every weight of {cfg.model.name} "
            f"(interpreters before blocks {list(cfg.model.interpreter_blocks)}, {cfg.model.num_classes} classes): "
            f"missing {', '.join(report.missing[:6])}{' ...' if len(report.missing) > 6 else ''}")
    return model.to(device).eval()


def backbone_of(model: nn.Module) -> nn.Module:
    """The TimeSformer inside an IA-RED² model (the model itself when dense)."""
    return getattr(model, "backbone", model)


def group_starts(model: nn.Module) -> list[int]:
    """First block of each interpreter group (none for a dense model)."""
    return list(getattr(model, "group_starts", []))


def model_predictor(model: nn.Module, *, decision: str = "threshold", threshold: float = 0.5,
                    budget: Sequence[float] = (), interpreter_heads: int = 6) -> Predictor:
    """The IA-RED² model at a decision setting, or the dense backbone (``decision`` ``none``/no groups).

    ``budget`` (cumulative keep ratio per group) is used by decision ``budget``. MACs come from the
    kept-token masks the model reports, interpreters included.
    """
    backbone = backbone_of(model)
    shape = shape_of(backbone)
    if decision == "none" or not group_starts(model):
        def dense(clip: Tensor) -> Prediction:
            batch = clip.shape[0]
            return Prediction(backbone(clip), model_macs(shape, batch=batch), torch.ones(batch, 0))
        return dense

    def predict(clip: Tensor) -> Prediction:
        model.threshold, model.budgets = threshold, list(budget) or None
        out = model(clip, decision=decision)
        masks = [group.keep.cpu() for group in out.groups]
        macs = model_macs(shape, group_starts=model.group_starts, group_keep=masks,
                          interpreter_heads=interpreter_heads)
        return Prediction(out.logits, macs, torch.stack([m.flatten(1).float().mean(1) for m in masks], 1))
    return predict


def test_loader(cfg: Config, env: distributed.DistEnv, device: torch.device) -> tuple[VideoDataset, Iterator[Batch]]:
    """The multi-view test set and this rank's batches (in order; the last round padded by the sampler)."""
    spec = input_spec(cfg)
    dataset = build_dataset(cfg, "test", spec)
    sampler = ResumableSampler(len(dataset), num_replicas=env.world_size, rank=env.rank, shuffle=False)
    loader = build_loader(dataset, sampler, batch_size=cfg.data.batch_size, num_workers=cfg.data.num_workers,
                          drop_last=False, pin_memory=device.type == "cuda")
    return dataset, (Batch(*items) for items in loader)


@dataclass
class EvalSession:
    """What every evaluation pass needs: the process's place in the job, the loaded model, the input
    spec and the test views (``batches``: a fresh DataLoader iterator; reload with ``reload()``)."""

    cfg: Config
    env: distributed.DistEnv
    device: torch.device
    model: nn.Module
    spec: InputSpec
    dataset: VideoDataset
    batches: Iterable[Batch]

    def reload(self) -> None:
        self.dataset, self.batches = test_loader(self.cfg, self.env, self.device)

    def prepare(self, clip: Tensor) -> Tensor:
        """uint8 clip -> normalised float clip on the device (normalised as late as possible)."""
        return normalize_on_device(clip.to(self.device), self.spec.mean, self.spec.std)

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()


@contextlib.contextmanager
def evaluation_session(cfg: Config, checkpoint: str) -> Iterator[EvalSession]:
    """Distributed setup from the environment, ``checkpoint`` loaded strictly, the multi-view test
    loader; the process group is torn down on exit."""
    env = distributed.detect()
    device = resolve_device(cfg.run.device)
    distributed.setup(env, device)
    try:
        model = load_model(cfg, checkpoint, device)
        yield EvalSession(cfg, env, device, model, input_spec(cfg), *test_loader(cfg, env, device))
    finally:
        distributed.teardown()


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
                                  depth=len(backbone_of(run.model).blocks), group_starts=group_starts(run.model))
        metrics["decision"] = decision_label(cfg)
        metrics["failed_videos_detail"] = sorted({(f.path, f.reason) for part in failures for f in part})
        out = Path(cfg.run.output_dir)
        write_metrics({"checkpoint": str(checkpoint), **metrics}, out / "metrics.json")
        write_predictions(views.records, [path for path, _ in run.dataset.items], run.dataset.num_videos,
                          out / "predictions.csv")
        print(format_table(metrics, title=f"evaluate {checkpoint} ({metrics['decision']})"))
        return metrics


def decision_label(cfg: Config) -> str:
    """How an evaluated model chose its tokens, for tables: ``threshold 0.5``, ``budget 0.45/0.2``, ``dense``."""
    if not cfg.model.interpreter_blocks or cfg.iared.decision == "none":
        return "dense"
    if cfg.iared.decision == "budget":
        return "budget " + "/".join(f"{ratio:g}" for ratio in cfg.iared.budget)
    return f"threshold {cfg.iared.threshold:g}"


def dataset_metrics(views: ViewPass, dataset: VideoDataset, *, num_classes: int, depth: int,
                    group_starts: Sequence[int]) -> dict[str, Any]:
    """:func:`compute_metrics` with the dataset's view layout; ``group_starts`` are the first blocks of
    the reduction steps recorded in ``views`` (each step's tokens run until the next one starts)."""
    starts = list(group_starts)
    spans = [end - start for start, end in zip(starts, starts[1:] + [depth])]
    return compute_metrics(views, num_videos=dataset.num_videos, num_classes=num_classes,
                           clip_view=centre_view(dataset.num_ensemble_views, dataset.num_spatial_crops),
                           group_spans=spans, depth=depth)
