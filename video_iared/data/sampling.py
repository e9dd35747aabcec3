"""Frame-index sampling: which frames of a video make a clip.

Pure functions, so they can be tested alone and reused by every decoder. The official
TimeSformer/SlowFast recipe takes ``num_frames`` frames ``sampling_rate`` apart at 30 fps: a clip spans
``num_frames * sampling_rate`` frames at 30 fps (8 x 32 = 256 frames, 8.5 s), i.e. proportionally more
or fewer frames of a video recorded at another frame rate. Training takes that window at a random
position; testing takes K windows evenly spaced and *centred* in the video (the official code starts
the first of them at frame 0, which for K = 1 tests on the first seconds only).
"""
from __future__ import annotations

import numpy as np

__all__ = ["clip_indices", "temporal_view_positions"]


def clip_indices(
    num_video_frames: int,
    *,
    num_frames: int,
    sampling_rate: int,
    position: float,
    video_fps: float = 30.0,
    target_fps: float = 30.0,
) -> np.ndarray:
    """Indices of the ``num_frames`` frames of one clip, as int64 in ``[0, num_video_frames)``.

    ``position`` in [0, 1] places the clip window within the slack of the video (0 = start, 1 = end,
    0.5 = centred). A video shorter than the window gives a window starting at frame 0 whose indices
    past the end are clamped to the last frame (the official behaviour: the last frame repeats).
    """
    if num_video_frames < 1:
        raise ValueError(f"video has no frames ({num_video_frames})")
    if not 0.0 <= position <= 1.0:
        raise ValueError(f"position must be in [0, 1], got {position}")
    window = num_frames * sampling_rate * video_fps / target_fps  # in the video's own frames
    start = max(num_video_frames - window, 0.0) * position
    # num_frames points from the window's first to its last frame (inclusive), as in SlowFast's
    # temporal_sampling; truncation to int is the official rounding
    index = np.linspace(start, start + max(window - 1.0, 0.0), num_frames)
    return np.clip(index.astype(np.int64), 0, num_video_frames - 1)


def temporal_view_positions(num_views: int) -> list[float]:
    """Positions (for :func:`clip_indices`) of ``num_views`` evenly spaced, centred temporal views."""
    if num_views < 1:
        raise ValueError(f"num_views must be >= 1, got {num_views}")
    return [(k + 0.5) / num_views for k in range(num_views)]
