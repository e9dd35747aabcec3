#!/usr/bin/env python
"""Write the train/val/test ``path label`` lists and classes.json of a Kinetics-style dataset.

From the official annotation CSVs (label,youtube_id,time_start,time_end,split) and the downloaded
videos, named {youtube_id}_{start:06d}_{end:06d}.mp4 or {youtube_id}.mp4 (any video extension, any
folder layout below VIDEOS_DIR):

    python data_prep/build_lists.py k400/videos_320 --out k400 \\
        --annotations kinetics400/train.csv kinetics400/validate.csv kinetics400/test.csv

From a folder-per-class tree VIDEOS_DIR/{train,val,test}/CLASS/VIDEO (no --annotations):

    python data_prep/build_lists.py mydata/videos --out mydata

Class ids are the class names sorted (the K400 convention: abseiling = 0). Paths in the lists are
relative to --out, where the loader resolves them. Annotated clips without a file are counted per
split and listed in OUT/missing_SPLIT.txt (youtube_id, times, label); their ids stay reserved.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from video_iared.data.files import atomic_write_text
from video_iared.data.lists import (
    SPLITS, Annotation, class_ids, folder_tree_items, format_list, index_by_stem, match_annotations,
    read_annotations,
)
from video_iared.data.prep import find_videos


def _missing_lines(missing: list[Annotation]) -> str:
    return "".join(f"{a.youtube_id},{a.time_start},{a.time_end},{a.label}\n" for a in missing)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("videos_dir", help="downloaded (or resized) videos")
    parser.add_argument("--out", required=True, help="folder for train.csv, val.csv, test.csv, classes.json")
    parser.add_argument("--annotations", nargs="+", metavar="CSV",
                        help="official annotation files; without them VIDEOS_DIR is a SPLIT/CLASS/VIDEO tree")
    parser.add_argument("--name", default="kinetics", help="dataset name recorded in classes.json")
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        return build(build_parser().parse_args(argv))
    except (OSError, ValueError) as err:  # a missing or malformed annotation file, a tree of another layout
        print(f"build_lists.py: {err}", file=sys.stderr)
        return 2


def build(args: argparse.Namespace) -> int:
    """Write the lists and classes.json that ``args`` describe (see the module docstring)."""
    videos_dir = os.path.abspath(args.videos_dir)
    if not os.path.isdir(videos_dir):
        raise SystemExit(f"{args.videos_dir}: no such folder")
    files = find_videos(videos_dir)
    if not files:
        raise SystemExit(f"{args.videos_dir}: no video files (.mp4, .webm, .mkv, ...) below it")
    missing: dict[str, list[Annotation]] = {}
    if args.annotations:
        annotations = [row for path in args.annotations for row in read_annotations(path)]
        index, duplicates = index_by_stem(files)
        if duplicates:
            print(f"warning: {len(duplicates)} files share a name with another (first: {duplicates[0]}); "
                  "the first in sorted order is used", file=sys.stderr)
        items, missing_rows = match_annotations(annotations, index)
        for row in missing_rows:
            missing.setdefault(row.split, []).append(row)
        names = [row.label for row in annotations if row.label is not None]
        unlabelled = sorted({row.split for row in annotations if row.label is None})
        if unlabelled:
            print(f"no labels in the annotations of {', '.join(unlabelled)}: no list written for them "
                  "(the 2017 K400 test file has none; use the 2020 release)", file=sys.stderr)
    else:
        items = folder_tree_items(files)
        names = [name for split_items in items.values() for _, name in split_items]
    ids = class_ids(names)

    os.makedirs(args.out, exist_ok=True)
    to_list_path = os.path.relpath(videos_dir, os.path.abspath(args.out))
    for split in SPLITS:
        found = items.get(split, [])
        if not found and split not in missing:
            continue
        lines = [(os.path.normpath(os.path.join(to_list_path, path)), ids[name]) for path, name in found]
        atomic_write_text(os.path.join(args.out, f"{split}.csv"), format_list(lines))
        lost = missing.get(split, [])
        missing_path = os.path.join(args.out, f"missing_{split}.txt")
        if lost:
            atomic_write_text(missing_path, _missing_lines(lost))
        elif os.path.exists(missing_path):  # from an earlier run, before the videos arrived
            os.remove(missing_path)
        print(f"{split}: {len(found)} videos, {len(lost)} missing"
              + (f" (listed in missing_{split}.txt)" if lost else ""), file=sys.stderr)
    info = {"classes": sorted(ids, key=ids.__getitem__), "flip_sensitive": False, "dataset": args.name}
    atomic_write_text(os.path.join(args.out, "classes.json"), json.dumps(info, indent=1) + "\n")
    print(f"{len(ids)} classes -> {os.path.join(args.out, 'classes.json')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
