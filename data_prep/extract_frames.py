#!/usr/bin/env python
"""Store every --step-th frame of each video below SRC_DIR as JPEG under DST_DIR, keeping the folder
layout (a/x.mp4 -> a/x/000000.jpg ..., with meta.json); mask sidecars are copied along. Train on them
with ``data.format=frames data.frames_root=DST_DIR`` and the same lists (DST_DIR/frames_source.json
records SRC_DIR, so any list path to a video below SRC_DIR is read from its folder here).

    python data_prep/extract_frames.py k400/videos_320 k400/frames_320 --workers 32
    python data_prep/extract_frames.py k400/videos_320 k400/frames_320 --slurm --shards 64 \\
        --cpus-per-task 8 --partition cpu --time 240

Extract from the 320p videos (data_prep/resize_videos.py): the frames keep the source's size. The
defaults (every 4th frame, quality 85) store 3.8x the bytes of the 320p videos on camera footage at
40.7 dB against the decoded video (README, Data loading: benchmarks/data_throughput.py).
Resumable: a video's folder is written under a temporary name and renamed when complete, and finished
folders are skipped, so a killed or requeued run (or array element) picks up where it stopped.
Unreadable sources are listed at the end (path<TAB>reason) and produce no folder.
"""
from __future__ import annotations

import argparse
import os
import sys
from functools import partial

from video_iared.data.files import ShardSummary, convert_items, report_shards, source_and_output
from video_iared.data.frames import frames_folder, record_source
from video_iared.data.prep import find_videos, try_extract_frames
from video_iared.launch.arrays import add_shard_arguments, available_cpus, run_shards
from video_iared.launch.cluster import shard_items


def extract_shard(shard: int, num_shards: int, *, src_root: str, dst_root: str, step: int = 4,
                  quality: int = 85, workers: int | None = None) -> ShardSummary:
    """Extract the videos of one shard of ``src_root``'s sorted file list whose folder ``dst_root``
    lacks, in ``workers`` processes (default: the cores this job may use)."""
    relative = shard_items(find_videos(src_root), shard, num_shards)
    jobs = [(os.path.join(src_root, rel), os.path.join(dst_root, rel)) for rel in relative]
    todo = [job for job in jobs if not os.path.isdir(frames_folder(job[1]))]
    extract = partial(try_extract_frames, step=step, quality=quality)
    return convert_items(extract, todo, skipped=len(jobs) - len(todo), workers=workers or available_cpus(),
                         desc=f"frames shard {shard}/{num_shards}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src_dir", help="folder tree of videos (the 320p ones)")
    parser.add_argument("dst_dir", help="output tree (created; may already hold finished folders)")
    parser.add_argument("--step", type=int, default=4,
                        help="keep every step-th frame (default 4: clip indices move by at most 2 frames; "
                             "8 x 32 clips take 1 frame in 32)")
    parser.add_argument("--quality", type=int, default=85, help="JPEG quality (default 85)")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes per shard (default: the cores available to it)")
    add_shard_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.step < 1 or not 1 <= args.quality <= 100:
        raise SystemExit(f"--step must be >= 1 and --quality in [1, 100], got {args.step} and {args.quality}")
    src, dst = source_and_output(args.src_dir, args.dst_dir)
    try:
        record_source(dst, src)  # lets the loader map the lists' video paths into this tree
    except ValueError as err:
        raise SystemExit(str(err))
    shard = partial(extract_shard, src_root=src, dst_root=dst, step=args.step, quality=args.quality,
                    workers=args.workers)
    report_shards(run_shards(shard, args, output_dir=dst, name="extract_frames"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
