"""Decoding, transforms and the VideoDataset on tiny generated videos."""
import os

import numpy as np
import pytest
import torch

from tests.data_fixtures import ramp_video
from video_iared.data import VideoDataset, VideoDecodeError, normalize_on_device, read_clip
from video_iared.data.transforms import crop_clip, crop_masks, multi_view_crop_boxes, train_crop_box


def frame_numbers(clip: torch.Tensor) -> list[int]:
    """Frame index encoded in channel 0 by ramp_frames (value 4 * index)."""
    return [round(v / 4) for v in clip[0].float().mean(dim=(1, 2)).tolist()]


def test_read_clip_decodes_exactly_the_asked_frames(tmp_path):
    path = ramp_video(str(tmp_path / "r.mp4"), num_frames=60, gop=250)
    clip = read_clip(path, lambda n, fps: np.array([3, 17, 17, 59]))
    assert clip.num_video_frames == 60 and clip.fps == pytest.approx(30.0)
    assert clip.frames.shape == (4, 48, 64, 3)
    assert [round(f[..., 0].mean() / 4) for f in clip.frames] == [3, 17, 17, 59]


def test_odd_size_and_other_fps(tmp_path):
    ramp_video(str(tmp_path / "odd.mp4"), num_frames=40, height=37, width=51, fps=15)
    ds_dir = tmp_path
    (ds_dir / "l.csv").write_text("odd.mp4 0\n")
    ds = VideoDataset(str(ds_dir / "l.csv"), split="val", num_frames=4, sampling_rate=2, crop_size=16,
                      test_scale=16)
    item = ds[0]
    assert item["clip"].shape == (3, 4, 16, 16) and item["clip"].dtype == torch.uint8
    # 15 fps: the 8-frame window at 30 fps covers 4 video frames, centred in the 40-frame video
    assert frame_numbers(item["clip"]) == [18, 19, 20, 21]


def multi_view_crop_boxes_official_geometry():
    # train: short side 320 (frame 320x427) jittered to 256..320, crop 224 -> box of 224..280 source px
    rng = np.random.default_rng(0)
    sides = {train_crop_box(320, 427, crop_size=224, jitter_scales=(256, 320), rng=rng)[2]
             for _ in range(200)}
    assert min(sides) >= 224 and max(sides) <= 280 and len(sides) > 20
    # multi-view: short side to the crop, left / centre / right squares of the short side
    assert multi_view_crop_boxes(320, 427, crop_size=224, num_crops=3, short_side=224) == [
        (0, 0, 320, 320), (0, 54, 320, 320), (0, 107, 320, 320)]
    # portrait: top / centre / bottom
    assert [b[:2] for b in multi_view_crop_boxes(400, 300, crop_size=224, num_crops=3, short_side=224)] == [
        (0, 0), (50, 0), (100, 0)]
    # single view: short side 256, centre 224 crop
    assert multi_view_crop_boxes(256, 340, crop_size=224, num_crops=1, short_side=256) == [(16, 58, 224, 224)]


def test_masks_follow_crop_and_flip():
    frames = np.zeros((2, 40, 60, 3), np.uint8)
    masks = np.zeros((2, 40, 60), np.uint8)
    frames[:, 9:19, 32:42] = 255  # box (5, 20) and scale 1/2 keep the edges on output pixels
    masks[:, 9:19, 32:42] = 1
    box = (5, 20, 30, 30)
    for flip in (False, True):
        clip = crop_clip(frames, box, size=15, flip=flip)
        m = crop_masks(masks, box, size=15, flip=flip)
        bright = clip[0, 0] > 127
        assert m.shape == (2, 15, 15) and int(m.sum()) > 0
        assert torch.equal(bright, m[0].bool())
        cols = torch.nonzero(m[0].any(0)).flatten().tolist()
        assert cols == ([4, 5, 6, 7, 8] if flip else [6, 7, 8, 9, 10])


def test_normalize_on_device():
    x = torch.full((2, 3, 4, 5, 5), 255, dtype=torch.uint8)
    y = normalize_on_device(x, (0.45,) * 3, (0.225,) * 3)
    assert y.dtype == torch.float32 and torch.allclose(y, torch.full_like(y, (1 - 0.45) / 0.225))
    img = torch.zeros(3, 3, 8, 8, dtype=torch.uint8)  # (B=3, C, H, W): channel dim -3
    y = normalize_on_device(img, (0.5, 0.25, 0.0), (0.5, 0.5, 1.0), channel_dim=-3)
    assert y[:, 0].unique().tolist() == [-1.0] and y[:, 1].unique().tolist() == [-0.5]
    with pytest.raises(ValueError):
        normalize_on_device(torch.zeros(2, 4, 8, 8), (0.5,) * 3, (0.5,) * 3)


