"""Tiny generated videos with mask sidecars and tiny checkpoints for the interpret / predict tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from video_iared.config import load_config
from video_iared.data.files import save_masks
from video_iared.data.kinetics import mask_sidecar_path
from video_iared.data.video import write_video
from video_iared.models import IARed
from video_iared.models.build import build_model

TINY = ["model.name=timesformer_tiny_patch8_32", "model.num_classes=3", "model.drop_path_rate=0.0"]


def write_square_video(path: Path, *, frames: int = 24, height: int = 40, width: int = 64,
                       seed: int = 0) -> Path:
    """A bright square moving right on noise, and its mask sidecar (the square).

    decord 0.6 fails on frames whose width is not a multiple of 32 (48 px: "size must exactly match").
    """
    rng = np.random.default_rng(seed)
    video = rng.integers(0, 60, (frames, height, width, 3), dtype=np.uint8)
    masks = np.zeros((frames, height, width), dtype=np.uint8)
    for t in range(frames):
        left = 4 + t * (width - 20) // frames
        video[t, 12:28, left:left + 14] = 230
        masks[t, 12:28, left:left + 14] = 1
    path.parent.mkdir(parents=True, exist_ok=True)
    write_video(str(path), video, fps=30.0, crf=10)
    save_masks(mask_sidecar_path(str(path)), masks)
    return path


def write_dataset(root: Path, num_videos: int = 3) -> Path:
    """``root/val.csv`` listing ``num_videos`` square videos with masks; returns ``root``."""
    lines = [f"videos/{i}.mp4 {i % 3}" for i in range(num_videos)]
    for i in range(num_videos):
        write_square_video(root / "videos" / f"{i}.mp4", seed=i)
    (root / "val.csv").write_text("\n".join(lines) + "\n")
    return root


def save_tiny_checkpoint(path: Path, overrides: list[str] = ()) -> Path:
    """A random-init tiny TimeSformer in this project's checkpoint format (weights + config)."""
    torch.manual_seed(0)
    cfg = load_config(None, [*TINY, *overrides])
    model = build_model(cfg.model)
    torch.save({"model": model.state_dict(), "config": cfg.to_dict()}, path)
    return path


def tiny_iared(group_starts: list[int] = (0, 2)) -> IARed:
    """A random-init tiny IA-RED² model whose interpreters drop some tokens at threshold 0.5."""
    torch.manual_seed(0)
    cfg = load_config(None, TINY)
    model = IARed(build_model(cfg.model), group_starts=list(group_starts), interpreter_heads=4)
    for interpreter in model.interpreters:
        torch.nn.init.normal_(interpreter.qk.weight, std=0.5)
    return model.eval()
