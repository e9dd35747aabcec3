"""Bad inputs: replaced and counted in train (across DataLoader workers); kept in place with label -1
and counted in val and test, never replaced."""
import os

import pytest
import torch

from tests.data_fixtures import ramp_video
from video_iared.data import VideoDataset


@pytest.fixture(scope="module")
def bad_list(tmp_path_factory, tiny_video_dir):
    root = tmp_path_factory.mktemp("bad")
    good = [os.path.join(tiny_video_dir, "videos", f"v{i}.mp4") for i in range(4)]
    indexed = ramp_video(str(root / "indexed.mp4"), num_frames=90, gop=250)  # moov first (faststart)
    data = open(indexed, "rb").read()
    (root / "half.mp4").write_bytes(data[: len(data) // 2])  # index present, data stops half way
    (root / "head.mp4").write_bytes(data[:200])  # truncated inside the index
    (root / "empty.mp4").write_bytes(b"")
    (root / "text.mp4").write_text("not a video\n" * 50)
    short = ramp_video(str(root / "short.mp4"), num_frames=3)  # shorter than the clip: fine, repeats
    bad = ["half.mp4", "head.mp4", "empty.mp4", "text.mp4", "missing.mp4"]
    lines = [f"{p} 0" for p in good] + [f"{b} 1" for b in bad] + [f"{short} 0"]
    (root / "list.csv").write_text("\n".join(lines) + "\n")
    return str(root / "list.csv"), bad


KW = dict(num_frames=4, sampling_rate=8, crop_size=16, train_jitter_scales=(20, 24), test_scale=16,
          with_masks=False)


def test_each_bad_input_is_named_with_its_reason(bad_list):
    path, bad = bad_list
    ds = VideoDataset(path, split="val", **KW)
    labels = []
    for i in range(len(ds)):
        item = ds[i]
        assert item["clip"].shape == (3, 4, 16, 16) and item["video"] == i  # never another video
        labels.append(item["label"])
    assert labels == [0] * 4 + [-1] * 5 + [0]  # val skips (label -1) and counts, never substitutes
    assert ds.failure_log.events == 5
    reasons = {os.path.basename(f.path): f.reason for f in ds.failures}
    assert set(reasons) == set(bad)
    assert reasons["empty.mp4"] == "empty file" and reasons["missing.mp4"] == "missing file"
    assert reasons["text.mp4"] == reasons["head.mp4"] == "cannot open"
    # decord reads the packet index at open, so data missing half way fails there or at decoding
    assert reasons["half.mp4"] in ("cannot open", "decoding failed")


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_counts_reach_the_main_process_from_workers(bad_list, context):
    path, bad = bad_list
    ds = VideoDataset(path, split="train", **KW)
    loader = torch.utils.data.DataLoader(ds, batch_size=5, num_workers=2, multiprocessing_context=context)
    for epoch in range(2):
        ds.set_epoch(epoch)
        labels = torch.cat([b["label"] for b in loader])
        assert len(labels) == len(ds)
    failures = {os.path.basename(f.path): f.count for f in ds.failures}
    assert set(failures) == set(bad)
    assert all(count >= 2 for count in failures.values())  # met once per epoch (plus as replacements)


def test_test_split_never_crashes_and_flags_failed_videos(bad_list):
    path, bad = bad_list
    ds = VideoDataset(path, split="test", num_ensemble_views=1, num_spatial_crops=3, **KW)
    loader = torch.utils.data.DataLoader(ds, batch_size=6, num_workers=2)
    labels, videos = [], []
    for batch in loader:
        labels.append(batch["label"])
        videos.append(batch["video"])
    labels, videos = torch.cat(labels), torch.cat(videos)
    failed = sorted(set(videos[labels < 0].tolist()))
    assert failed == [4, 5, 6, 7, 8] == ds.failure_log.failed_indices()
    assert (labels[videos == 9] == 0).all()  # the short video is fine


def test_too_many_failures_raise(tmp_path):
    (tmp_path / "l.csv").write_text("a.mp4 0\nb.mp4 0\n")
    ds = VideoDataset(str(tmp_path / "l.csv"), split="train", max_retries=3, **KW)
    with pytest.raises(RuntimeError, match="4 unreadable videos in a row"):
        ds[0]
