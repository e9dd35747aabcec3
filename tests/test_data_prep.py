"""data_prep scripts on tiny generated videos: resize, build lists, check (and their pure helpers)."""
import json
import os

import numpy as np
import pytest

from data_prep import build_lists, check_videos, resize_videos
from tests.data_fixtures import ramp_video
from video_iared.data import read_clip
from video_iared.data.files import load_masks, mask_sidecar_path
from video_iared.data.lists import Annotation, class_ids, index_by_stem, match_annotations, read_annotations
from video_iared.data.prep import check_video, find_videos, resize_masks, scaled_size, try_resize_video


def test_resize_masks_nearest_pixel_centre():
    masks = np.zeros((2, 4, 6), np.uint8)
    masks[:, 1:3, 2:4] = 1
    up = resize_masks(masks, 8, 12)
    assert up.dtype == np.uint8 and up.shape == (2, 8, 12)
    foreground = np.argwhere(up[0])
    assert foreground.min(0).tolist() == [2, 4] and foreground.max(0).tolist() == [5, 7]
    assert np.array_equal(resize_masks(up, 4, 6), masks)


def test_scaled_size():
    assert scaled_size(240, 320, 320) == (320, 426)  # 426.67 -> nearest even
    assert scaled_size(1080, 1920, 320) == (320, 568)
    assert scaled_size(640, 360, 320) == (568, 320)  # portrait
    assert scaled_size(37, 51, 16) == (16, 22)
    with pytest.raises(ValueError):
        scaled_size(0, 10, 320)


@pytest.fixture
def raw_tree(tmp_path):
    raw = tmp_path / "raw"
    (raw / "abseiling").mkdir(parents=True)
    ramp_video(str(raw / "abseiling" / "a_000001_000011.mp4"), num_frames=20, height=48, width=64,
               with_masks=True)
    ramp_video(str(raw / "b.mp4"), num_frames=12, height=37, width=51, fps=15)
    (raw / "c.webm").write_text("not a video")
    (raw / ".b.mp4.123.tmp").write_text("left over by a killed writer")
    return raw


def test_resize_tree_resumable(raw_tree, tmp_path, capsys):
    out = tmp_path / "small"
    argv = [str(raw_tree), str(out), "--short-side", "32", "--gop", "4", "--workers", "1"]
    assert resize_videos.main(argv) == 0
    captured = capsys.readouterr()
    assert captured.out == f"{raw_tree / 'c.webm'}\tcannot open: " + captured.out.split("cannot open: ")[1]
    assert "2 written, 0 already done, 1 unreadable" in captured.err
    assert find_videos(str(out)) == ["abseiling/a_000001_000011.mp4", "b.mp4"]
    assert not [f for f in os.listdir(out) if f.endswith(".tmp")]
    a = read_clip(str(out / "abseiling" / "a_000001_000011.mp4"), lambda n, fps: np.arange(n))
    assert a.frames.shape == (20, 32, 42, 3) and a.fps == pytest.approx(30)
    values = [f[..., 0].mean() / 4 for f in a.frames]  # every frame, in order (lossy: within 1 step)
    assert np.abs(np.array(values) - np.arange(20)).max() < 1, values
    b = read_clip(str(out / "b.mp4"), lambda n, fps: np.arange(n))
    assert b.frames.shape == (12, 32, 44, 3) and b.fps == pytest.approx(15)
    masks = load_masks(mask_sidecar_path(str(out / "abseiling" / "a_000001_000011.mp4")))
    assert masks.shape == (20, 32, 42) and masks[:, :, :10].all() and not masks[:, :, 11:].any()
    # a second run skips the finished videos and leaves them untouched
    stamp = os.stat(out / "b.mp4").st_mtime_ns
    assert resize_videos.main(argv) == 0
    assert "0 written, 2 already done, 1 unreadable" in capsys.readouterr().err
    assert os.stat(out / "b.mp4").st_mtime_ns == stamp


