"""A tiny 3-class dataset and checkpoints of this project's format for the error and mismatch tests."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from tiny_videos import TINY, write_square_video

from video_iared.config import load_config
from video_iared.models.build import build_model

CLASSES = ["left", "right", "still"]


def write_three_class_set(root: Path, *, classes: list[str] = CLASSES, num_videos: int = 3) -> Path:
    """``root/{train,val,test}.csv`` over ``num_videos`` square videos (labels 0, 1, 2, ...) and a
    ``classes.json`` naming ``classes``."""
    lines = [f"videos/{i}.mp4 {i % 3}\n" for i in range(num_videos)]
    for i in range(num_videos):
        write_square_video(root / "videos" / f"{i}.mp4", seed=i)
    for split in ("train", "val", "test"):
        (root / f"{split}.csv").write_text("".join(lines))
    (root / "classes.json").write_text(json.dumps({"classes": classes}))
    return root


def save_checkpoint(path: Path, overrides: list[str] = (), *, classes: list[str] | None = CLASSES) -> Path:
    """A random-init tiny model saved as training saves it: weights, config and class names."""
    torch.manual_seed(0)
    cfg = load_config(None, [*TINY, "data.num_workers=0", "data.batch_size=3", *overrides])
    state = {"model": build_model(cfg.model, load=False).state_dict(), "config": cfg.to_dict()}
    if classes is not None:
        state["classes"] = list(classes)
    torch.save(state, path)
    return path
