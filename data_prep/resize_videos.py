#!/usr/bin/env python
"""Re-encode every video below SRC_DIR to an h264 mp4 with a short side of 320 (--short-side) under
DST_DIR, keeping the folder layout (x.webm -> x.mp4). Mask sidecars (x.masks.npz) are resized along.

    python data_prep/resize_videos.py k400/raw k400/videos_320 --gop 16 --workers 32
    python data_prep/resize_videos.py k400/raw k400/videos_320 --gop 16 --slurm --shards 64 \\
        --cpus-per-task 8 --partition cpu --time 240

Resumable: a video is written to a temporary name and renamed when complete, and finished videos are
skipped, so a killed or requeued run picks up where it stopped. A short keyframe interval (--gop)
makes the loader's random access cheaper (docs/results.md, Loader speed) for a slightly larger file.
Unreadable sources are listed at the end (path<TAB>reason) and produce no output; so is a source cut
short (a download stopped half-way), whose output would hold fewer frames than its header declares.
"""
from __future__ import annotations

import argparse
import os
import sys
from functools import partial

from video_iared.data.files import (ShardSummary, convert_items, mask_sidecar_path, report_shards,
                                    source_and_output)
from video_iared.data.prep import find_videos, try_resize_video
from video_iared.launch.arrays import add_shard_arguments, available_cpus, run_shards
from video_iared.launch.cluster import shard_items


def output_path(src_root: str, dst_root: str, relative: str) -> tuple[str, str]:
    """(source, destination) of one video; the destination is always an ``.mp4``."""
    return os.path.join(src_root, relative), os.path.join(dst_root, os.path.splitext(relative)[0] + ".mp4")


# an output may hold a little less than the source's header declares (an estimate from the duration for
# webm/mkv, edit lists, a last frame dropped): it is short only below this share of the declared count
SHORT_OUTPUT_SHARE = 0.95


def declared_frames(path: str) -> int:
    """Frames a video's header declares: the stream's count, else duration x average rate (0: unknown)."""
    import av

    with av.open(path) as container:
        stream = container.streams.video[0]
        if stream.frames:
            return int(stream.frames)
        duration = stream.duration * stream.time_base if stream.duration else (container.duration or 0) / 1e6
        return int(float(duration) * float(stream.average_rate or 0))


def written_frames(path: str) -> int:
    """Frames in a video this script wrote (its writer records the count in the mp4 header)."""
    import av

    with av.open(path) as container:
        return int(container.streams.video[0].frames)


def short_output(src: str, dst: str) -> str | None:
    """Why ``dst`` cannot stand for ``src`` (fewer frames than ``src`` declares), or None."""
    declared, written = declared_frames(src), written_frames(dst)
    if declared and written < SHORT_OUTPUT_SHARE * declared:
        return f"cut short: {written} of the {declared} frames its header declares decode"
    return None


def resize_checked(paths: tuple[str, str], **options) -> tuple[str, str | None]:
    """``try_resize_video`` that also refuses an output shorter than its source declares (the output and
    its mask sidecar are removed, so the source is listed as unreadable and a rerun tries it again)."""
    src, reason = try_resize_video(paths, **options)
    if reason is None:
        reason = short_output(*paths)
        if reason is not None:
            for path in (paths[1], mask_sidecar_path(paths[1])):
                if os.path.exists(path):
                    os.remove(path)
    return src, reason


def resize_shard(shard: int, num_shards: int, *, src_root: str, dst_root: str, short_side: int = 320,
                 gop: int | None = None, crf: int = 23, workers: int | None = None) -> ShardSummary:
    """Resize the videos of one shard of ``src_root``'s sorted file list that ``dst_root`` lacks, in
    ``workers`` processes (default: the cores this job may use)."""
    relative = shard_items(find_videos(src_root), shard, num_shards)
    jobs = [output_path(src_root, dst_root, rel) for rel in relative]
    todo = [job for job in jobs if not os.path.exists(job[1])]
    for folder in sorted({os.path.dirname(dst) for _, dst in todo}):
        os.makedirs(folder, exist_ok=True)
    resize = partial(resize_checked, short_side=short_side, gop=gop, crf=crf)
    return convert_items(resize, todo, skipped=len(jobs) - len(todo), workers=workers or available_cpus(),
                         desc=f"resize shard {shard}/{num_shards}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src_dir", help="folder tree of source videos")
    parser.add_argument("dst_dir", help="output tree (created; may already hold finished videos)")
    parser.add_argument("--short-side", type=int, default=320,
                        help="output short side in pixels (default 320)")
    parser.add_argument("--gop", type=int, default=None,
                        help="keyframe interval in frames (default: x264's, 250); 16 is a good trade-off")
    parser.add_argument("--crf", type=int, default=23, help="x264 quality, lower is better (default 23)")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes per shard (default: the cores available to it)")
    add_shard_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    src, dst = source_and_output(args.src_dir, args.dst_dir)
    shard = partial(resize_shard, src_root=src, dst_root=dst, short_side=args.short_side, gop=args.gop,
                    crf=args.crf, workers=args.workers)
    report_shards(run_shards(shard, args, output_dir=dst, name="resize_videos"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
