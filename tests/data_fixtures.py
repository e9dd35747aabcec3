"""Tiny generated videos for the data tests (register in conftest.py:
``from tests.data_fixtures import *``)."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from video_iared.data.files import save_masks
from video_iared.data.video import write_video

__all__ = ["ramp_frames", "ramp_video", "tiny_video_dir"]


def ramp_frames(num_frames: int, height: int, width: int) -> np.ndarray:
    """Frame f has value 4 * f in every pixel of channel 0 (index readable after lossy coding), and a
    horizontal gradient in channel 1 (position readable after crops and flips)."""
    frames = np.zeros((num_frames, height, width, 3), np.uint8)
    frames[..., 0] = (4 * np.arange(num_frames) % 256)[:, None, None]
    frames[..., 1] = np.linspace(0, 255, width)[None, None, :].astype(np.uint8)
    return frames


def ramp_video(path: str, *, num_frames: int = 60, height: int = 48, width: int = 64, fps: float = 30.0,
               gop: int | None = 12, with_masks: bool = False) -> str:
    write_video(path, ramp_frames(num_frames, height, width), fps=fps, gop=gop, crf=10)
    if with_masks:  # the left quarter of every frame is foreground
        masks = np.zeros((num_frames, height, width), np.uint8)
        masks[:, :, : width // 4] = 1
        save_masks(os.path.splitext(path)[0] + ".masks.npz", masks)
    return path


@pytest.fixture(scope="session")
def tiny_video_dir(tmp_path_factory) -> str:
    """4 good videos (2 classes, with masks) + list ``train.csv`` and ``classes.json``."""
    root = str(tmp_path_factory.mktemp("tiny_videos"))
    os.makedirs(os.path.join(root, "videos"))
    lines = []
    for i in range(4):
        ramp_video(os.path.join(root, "videos", f"v{i}.mp4"), with_masks=True)
        lines.append(f"videos/v{i}.mp4 {i % 2}\n")
    with open(os.path.join(root, "train.csv"), "w") as f:
        f.writelines(lines)
    with open(os.path.join(root, "classes.json"), "w") as f:
        json.dump({"classes": ["a", "b"], "flip_sensitive": False}, f)
    return root
