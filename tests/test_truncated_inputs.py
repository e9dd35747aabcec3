"""A video cut short (a download stopped half-way) is refused everywhere: data_prep/resize_videos.py
does not turn it into a valid short file, and predict decodes with check_videos.py's checks."""
from __future__ import annotations

import os

import numpy as np
import pytest
from error_fixtures import save_checkpoint
from user_error_helpers import one_line_error

from data_prep import resize_videos
from video_iared.data.video import write_video


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """A 250-frame faststart mp4 (its header, with the frame count, comes first), and cuts of it."""
    root = tmp_path_factory.mktemp("truncated")
    frames = np.random.default_rng(0).integers(0, 255, (250, 32, 64, 3), dtype=np.uint8)
    whole = root / "whole.mp4"
    write_video(str(whole), frames, gop=25)
    data = whole.read_bytes()
    cuts = {}
    for name, size in (("head", 20000), ("half", len(data) // 2)):
        cuts[name] = root / f"{name}.mp4"
        cuts[name].write_bytes(data[:size])
    # the header intact, the last 30 % of the bytes garbage: the middle frames still decode, the last do not
    keep = int(0.7 * len(data))
    cuts["damaged"] = root / "damaged.mp4"
    cuts["damaged"].write_bytes(data[:keep] + np.random.default_rng(1).bytes(len(data) - keep))
    return {"whole": whole, **cuts, "root": root}


def test_resize_refuses_a_cut_short_source(videos, tmp_path):
    options = dict(short_side=32, gop=None, crf=23)
    for name in ("head", "half"):
        out = tmp_path / f"{name}.mp4"
        src, reason = resize_videos.resize_checked((str(videos[name]), str(out)), **options)
        assert reason is not None and "cut short" in reason and "of the 250 frames" in reason, reason
        assert not out.exists()
    out = tmp_path / "whole.mp4"
    assert resize_videos.resize_checked((str(videos["whole"]), str(out)), **options) == (str(videos["whole"]),
                                                                                         None)
    assert resize_videos.written_frames(str(out)) == 250


def test_resize_script_lists_a_cut_short_source_as_unreadable(videos, tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    os.link(videos["half"], src / "half.mp4")
    assert resize_videos.main([str(src), str(tmp_path / "dst"), "--short-side", "32", "--workers", "1"]) == 0
    captured = capsys.readouterr()
    assert "half.mp4\tcut short" in captured.out and "0 written" in captured.err
    assert not (tmp_path / "dst" / "half.mp4").exists()


def test_predict_refuses_what_check_videos_refuses(videos, capsys):
    """The damaged file's centre clip decodes, so only check_videos.py's probe (first, middle and last
    frames) tells it apart; the cut files fail when decord opens them."""
    ckpt = save_checkpoint(videos["root"] / "tiny.pth")
    err = one_line_error(["predict", str(videos["damaged"]), "--checkpoint", str(ckpt)], capsys)
    assert "damaged.mp4: decoding failed" in err
    err = one_line_error(["predict", str(videos["half"]), "--checkpoint", str(ckpt)], capsys)
    assert "half.mp4" in err
    assert main_ok(["predict", str(videos["whole"]), "--checkpoint", str(ckpt)])


def main_ok(argv: list[str]) -> bool:
    from video_iared.cli import main

    return main(argv) == 0