def test_train_items_reproducible_and_epoch_dependent(tiny_video_dir):
    kw = dict(split="train", num_frames=4, sampling_rate=4, crop_size=24, train_jitter_scales=(26, 40),
              seed=3)
    a = VideoDataset(os.path.join(tiny_video_dir, "train.csv"), **kw)
    b = VideoDataset(os.path.join(tiny_video_dir, "train.csv"), **kw)
    assert a.with_masks and a.flip  # sidecars found; flip allowed (not flip-sensitive)
    assert torch.equal(a[1]["clip"], b[1]["clip"])
    clips = []
    for epoch in range(6):
        a.set_epoch(epoch)
        clips.append(a[1]["clip"])
    assert len({c.numpy().tobytes() for c in clips}) == 6
    item = a[2]
    assert item["label"] == 0 and item["video"] == 2 and item["view"] == 0
    assert item["masks"].shape == (4, 24, 24)
    # the foreground is the left quarter of the source frame, where the green gradient is darkest:
    # after crop (and maybe flip) the mask still covers exactly the darkest green pixels
    for epoch in range(4):
        a.set_epoch(epoch)
        item = a[0]
        green, fg = item["clip"][1, 0].float(), item["masks"][0].bool()
        if fg.any() and not fg.all():
            assert green[fg].max() <= green[~fg].min() + 12


def test_flip_off_when_flip_sensitive(tiny_video_dir, tmp_path):
    lst = tmp_path / "train.csv"
    lst.write_text("".join(f"{tiny_video_dir}/videos/v{i}.mp4 0\n" for i in range(4)))
    (tmp_path / "classes.json").write_text('{"classes": ["x"], "flip_sensitive": true}')
    ds = VideoDataset(str(lst), split="train", num_frames=2, sampling_rate=2, crop_size=16,
                      train_jitter_scales=(48, 48), seed=0)
    assert ds.info.flip_sensitive and not ds.flip
    for epoch in range(8):  # the green gradient always rises left to right
        ds.set_epoch(epoch)
        green = ds[epoch % 4]["clip"][1, 0].float()
        assert green[:, -1].mean() > green[:, 0].mean()


def test_multi_view_test_items(tiny_video_dir):
    ds = VideoDataset(os.path.join(tiny_video_dir, "train.csv"), split="test", num_frames=4, sampling_rate=2,
                      crop_size=16, num_ensemble_views=2, num_spatial_crops=3)
    assert len(ds) == 4 * 6 and ds.num_views == 6
    item = ds[7]
    assert (item["label"], item["video"], item["view"]) == (1, 1, 1) and item["clip"].shape == (3, 4, 16, 16)
    assert set(item) == set(ds[0]) == {"clip", "label", "video", "view"}  # one item type for every split
    # temporal views are centred: 60 frames, window 8 -> slack 52, views start at 13 and 39
    assert frame_numbers(ds[0]["clip"]) == [13, 15, 17, 20]
    assert frame_numbers(ds[3]["clip"]) == [39, 41, 43, 46]
    # spatial crops: left, centre, right (the green gradient rises across them)
    greens = [ds[i]["clip"][1].float().mean().item() for i in range(3)]
    assert greens[0] < greens[1] < greens[2]


def test_read_list_errors(tmp_path):
    from video_iared.data import read_list

    (tmp_path / "ok.csv").write_text("path,label\na b.mp4,3\n\n/abs/c.mp4 1\n")
    items = read_list(str(tmp_path / "ok.csv"))
    assert items == [(str(tmp_path / "a b.mp4"), 3), ("/abs/c.mp4", 1)]
    assert read_list(str(tmp_path / "ok.csv"), path_prefix="/data")[0] == ("/data/a b.mp4", 3)
    (tmp_path / "bad.csv").write_text("a.mp4 1\nb.mp4 one\n")
    with pytest.raises(ValueError, match=r"bad.csv:2: .*'b.mp4 one'"):
        read_list(str(tmp_path / "bad.csv"))
    (tmp_path / "neg.csv").write_text("a.mp4 -1\n")
    with pytest.raises(ValueError, match="neg.csv:1"):
        read_list(str(tmp_path / "neg.csv"))


def test_decode_error_kinds(tmp_path):
    with pytest.raises(VideoDecodeError) as e:
        read_clip(str(tmp_path / "nope.mp4"), lambda n, fps: np.arange(2))
    assert e.value.kind == "missing file"
