"""The ``interpret`` jobs: explain one video (renders), and score every heatmap method against masks.

Both compute, for a batch of clips, the maps of every method (:func:`method_maps`): the IA-RED²
interpreters (combined and per group, every token scored, with the tokens the deployed decision
dropped), the explanations of the dense backbone (raw attention, rollout, Grad-CAM, attention ×
gradient, transformer attribution) and random maps.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Subset

from video_iared.data.kinetics import mask_sidecar_path
from video_iared.data.transforms import normalize_on_device
from video_iared.engine.datasets import build_dataset
from video_iared.models.iared import backbone_of
from video_iared.predict import LoadedModel, read_video, run_iared

from .explanations import explanation_maps
from .heatmaps import interpreter_maps, interpreter_scores, patch_grid, random_map
from .imagenet_seg import ImageNetSegmentation
from .segmentation import SegmentationMeter
from .render import mark_dropped, overlay, panel_strip, resize_frames, save_grid, write_animation

__all__ = ["method_maps", "explain_video", "mask_batches", "evaluate_masks", "format_table", "write_results"]

DISPLAY_SIZE = 128  # frames smaller than this are enlarged for the renders


@torch.no_grad()
def method_maps(loaded: LoadedModel, clips: Tensor, *, block: int = -1, seed: int = 0
                ) -> tuple[Tensor, dict[str, Tensor], dict[str, Tensor]]:
    """uint8 clips (B, 3, T, S, S) or images (B, 3, S, S) -> (logits, {method: (B, T, h, w)},
    {method: dropped (B, T, h, w)}), T = 1 for images.

    Logits are the IA-RED² model's (its deployed decision), or the dense model's without interpreters.
    The interpreter maps cover every token (:func:`.heatmaps.interpreter_scores`); the dropped masks are
    the deployed decision's: per group, and for the combined map every token some group dropped. The
    explanations (:func:`.explanations.explanation_maps`) explain the dense backbone's prediction.
    """
    model, spec = loaded.model, loaded.spec
    device = next(model.parameters()).device
    x = normalize_on_device(clips.to(device), spec.mean, spec.std, channel_dim=-4 if clips.dim() == 5 else -3)
    backbone = backbone_of(model)
    grid = patch_grid(backbone, x)
    maps: dict[str, Tensor] = {}
    dropped: dict[str, Tensor] = {}
    if loaded.has_interpreters:
        out = run_iared(model, x)
        logits = out.logits
        maps.update(interpreter_maps(interpreter_scores(model, x), grid))
        for g, group in enumerate(out.groups):
            dropped[f"interpreter_g{g}"] = ~group.keep.view(*group.keep.shape[:2], *grid)
        dropped["interpreter"] = dropped[f"interpreter_g{len(out.groups) - 1}"]
    else:
        logits = backbone(x)
    maps.update(explanation_maps(backbone, x, block=block))
    generator = torch.Generator().manual_seed(seed)
    maps["random"] = random_map(tuple(maps["rollout"].shape), generator=generator)
    maps = {name: heat.float().cpu() for name, heat in maps.items()}
    return logits.float().cpu(), maps, {name: mask.cpu() for name, mask in dropped.items()}


def explain_video(loaded: LoadedModel, video: str | Path, out_dir: str | Path, *, class_names: list[str],
                  fmt: str = "mp4", block: int = -1) -> dict[str, Path]:
    """Render one video's heatmaps: ``heatmaps.<fmt>`` (panels side by side, dropped tokens hatched),
    ``heatmaps.png`` (frames × methods grid with legend) and ``heatmaps.json`` (top-5, kept shares)."""
    out_dir = Path(out_dir)
    clip = read_video(video, loaded.spec)
    logits, maps, dropped = method_maps(loaded, clip[None], block=block)
    probs = logits[0].softmax(-1)
    frames = clip.permute(1, 2, 3, 0).numpy()                                   # (T, S, S, 3)
    frames = resize_frames(frames, DISPLAY_SIZE) if frames.shape[1] < DISPLAY_SIZE else frames
    shown = {name: maps[name][0] for name in maps if name != "random"}
    holes = {name: mask[0] for name, mask in dropped.items()}
    top = probs.topk(min(5, probs.numel()))
    label = f"{class_names[int(top.indices[0])]} ({float(top.values[0]):.2f})"

    panels = {"input": frames}
    for name, heat in shown.items():
        image = overlay(frames, heat)
        panels[name.replace("interpreter_", "")] = (mark_dropped(image, holes[name]) if name in holes
                                                    else image)
    paths = {"animation": write_animation(panel_strip(panels), out_dir / f"heatmaps.{fmt}"),
             "grid": save_grid(out_dir / "heatmaps.png", frames, shown, dropped=holes,
                               title=f"{Path(video).name}: {label}; hatched = dropped by that group")}
    summary = {"video": str(video), "top5": [[class_names[int(i)], float(p)] for p, i in zip(*top)],
               "kept_per_group": [float((~mask).float().mean()) for name, mask in holes.items()
                                  if name != "interpreter"]}
    paths["summary"] = out_dir / "heatmaps.json"
    paths["summary"].write_text(json.dumps(summary, indent=2))
    return paths


def mask_batches(loaded: LoadedModel, *, batch_size: int = 8, max_items: int | None = None,
                 imagenet_seg: str | None = None) -> DataLoader:
    """Batches with masks: the config's val list (centre view, mask sidecars cropped like the clips), an
    image folder's val images and masks (``data.format=images``), or the ImageNet-Segmentation file
    ``imagenet_seg`` (``gtsegs_ijcv.mat``) at the model's crop size."""
    cfg = loaded.cfg
    if imagenet_seg:
        dataset = ImageNetSegmentation(imagenet_seg, size=loaded.spec.crop_size)
    else:
        dataset = build_dataset(cfg, "val", loaded.spec, with_masks=True)   # the engine's default: no masks
        # an image folder's masks are checked by its dataset (data.format=images: root/masks/val)
        if cfg.data.format != "images" and not os.path.exists(mask_sidecar_path(dataset.items[0][0])):
            raise FileNotFoundError(f"no mask sidecar beside {dataset.items[0][0]} (expected "
                                    f"{mask_sidecar_path(dataset.items[0][0])})")
    if max_items is not None:
        dataset = Subset(dataset, range(min(max_items, len(dataset))))
    return DataLoader(dataset, batch_size=batch_size, num_workers=cfg.data.num_workers)


