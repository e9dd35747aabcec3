"""JPEG frame folders: extraction (resumable, sidecars), index-exact clips against the video, bad and
missing frames counted and skipped like bad videos."""
import json
import os
import shutil

import numpy as np
import pytest
import torch

from data_prep import extract_frames as extract_script
from tests.data_fixtures import ramp_video
from video_iared.data import VideoDataset, read_clip, read_frames_clip
from video_iared.data.files import mask_sidecar_path
from video_iared.data.frames import frames_folder, snap_to_stored
from video_iared.data.prep import extract_frames

KW = dict(num_frames=4, sampling_rate=4, crop_size=24, train_jitter_scales=(26, 40), test_scale=24)


def psnr(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    mse = ((torch.as_tensor(a).double() - torch.as_tensor(b).double()) ** 2).mean().item()
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


@pytest.fixture(scope="module")
def frames_root(tmp_path_factory, tiny_video_dir):
    """The tiny videos' frames at step 1 (``step1/``) and step 2 (``step2/``)."""
    root = tmp_path_factory.mktemp("frames")
    for step in (1, 2):
        assert extract_script.main([os.path.join(tiny_video_dir, "videos"),
                                    str(root / f"step{step}" / "videos"),
                                    f"--step={step}", "--workers=1"]) == 0
    return root


def test_snap_to_stored():
    assert snap_to_stored(np.array([0, 1, 2, 3, 58, 59]), 2, 30).tolist() == [0, 1, 1, 2, 29, 29]
    assert snap_to_stored(np.array([0, 5, 9]), 1, 8).tolist() == [0, 5, 7]  # clamped to the last stored


def test_extraction_layout_meta_and_resume(frames_root, tiny_video_dir, capsys):
    folder = frames_root / "step2" / "videos" / "v0"
    meta = json.loads((folder / "meta.json").read_text())
    assert (meta["num_frames"], meta["step"], meta["num_stored"]) == (60, 2, 30) and meta["fps"] == 30
    assert sorted(os.listdir(folder))[:2] == ["000000.jpg", "000001.jpg"] and len(os.listdir(folder)) == 31
    assert os.path.exists(frames_root / "step2" / "videos" / "v0.masks.npz")  # sidecar copied along
    (folder / "000003.jpg").unlink()  # a finished folder is never touched again
    capsys.readouterr()
    extract_script.main([os.path.join(tiny_video_dir, "videos"), str(frames_root / "step2" / "videos"),
                         "--step=2", "--workers=1"])
    assert "0 written, 4 already done, 0 unreadable" in capsys.readouterr().err
    assert not (folder / "000003.jpg").exists()
    shutil.copytree(frames_root / "step2" / "videos" / "v1", frames_root / "step2" / "videos" / "v0",
                    dirs_exist_ok=True)  # restore a complete folder for the other tests


@pytest.mark.parametrize("step", [1, 2])
def test_clip_from_frames_matches_the_video_at_the_same_indices(frames_root, tiny_video_dir, step):
    video = os.path.join(tiny_video_dir, "videos", "v2.mp4")
    wanted = lambda n, fps: np.array([0, 7, 13, 30, 59])  # noqa: E731
    from_frames = read_frames_clip(str(frames_root / f"step{step}" / "videos" / "v2.mp4"), wanted)
    expected = [0, 7, 13, 30, 59] if step == 1 else [0, 8, 14, 30, 58]
    assert from_frames.indices.tolist() == expected and from_frames.num_video_frames == 60
    from_video = read_clip(video, lambda n, fps: from_frames.indices)
    assert from_frames.frames.shape == from_video.frames.shape == (5, 48, 64, 3)
    assert psnr(from_frames.frames, from_video.frames) >= 40


@pytest.mark.parametrize("split,how", [("train", "frames_root"), ("val", "frames_root"),
                                       ("test", "frames_root"), ("train", "path_prefix")])
def test_dataset_items_from_frames_match_video_items(frames_root, tiny_video_dir, split, how):
    """The same list, seed and epoch: the same frames, boxes and flips (step 1, so the same indices).
    The list is the videos' own (``frames_root`` maps it), or names the frames tree (``path_prefix``)."""
    lst = os.path.join(tiny_video_dir, "train.csv")
    video = VideoDataset(lst, split=split, seed=5, **KW)
    where = {"frames_root": str(frames_root / "step1" / "videos")} if how == "frames_root" else \
        {"path_prefix": str(frames_root / "step1")}
    frames = VideoDataset(lst, split=split, seed=5, format="frames", **where, **KW)
    assert frames.items[0][0] == str(frames_root / "step1" / "videos" / "v0.mp4")
    assert frames.with_masks == video.with_masks  # the sidecars were found beside the folders
    for epoch in range(2):
        video.set_epoch(epoch)
        frames.set_epoch(epoch)
        for index in range(len(video)):
            a, b = video[index], frames[index]
            assert (a["label"], a["video"], a["view"]) == (b["label"], b["video"], b["view"])
            assert psnr(a["clip"], b["clip"]) >= 40
            if "masks" in a:
                assert torch.equal(a["masks"], b["masks"])


@pytest.fixture
def bad_frames(frames_root, tmp_path):
    """A list of 4 folders: good, frames deleted, frames overwritten with text, meta.json missing;
    and a video whose folder was never extracted."""
    root = tmp_path / "frames"
    shutil.copytree(frames_root / "step1" / "videos", root)
    for name in sorted(os.listdir(root / "v1"))[1:-1]:  # every frame past the first
        (root / "v1" / name).unlink()
    for name in sorted(os.listdir(root / "v2"))[:-1]:
        (root / "v2" / name).write_text("not a jpeg\n")
    (root / "v3" / "meta.json").unlink()
    names = ["v0", "v1", "v2", "v3", "never"]
    (tmp_path / "list.csv").write_text("".join(f"{name}.mp4 0\n" for name in names))
    return str(tmp_path / "list.csv"), str(root)


def test_bad_and_missing_frames_are_counted_and_skipped_in_evaluation(bad_frames):
    lst, root = bad_frames
    ds = VideoDataset(lst, split="val", format="frames", path_prefix=root, with_masks=False, **KW)
    labels = [ds[i]["label"] for i in range(len(ds))]
    assert labels == [0, -1, -1, -1, -1]
    reasons = {os.path.basename(f.path): f.reason for f in ds.failures}
    assert reasons == {"v1.mp4": "decoding failed", "v2.mp4": "decoding failed", "v3.mp4": "cannot open",
                       "never.mp4": "missing file"}  # the decoder's message (which frame) is in the log


def test_bad_frames_are_replaced_and_counted_in_training(bad_frames):
    lst, root = bad_frames
    ds = VideoDataset(lst, split="train", format="frames", path_prefix=root, with_masks=False, max_retries=30,
                      **KW)
    loader = torch.utils.data.DataLoader(ds, batch_size=5, num_workers=2, collate_fn=lambda items: items)
    items = [item for batch in loader for item in batch]
    assert {item["video"] for item in items} == {0}  # the only readable folder stands in for the others
    assert ds.failure_log.events >= 4 and len(ds.failures) == 4


def test_extract_frames_refuses_unreadable_sources_and_leaves_nothing(tmp_path):
    (tmp_path / "bad.mp4").write_text("not a video\n")
    from video_iared.data.video import VideoDecodeError

    with pytest.raises(VideoDecodeError, match="cannot open"):
        extract_frames(str(tmp_path / "bad.mp4"), str(tmp_path / "out" / "bad.mp4"))
    assert not os.path.exists(tmp_path / "out" / "bad")


def test_frames_folder_and_sidecar_names(tmp_path):
    path = str(tmp_path / "a" / "x.mp4")
    assert frames_folder(path) == str(tmp_path / "a" / "x")
    assert mask_sidecar_path(path) == frames_folder(path) + ".masks.npz"
    os.makedirs(tmp_path / "a")
    ramp_video(path, num_frames=5)
    assert extract_frames(path, str(tmp_path / "f" / "x.mp4"), step=3) == 2


def test_extract_shards_cover_every_video_once(tiny_video_dir, tmp_path):
    """The SLURM array's elements (shard i of 3) and a rerun: every video extracted exactly once."""
    src = os.path.join(tiny_video_dir, "videos")
    summaries = [extract_script.extract_shard(i, 3, src_root=src, dst_root=str(tmp_path), step=8, workers=1)
                 for i in range(3)]
    assert [s.written for s in summaries] == [2, 1, 1] and sorted(os.listdir(tmp_path)) == [
        "v0", "v0.masks.npz", "v1", "v1.masks.npz", "v2", "v2.masks.npz", "v3", "v3.masks.npz"]
    again = extract_script.extract_shard(0, 1, src_root=src, dst_root=str(tmp_path), step=8, workers=1)
    assert (again.written, again.skipped, again.failed) == (0, 4, [])


def test_frames_root_maps_only_videos_of_its_source(frames_root, tiny_video_dir, tmp_path):
    from video_iared.data.frames import frames_paths

    root = str(frames_root / "step2" / "videos")
    video = os.path.join(tiny_video_dir, "videos", "sub", "..", "v1.mp4")
    assert frames_paths([video], root) == [os.path.join(root, "v1.mp4")]
    with pytest.raises(ValueError, match="elsewhere.mp4 is not under"):
        frames_paths([str(tmp_path / "elsewhere.mp4")], root)
    with pytest.raises(ValueError, match="frames_source.json: cannot read it"):
        frames_paths([video], str(tmp_path))
    with pytest.raises(SystemExit, match="holds frames of"):  # one frames tree per video tree
        extract_script.main([str(tmp_path), root])
