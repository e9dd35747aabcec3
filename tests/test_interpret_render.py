"""Renders exist, open, and show what they claim."""
import av
import numpy as np
import pytest
import torch
from PIL import Image

from video_iared.interpret.render import (mark_dropped, overlay, panel_strip, resize_frames, save_grid,
                                          write_animation)


@pytest.fixture
def frames() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)


def test_overlay_is_hot_where_the_map_is_high(frames):
    maps = torch.zeros(3, 2, 2)
    maps[:, 0, 0] = 1.0
    blended = overlay(np.zeros_like(frames), maps, alpha=1.0)
    assert blended.shape == frames.shape and blended.dtype == np.uint8
    assert blended[0, 0, 0, 0] > 100 and blended[0, 0, 0, 2] < 50          # red top left (jet high)
    assert blended[0, -1, -1, 2] > 100 and blended[0, -1, -1, 0] < 50      # blue bottom right (jet low)


def test_mark_dropped_hatches_exactly_the_dropped_patches(frames):
    dropped = torch.zeros(3, 2, 2, dtype=torch.bool)
    dropped[1, 1, 0] = True
    out = mark_dropped(frames, dropped)
    rows, cols = np.indices((16, 16))
    line = (rows + 16 + cols) % 4 == 0                                       # one pixel in 4 is grey
    assert (out[1, 16:, :16][line] == 128).all()
    assert np.array_equal(out[1, 16:, :16][~line], frames[1, 16:, :16][~line])
    untouched = np.ones(frames.shape[:3], dtype=bool)
    untouched[1, 16:, :16] = False
    assert np.array_equal(out[untouched], frames[untouched])


def test_panel_strip_and_resize(frames):
    big = resize_frames(frames, 48)
    assert big.shape == (3, 48, 48, 3)
    strip = panel_strip({"input": big, "map": big})
    assert strip.shape == (3, 14 + 48, 96, 3)


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_animation_opens_with_every_frame(tmp_path, frames, suffix):
    odd = frames[:, :31, :29]                                                # H.264 needs even sizes
    path = write_animation(odd, tmp_path / f"clip{suffix}")
    if suffix == ".mp4":
        with av.open(str(path)) as container:
            decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        assert len(decoded) == 3 and decoded[0].shape == (32, 30, 3)
    else:
        with Image.open(path) as image:
            assert image.n_frames == 3 and image.size == (29, 31)


def test_animation_rejects_other_formats(tmp_path, frames):
    with pytest.raises(ValueError, match=".mp4 or .gif"):
        write_animation(frames, tmp_path / "clip.avi")


def test_grid_png_opens(tmp_path, frames):
    rows = {"interpreter": torch.rand(3, 4, 4), "rollout": torch.rand(3, 4, 4)}
    dropped = {"interpreter": torch.rand(3, 4, 4) > 0.5}
    path = save_grid(tmp_path / "grid.png", frames, rows, dropped=dropped, title="label: x (0.9)")
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] > 200