def evaluate_masks(loaded: LoadedModel, batches: Iterable[dict[str, Tensor]], *, block: int = -1,
                   seed: int = 0) -> dict[str, dict[str, float]]:
    """Chefer et al.'s scores of every method over batches ``{"clip": (B, 3, T, S, S) uint8, "masks":
    (B, T, S, S)}`` (images: (B, 3, S, S) and (B, S, S)); each frame is one unit ->
    ``{method: {pixel_acc, mean_acc, miou, map, frames, ap_frames}}``."""
    meters: dict[str, SegmentationMeter] = {}
    for index, batch in enumerate(batches):
        if "masks" not in batch:
            raise FileNotFoundError("the dataset has no masks: every video needs an x.masks.npz sidecar")
        if "label" in batch and (batch["label"] < 0).any():  # unreadable videos (label -1) are left out
            batch = {key: batch[key][batch["label"] >= 0] for key in ("clip", "masks")}
            if not len(batch["clip"]):
                continue
        _, maps, _ = method_maps(loaded, batch["clip"], block=block, seed=seed + index)
        masks = batch["masks"]
        masks = (masks if masks.dim() == 4 else masks[:, None]).flatten(0, 1)   # (B*T, S, S)
        for name, heat in maps.items():
            meters.setdefault(name, SegmentationMeter()).update(heat.flatten(0, 1), masks)
    if not meters:
        raise ValueError("no clips to evaluate")
    return {name: meter.compute() for name, meter in meters.items()}


def format_table(results: dict[str, dict[str, float]]) -> str:
    """A Markdown table of the scores in percent, one row per method."""
    lines = ["| method | pixel acc. | mean acc. | mIoU | mAP |", "|---|---:|---:|---:|---:|"]
    keys = ("pixel_acc", "mean_acc", "miou", "map")
    lines += [f"| {name} | " + " | ".join(f"{100 * r[key]:.1f}" for key in keys) + " |"
              for name, r in results.items()]
    frames = next(iter(results.values()))
    lines.append(f"\n{frames['frames']} frames; mAP over the {frames['ap_frames']} frames whose mask is not "
                 "empty (protocol of Chefer et al. 2021: bilinear upsampling, min-max, threshold at the "
                 "mean).")
    return "\n".join(lines)


def write_results(results: dict[str, dict[str, float]], out_dir: str | Path) -> tuple[Path, Path]:
    """``interpretability.json`` ({method: {pixel_acc, mean_acc, miou, map, ...}}) and
    ``interpretability.md``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, table_path = out_dir / "interpretability.json", out_dir / "interpretability.md"
    json_path.write_text(json.dumps(results, indent=2))
    table_path.write_text(format_table(results) + "\n")
    return json_path, table_path
