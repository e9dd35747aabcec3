import numpy as np
import pytest

from video_iared.data.sampling import clip_indices, temporal_view_positions


def test_official_8x32_window_at_30fps():
    idx = clip_indices(300, num_frames=8, sampling_rate=32, position=0.0)
    # 8 points from frame 0 to frame 255 (the window of 256 frames), truncated like the official code
    assert idx.tolist() == [0, 36, 72, 109, 145, 182, 218, 255]


def test_window_scales_with_fps():
    # at 60 fps the same 8.5 s window spans 512 video frames
    idx = clip_indices(1000, num_frames=8, sampling_rate=32, position=0.0, video_fps=60.0)
    assert idx[0] == 0 and idx[-1] == 511
    idx = clip_indices(1000, num_frames=8, sampling_rate=32, position=0.0, video_fps=15.0)
    assert idx[-1] == 127


def test_position_places_window_in_slack():
    end = clip_indices(300, num_frames=8, sampling_rate=32, position=1.0)
    assert end[-1] == 299 and end[0] == 44
    centre = clip_indices(300, num_frames=8, sampling_rate=32, position=0.5)
    assert centre[0] == 22 and centre[-1] == 277  # 22 frames of margin on each side


def test_short_video_clamps_to_last_frame():
    idx = clip_indices(100, num_frames=8, sampling_rate=32, position=0.7)
    assert idx[0] == 0 and idx.max() == 99
    assert (idx[3:] == 99).all()  # frames past the end repeat the last one
    assert (np.diff(idx) >= 0).all()
    assert clip_indices(1, num_frames=4, sampling_rate=2, position=0.5).tolist() == [0, 0, 0, 0]


def test_invalid_arguments():
    with pytest.raises(ValueError):
        clip_indices(0, num_frames=8, sampling_rate=32, position=0.5)
    with pytest.raises(ValueError):
        clip_indices(10, num_frames=8, sampling_rate=32, position=1.5)
    with pytest.raises(ValueError):
        temporal_view_positions(0)


def test_multi_view_centring():
    assert temporal_view_positions(1) == [0.5]
    assert temporal_view_positions(2) == [0.25, 0.75]
    starts = [clip_indices(356, num_frames=8, sampling_rate=32, position=p)[0]
              for p in temporal_view_positions(2)]
    # slack of 100 frames: views start at 25 and 75, symmetric about the video's centre
    assert starts == [25, 75]
