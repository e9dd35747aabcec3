"""Single-video inference: load any checkpoint, read one clip, and report classes, cost and features.

What users of the official TimeSformer keep asking for: classify one video, extract its
CLS features, and do so with the official ``.pyth`` checkpoints too. A checkpoint of this project
carries its config; an official or foreign one does not, so the model is read off its weight shapes
(or from ``--config``). Models without interpreters run dense.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from video_iared.config import Config
from video_iared.data.kinetics import load_dataset_info
from video_iared.data.prep import probe_video
from video_iared.data.sampling import clip_indices
from video_iared.data.transforms import crop_clip, multi_view_crop_boxes, normalize_on_device
from video_iared.data.video import read_clip
from video_iared.engine.datasets import InputSpec, input_spec
from video_iared.engine.loading import (check_classes, checkpoint_classes, infer_model_overrides,
                                        inference_config, load_for_inference)
from video_iared.errors import UserError
from video_iared.flops import group_kept_shares
from video_iared.models.cost import forward_macs
from video_iared.models.iared import backbone_of
from video_iared.models.weights import WeightsError, read_checkpoint

__all__ = ["LoadedModel", "ClipPrediction", "infer_model_overrides", "load_model", "read_class_names",
           "read_video", "predict_clip", "run_iared", "format_prediction", "save_features"]


@dataclass
class LoadedModel:
    """A model ready for inference, with the config it was built from and its input recipe."""

    model: nn.Module
    cfg: Config
    spec: InputSpec
    classes: list[str] = field(default_factory=list)  # the class names it was trained on, when saved
    source: str = "the checkpoint"

    @property
    def has_interpreters(self) -> bool:
        return bool(self.cfg.model.group_starts)

    @property
    def model_num_classes(self) -> int:
        return backbone_of(self.model).num_classes


def load_model(checkpoint: str | Path, *, config: str | None = None,
               overrides: list[str] | tuple[str, ...] = (),
               device: torch.device | str = "cpu") -> LoadedModel:
    """Build the checkpoint's model and load every weight (``engine.loading.load_for_inference``), in
    eval mode with the config's decision deployed.

    The config is, in order of preference: ``config`` (a YAML file), the one saved in the checkpoint,
    or one inferred from the weights (:func:`infer_model_overrides`); ``overrides`` apply on top.
    """
    raw = read_checkpoint(checkpoint)
    if not isinstance(raw, dict):
        raise WeightsError(f"{checkpoint} holds a {type(raw).__name__}, not a checkpoint dictionary")
    cfg = inference_config(raw, config=config, overrides=overrides)
    model = load_for_inference(cfg, raw, device, source=str(checkpoint))
    return LoadedModel(model, cfg, input_spec(cfg), checkpoint_classes(raw), str(checkpoint))


def read_class_names(path: str | Path | None, cfg: Config, num_classes: int, *,
                     trained: Sequence[str] = (), checkpoint: str = "the checkpoint") -> list[str]:
    """Class names: ``path`` (a list, ``{"classes": [...]}`` or Kinetics' ``{name: id}``), else the ones
    the checkpoint was trained on (``trained``), else ``classes.json`` in ``cfg.data.root``, else
    ``class <id>``. A ``path`` whose names differ from ``trained`` is an error (ids would be misnamed)."""
    names: list[str] = []
    if path:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as err:
            raise UserError(f"--classes {path}: cannot read it as JSON ({err})") from None
        if isinstance(data, dict) and "classes" in data:
            data = data["classes"]
        if isinstance(data, dict):
            names = [name for name, _ in sorted(data.items(), key=lambda item: int(item[1]))]
        elif isinstance(data, list):
            names = [str(name) for name in data]
        else:
            raise UserError(f"{path}: expected a list of names, {{'classes': [...]}} or {{name: id}}")
        check_classes(trained, names, checkpoint=checkpoint, where=f"--classes {path}")
    elif trained:
        names = list(trained)
    elif cfg.data.root:
        names = load_dataset_info(cfg.data.root).class_names
    if names and len(names) != num_classes:
        raise UserError(f"{len(names)} class names for a model with {num_classes} classes")
    return names or [f"class {i}" for i in range(num_classes)]


def read_video(path: str | Path, spec: InputSpec, *, test_scale: int | None = None) -> Tensor:
    """The centred single view of a video, as uint8 (3, T, S, S): the clip window in the middle of the
    video, short side ``test_scale`` (default S·256/224), centre crop. The video first passes
    ``data_prep/check_videos.py``'s probe (first, middle and last frames decode): a cut-short file is
    refused, not classified from the frames that survive. Raises ``VideoDecodeError``."""
    probe_video(str(path))
    decoded = read_clip(str(path), lambda frames, fps: clip_indices(
        frames, num_frames=spec.num_frames, sampling_rate=spec.sampling_rate, position=0.5, video_fps=fps))
    height, width = decoded.frames.shape[1:3]
    scale = test_scale or round(spec.crop_size * 256 / 224)
    box = multi_view_crop_boxes(height, width, crop_size=spec.crop_size, num_crops=1, short_side=scale)[0]
    return crop_clip(decoded.frames, box, size=spec.crop_size)


def run_iared(model: nn.Module, clips: Tensor) -> Any:
    """The IA-RED² model's inference forward with its deployed decision (:func:`load_model` sets the
    config's ``iared.decision``; threshold 0.5, the paper's, by default) -> ``IARedOutput``."""
    return model(clips)


@dataclass
class ClipPrediction:
    """One clip's class probabilities, normed CLS features and cost."""

    probs: Tensor  # (C,)
    features: Tensor  # (D,)
    gflops: float
    dense_gflops: float
    kept_share: float  # block-weighted kept share of patch tokens (1 for dense)
    kept_share_per_group: list[float]  # share of patch tokens kept after each interpreter

    def top(self, k: int = 5) -> list[tuple[int, float]]:
        values, ids = self.probs.topk(min(k, self.probs.numel()))
        return list(zip(ids.tolist(), values.tolist()))