def test_resize_shards_cover_every_video_once(raw_tree, tmp_path):
    out = str(tmp_path / "out")
    summaries = [resize_videos.resize_shard(i, 2, src_root=str(raw_tree), dst_root=out, short_side=16,
                                            workers=1) for i in range(2)]
    assert sum(s.written for s in summaries) == 2 and sum(len(s.failed) for s in summaries) == 1
    assert sum(s.skipped for s in summaries) == 0
    with pytest.raises(SystemExit, match="inside"):
        resize_videos.main([str(raw_tree), str(raw_tree / "out")])


ANNOTATIONS = """label,youtube_id,time_start,time_end,split
zumba,aaa,1,11,train
"passing American football (in game)",bbb,30,40,train
abseiling,gone,0,10,train
zumba,ccc,5,15,validate
"""


def test_read_and_match_annotations(tmp_path):
    (tmp_path / "train.csv").write_text(ANNOTATIONS)
    rows = read_annotations(str(tmp_path / "train.csv"))
    assert rows[1] == Annotation("passing American football (in game)", "bbb", 30, 40, "train")
    assert rows[3].split == "val"
    index, duplicates = index_by_stem(
        ["x/aaa_000001_000011.mp4", "bbb.webm", "y/aaa_000001_000011.mp4", "ccc.mkv"])
    assert duplicates == ["y/aaa_000001_000011.mp4"]
    found, missing = match_annotations(rows, index)
    assert found == {
        "train": [("x/aaa_000001_000011.mp4", "zumba"), ("bbb.webm", "passing American football (in game)")],
        "val": [("ccc.mkv", "zumba")]}
    assert [a.youtube_id for a in missing] == ["gone"]
    assert class_ids(["zumba", "abseiling", "zumba", "passing"]) == {"abseiling": 0, "passing": 1, "zumba": 2}
    # the 2017 test file has no labels
    (tmp_path / "test.csv").write_text("youtube_id,time_start,time_end,split\nddd,0,10,test\n")
    assert read_annotations(str(tmp_path / "test.csv"))[0].label is None
    (tmp_path / "bad.csv").write_text("label,youtube_id,time_start,time_end,split\nx,y,zero,10,train\n")
    with pytest.raises(ValueError, match="bad.csv:2"):
        read_annotations(str(tmp_path / "bad.csv"))
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a Kinetics annotation file"):
        read_annotations(str(tmp_path / "other.csv"))


def test_build_lists_from_annotations(tmp_path, capsys):
    videos = tmp_path / "data" / "videos"
    (videos / "zumba").mkdir(parents=True)
    for name in ("zumba/aaa_000001_000011.mp4", "bbb.mp4", "ccc_000005_000015.mp4"):
        (videos / name).write_bytes(b"x")
    (tmp_path / "train.csv").write_text(ANNOTATIONS)
    out = tmp_path / "data"
    argv = [str(videos), "--out", str(out), "--annotations", str(tmp_path / "train.csv")]
    assert build_lists.main(argv) == 0
    info = json.loads((out / "classes.json").read_text())
    assert info["classes"] == ["abseiling", "passing American football (in game)", "zumba"]
    assert (out / "train.csv").read_text() == "videos/zumba/aaa_000001_000011.mp4 2\nvideos/bbb.mp4 1\n"
    assert (out / "val.csv").read_text() == "videos/ccc_000005_000015.mp4 2\n"
    assert not (out / "test.csv").exists()
    assert (out / "missing_train.txt").read_text() == "gone,0,10,abseiling\n"
    assert "train: 2 videos, 1 missing" in capsys.readouterr().err


def test_build_lists_from_folder_tree(tmp_path, capsys):
    for path in ("train/walking/1.mp4", "train/archery/2.mp4", "val/walking/3.mp4", "val/cooking/4.avi"):
        (tmp_path / "v" / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "v" / path).write_bytes(b"x")
    assert build_lists.main([str(tmp_path / "v"), "--out", str(tmp_path / "lists")]) == 0
    lists = tmp_path / "lists"
    assert json.loads((lists / "classes.json").read_text())["classes"] == ["archery", "cooking", "walking"]
    assert (lists / "train.csv").read_text() == "../v/train/archery/2.mp4 0\n../v/train/walking/1.mp4 2\n"
    assert (lists / "val.csv").read_text() == "../v/val/cooking/4.avi 1\n../v/val/walking/3.mp4 2\n"
    (tmp_path / "v" / "stray.mp4").write_bytes(b"x")
    capsys.readouterr()
    assert build_lists.main([str(tmp_path / "v"), "--out", str(tmp_path / "lists")]) == 2  # one line, exit 2
    assert "stray.mp4: expected SPLIT/CLASS/VIDEO" in capsys.readouterr().err


