"""Repeated sampling (data.num_samples), device-side resize and the data-wait report: items, batches,
epoch and resume arithmetic, the verdict line."""
import os
import time

import pytest
import torch

from tests.train_helpers import run_python
from video_iared.config import ConfigError
from video_iared.data import VideoDataset, collate_items
from video_iared.data.transforms import crop_clip, cut_box, resize_crops
from video_iared.engine.data_wait import DataWait, input_bound_verdict
from video_iared.engine.run_log import read_metrics
from video_iared.engine.sampler import ResumableSampler, videos_per_batch

KW = dict(split="train", num_frames=4, sampling_rate=4, crop_size=24, train_jitter_scales=(26, 40), seed=3,
          with_masks=False)


def test_k_clips_of_one_window_become_k_rows(tiny_video_dir):
    ds = VideoDataset(os.path.join(tiny_video_dir, "train.csv"), num_samples=3, **KW)
    item = ds[1]
    assert len(item["clip"]) == 3 and item["label"] == 1 and item["video"] == 1
    assert len({clip.numpy().tobytes() for clip in item["clip"]}) == 3  # three augmentations...
    frame_values = torch.stack([clip[0].float().mean((1, 2)) for clip in item["clip"]])  # (K, T)
    assert (frame_values - frame_values[0]).abs().max() < 1.5  # ...of the same frames (channel 0 = 4 x index)
    one = VideoDataset(os.path.join(tiny_video_dir, "train.csv"), **KW)[1]["clip"]
    assert torch.equal(item["clip"][0], one)  # the first of K is the K = 1 clip
    batch = collate_items([ds[0], ds[1]])
    assert batch["clip"].shape == (6, 3, 4, 24, 24)
    assert batch["label"].tolist() == [0, 0, 0, 1, 1, 1] and batch["video"].tolist() == [0, 0, 0, 1, 1, 1]


def test_evaluation_items_ignore_training_options(tiny_video_dir):
    ds = VideoDataset(os.path.join(tiny_video_dir, "train.csv"), **{**KW, "split": "val"}, num_samples=4,
                      augment_on="device")
    assert ds[0]["clip"].shape == (3, 4, 24, 24)


def test_videos_per_batch():
    assert videos_per_batch(8, 1) == 8 and videos_per_batch(8, 2) == 4 and videos_per_batch(8, 8) == 1
    with pytest.raises(ConfigError, match="data.batch_size=6 must be a multiple of data.num_samples=4"):
        videos_per_batch(6, 4)