@torch.no_grad()
def predict_clip(loaded: LoadedModel, clip: Tensor) -> ClipPrediction:
    """Classify a uint8 clip (3, T, S, S); features are the input of the classifier head."""
    model, spec = loaded.model, loaded.spec
    device = next(model.parameters()).device
    x = normalize_on_device(clip[None].to(device), spec.mean, spec.std)
    captured: list[Tensor] = []
    hook = backbone_of(model).head.register_forward_pre_hook(lambda mod, args: captured.append(args[0]))
    try:
        if loaded.has_interpreters:
            out = run_iared(model, x)
            logits, decisions = out.logits, [g.keep.cpu() for g in out.groups]
            share = float(out.kept_share[0])
        else:
            logits, decisions, share = model(x), [], 1.0
    finally:
        hook.remove()
    macs, dense = forward_macs(model, x, decisions), forward_macs(model, x)
    return ClipPrediction(probs=logits[0].float().softmax(-1).cpu(), features=captured[0][0].float().cpu(),
                          gflops=float(macs[0]) / 1e9, dense_gflops=float(dense[0]) / 1e9, kept_share=share,
                          kept_share_per_group=group_kept_shares(decisions)[0].tolist() if decisions else [])


def format_prediction(prediction: ClipPrediction, names: list[str], *, k: int = 5) -> str:
    """The ``predict`` report: top-k classes with probabilities, GFLOPs and kept share."""
    lines = [f"top-{k}:"]
    lines += [f"  {rank}. {names[i]:<30s} {p:.3f}" for rank, (i, p) in enumerate(prediction.top(k), start=1)]
    cost = (f"GFLOPs {prediction.gflops:.3f} (dense {prediction.dense_gflops:.3f})  "
            f"kept share {prediction.kept_share:.3f}")
    if prediction.kept_share_per_group:
        shares = ", ".join(f"{s:.3f}" for s in prediction.kept_share_per_group)
        cost += f"  (after each interpreter: {shares})"
    return "\n".join([*lines, cost])


def save_features(prediction: ClipPrediction, path: str | Path) -> Path:
    """Write the CLS features (D,) float32 as ``.npy``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, prediction.features.numpy().astype(np.float32))
    return path