@pytest.fixture
def checked_list(tmp_path):
    """A list of 2 good and 4 bad videos (truncated, text, empty, missing), relative paths."""
    good = [ramp_video(str(tmp_path / f"good{i}.mp4"), num_frames=30, gop=250) for i in range(2)]
    data = open(good[0], "rb").read()
    (tmp_path / "half.mp4").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.mp4").write_text("not a video\n" * 50)
    (tmp_path / "empty.mp4").write_bytes(b"")
    names = ["good0.mp4", "half.mp4", "text.mp4", "good1.mp4", "empty.mp4", "missing.mp4"]
    (tmp_path / "list.csv").write_text("".join(f"{name} {i % 3}\n" for i, name in enumerate(names)))
    return tmp_path / "list.csv"


def test_check_videos_reports_and_writes_clean_list(checked_list, capsys):
    clean = checked_list.parent / "clean.csv"
    assert check_videos.main([str(checked_list), "--write-clean", str(clean), "--workers", "2"]) == 0
    captured = capsys.readouterr()
    bad = dict(line.split("\t") for line in captured.out.splitlines())
    assert sorted(os.path.basename(p) for p in bad) == ["empty.mp4", "half.mp4", "missing.mp4", "text.mp4"]
    assert bad[str(checked_list.parent / "empty.mp4")] == "empty file"
    assert bad[str(checked_list.parent / "missing.mp4")] == "missing file"
    assert "2 ok, 4 bad" in captured.err
    assert clean.read_text() == "good0.mp4 0\ngood1.mp4 0\n"  # as written in the list, labels kept
    # resumable: every video has a verdict in the journal, so a rerun checks none of them
    journal = str(checked_list) + ".check"
    assert check_videos.check_shard(0, 1, list_path=str(checked_list), journal_dir=journal) == 0


def test_check_shards_cover_every_video_once(checked_list, tmp_path):
    journal = str(tmp_path / "journal")
    os.makedirs(journal)
    counts = [check_videos.check_shard(i, 4, list_path=str(checked_list), journal_dir=journal, workers=1)
              for i in range(4)]
    assert counts == [2, 2, 1, 1]
    lines = [line for name in os.listdir(journal) for line in open(os.path.join(journal, name))]
    assert len(lines) == 6 and len(check_videos.read_journals(journal)) == 6


def test_check_video_kills_a_decoder_past_its_timeout(checked_list):
    result = check_video(str(checked_list.parent / "good0.mp4"), timeout=0.0)
    assert not result.ok and result.reason.startswith("decoder hung: killed after")
    assert check_video(str(checked_list.parent / "good0.mp4")).ok


def test_bad_mask_sidecar_is_a_bad_video(tmp_path):
    path = ramp_video(str(tmp_path / "v.mp4"), num_frames=10)
    with open(mask_sidecar_path(path), "wb") as f:
        f.write(b"not an npz")
    assert check_video(path).reason.startswith("bad mask sidecar")
    _, reason = try_resize_video((path, str(tmp_path / "out.mp4")), short_side=16, gop=None, crf=23)
    assert reason.startswith("bad mask sidecar") and not os.path.exists(tmp_path / "out.mp4")


def test_synthetic_generation_is_byte_reproducible(tmp_path):
    """Two generations of the synthetic set are identical file for file (single-threaded x264)."""
    import hashlib

    from train_helpers import make_synthetic

    def digests(root):
        return {p.relative_to(root): hashlib.md5(p.read_bytes()).hexdigest()
                for p in sorted((root / "videos").rglob("*.mp4"))}

    first = digests(make_synthetic(tmp_path / "a", num_train=12, num_val=3, size=64))
    second = digests(make_synthetic(tmp_path / "b", num_train=12, num_val=3, size=64))
    assert len(first) == 15 and first == second