@pytest.mark.parametrize("num_samples,world", [(1, 1), (2, 1), (2, 2), (4, 2)])
def test_epoch_and_resume_count_videos_and_clips(num_samples, world):
    """10 videos, 4 clips a step: an epoch is one pass over the videos (num_samples x the clips and
    steps), and resuming at step s skips exactly the videos of the first s steps."""
    num_videos, clips_per_step = 10, 4
    per_batch = videos_per_batch(clips_per_step, num_samples)
    for rank in range(world):
        sampler = ResumableSampler(num_videos, num_replicas=world, rank=rank, seed=1)
        sampler.set_epoch(3)
        order = list(sampler)
        steps = len(sampler) // per_batch  # the trainer's steps_per_epoch (drop_last, accum 1)
        assert steps == (num_videos // world) // per_batch
        assert steps * clips_per_step == steps * per_batch * num_samples  # clips seen per epoch
        for resume_at in range(steps + 1):
            sampler.set_epoch(3)
            sampler.set_start(resume_at * per_batch)
            assert order[:resume_at * per_batch] + list(sampler) == order


def test_device_resize_matches_the_host_transform(tiny_video_dir):
    frames = torch.randint(0, 256, (4, 48, 64, 3), dtype=torch.uint8)
    for box, flip in [((3, 5, 40, 40), False), ((0, 20, 36, 36), True), ((8, 8, 24, 24), True)]:
        host = crop_clip(frames, box, size=24, flip=flip)
        device = resize_crops([cut_box(frames, box, flip=flip)], size=24)[0]
        assert host.shape == device.shape == (3, 4, 24, 24)
        assert (host.int() - device.int()).abs().max() <= 1  # the same resize; flipped before, not after
    ds = VideoDataset(os.path.join(tiny_video_dir, "train.csv"), augment_on="device", **KW)
    host = VideoDataset(os.path.join(tiny_video_dir, "train.csv"), **KW)
    batch = collate_items([ds[i] for i in range(4)])  # crops of several sizes stay a list
    clips = resize_crops(batch["clip"], size=24)
    expected = torch.stack([host[i]["clip"] for i in range(4)])
    assert clips.shape == (4, 3, 4, 24, 24) and (clips.int() - expected.int()).abs().max() <= 1


def test_data_wait_share_and_verdict():
    wait = DataWait()
    sleeps = iter([0.0, 0.02, 0.02, 0.02])

    def slow_loader():
        for _ in range(4):
            time.sleep(next(sleeps))
            yield 1

    for _ in wait.batches(slow_loader()):
        time.sleep(0.02)
    assert 0.3 < wait.run_share < 0.7  # 20 ms waiting per 40 ms step
    assert 0.3 < wait.window_share() < 0.7 and wait.window_share() == 0.0
    line = input_bound_verdict(0.45, num_workers=2, cores=16, format="video", augment_on="host",
                               num_samples=1)
    assert "INPUT-BOUND" in line and "data.num_workers (now 2" in line
    line = input_bound_verdict(0.45, num_workers=15, cores=16, format="video", augment_on="host",
                               num_samples=1)
    assert "data.format=frames" in line
    line = input_bound_verdict(0.45, num_workers=15, cores=16, format="frames", augment_on="host",
                               num_samples=1)
    assert "data.augment_on=device" in line
    assert "data.num_samples=2" in input_bound_verdict(0.3, num_workers=15, cores=16, format="frames",
                                                       augment_on="device", num_samples=1)
    assert "not input-bound" in input_bound_verdict(0.01, num_workers=0, cores=2, format="video",
                                                    augment_on="host", num_samples=1)


@pytest.mark.slow
def test_training_with_repeated_sampling_and_device_resize(small_synthetic, tmp_path):
    """24 videos and 2 missing ones, 4 clips a step from 2 videos: 13 optimiser steps an epoch; the
    missing videos are replaced in training and logged, skipped and counted in validation; data wait
    logged, the verdict printed at the end."""
    root = tmp_path / "data"
    root.mkdir()
    (root / "classes.json").write_text((small_synthetic / "classes.json").read_text())
    for split in ("train", "val"):
        lines = [f"{small_synthetic / line.rsplit(' ', 1)[0]} {line.rsplit(' ', 1)[1]}"
                 for line in (small_synthetic / f"{split}.csv").read_text().split("\n") if line.strip()]
        (root / f"{split}.csv").write_text("\n".join(lines + ["missing1.mp4 0", "missing2.mp4 1"]) + "\n")
    out = tmp_path / "run"
    proc = run_python(["-m", "video_iared.cli", "train", f"data.root={root}", "data.batch_size=4",
                       "data.num_samples=2", "data.augment_on=device", "data.num_workers=1",
                       "model.num_classes=3", "optim.epochs=1", "run.log_every=4", f"run.output_dir={out}"])
    rows = read_metrics(out, "train")
    assert [row["step"] for row in rows if "loss" in row] == [4, 8, 12, 13]
    assert all(0.0 <= row["data_wait"] <= 1.0 for row in rows if "loss" in row)
    assert [row["replaced_videos"] for row in rows if "replaced_videos" in row][0] >= 2
    assert read_metrics(out, "val")[-1]["skipped_videos"] == 2
    printed = proc.stdout + proc.stderr
    assert "data wait" in printed and "epoch 1: 2 unreadable training videos replaced" in printed


@pytest.mark.slow
def test_repeated_sampling_resumes_exactly(small_synthetic, tmp_path):
    """num_samples 2, 4 clips (2 videos) a step, 24 videos: 12 steps an epoch; killed after the step-16
    checkpoint (mid second epoch) and relaunched, the run ends in the uninterrupted run's state."""
    from tests.test_train_resume import assert_same_state, overrides

    def args(out):
        return [*overrides(small_synthetic, out, batch=4, epochs=2, drop_path=0.1), "data.num_samples=2",
                "data.augment_on=device", "model.num_classes=3"]

    full, killed = tmp_path / "full", tmp_path / "killed"
    run_python(["-m", "video_iared.cli", "train", *args(full)])
    assert run_python(["tests/kill_after_checkpoint.py", "16", *args(killed)], check=False).returncode != 0
    state = torch.load(killed / "checkpoint.pth", weights_only=False)
    assert (state["epoch"], state["step_in_epoch"], state["global_step"]) == (1, 4, 16)
    run_python(["-m", "video_iared.cli", "train", *args(killed)])
    assert_same_state(full, killed)
    assert read_metrics(full, "train")[-1]["step"] == 24
