#!/usr/bin/env python
"""Check that every video of a ``path label`` list decodes: its first, middle and last frames are read
with the training decoder (and its mask sidecar loaded, if any), each video in a child process that is
killed after --timeout seconds, so a hanging or crashing decoder only marks that video as bad.

    python data_prep/check_videos.py k400/val.csv --write-clean k400/val_clean.csv
    python data_prep/check_videos.py k400/train.csv --write-clean k400/train_clean.csv \\
        --slurm --shards 32 --cpus-per-task 8 --partition cpu --time 120

Prints one line per bad video (path<TAB>reason) on stdout and the summary "N ok, M bad" on stderr.
Resumable: each verdict is appended to a journal (--journal, default LIST.check/) as soon as it is
known, and videos with a verdict are not checked again; delete the journal to check afresh.
"""
from __future__ import annotations

import argparse
import glob
import os
import sys
from functools import partial

from video_iared.data.files import atomic_write_text, parallel_map
from video_iared.data.kinetics import parse_list, read_list
from video_iared.data.lists import format_list
from video_iared.data.prep import check_video
from video_iared.launch.arrays import add_shard_arguments, available_cpus, run_shards
from video_iared.launch.cluster import shard_items

OK = "ok"  # the journal's verdict for a good video; any other verdict is the reason it is bad


def read_journals(journal_dir: str) -> dict[str, str]:
    """``{path: verdict}`` from every shard's journal; a line cut short by a kill is ignored."""
    verdicts = {}
    for journal in sorted(glob.glob(os.path.join(journal_dir, "*.tsv"))):
        with open(journal, encoding="utf-8") as f:
            for line in f:
                if line.endswith("\n") and "\t" in line:
                    path, verdict = line[:-1].split("\t", 1)
                    verdicts[path] = verdict
    return verdicts


def check_shard(shard: int, num_shards: int, *, list_path: str, journal_dir: str,
                path_prefix: str | None = None, timeout: float = 30.0, workers: int | None = None) -> int:
    """Check the videos of one shard of the list that have no verdict yet, appending each verdict to
    this shard's journal; returns how many were checked."""
    done = read_journals(journal_dir)
    items = shard_items(read_list(list_path, path_prefix=path_prefix), shard, num_shards)
    paths = [path for path, _ in items]
    todo = list(dict.fromkeys(path for path in paths if path not in done))
    journal = os.path.join(journal_dir, f"shard-{shard:05d}-of-{num_shards:05d}.tsv")
    with open(journal, "a", encoding="utf-8") as f:
        for result in parallel_map(partial(check_video, timeout=timeout), todo, threads=True,
                                   workers=workers or available_cpus(),
                                   desc=f"check shard {shard}/{num_shards}"):
            f.write(f"{result.path}\t{result.reason or OK}\n")
            f.flush()
    return len(todo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("list", help="'path label' list (relative paths are resolved as the loader does)")
    parser.add_argument("--path-prefix", help="root of relative paths (default: the list's folder)")
    parser.add_argument("--write-clean", metavar="OUT", help="write the list without the bad videos to OUT")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per video before its decoder is "
                        "killed (default 30)")
    parser.add_argument("--workers", type=int, default=None,
                        help="videos checked at once per shard (default: the cores available to it)")
    parser.add_argument("--journal", help="folder of the verdict journals (default: LIST.check/)")
    add_shard_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:  # a missing, empty or malformed list: one line, before any journal is made
        read_list(args.list, path_prefix=args.path_prefix)
    except (OSError, ValueError) as err:
        print(f"check_videos.py: {err}", file=sys.stderr)
        return 2
    journal_dir = os.path.abspath(args.journal or args.list + ".check")
    os.makedirs(journal_dir, exist_ok=True)
    list_path = os.path.abspath(args.list)
    shard = partial(check_shard, list_path=list_path, journal_dir=journal_dir, path_prefix=args.path_prefix,
                    timeout=args.timeout, workers=args.workers)
    run_shards(shard, args, output_dir=journal_dir, name="check_videos")

    verdicts = read_journals(journal_dir)
    entries = parse_list(list_path)
    resolved = [path for path, _ in read_list(list_path, path_prefix=args.path_prefix)]
    unchecked = [path for path in resolved if path not in verdicts]
    bad = {path for path in resolved if verdicts.get(path, OK) != OK}
    for path in dict.fromkeys(p for p in resolved if p in bad):
        print(f"{path}\t{verdicts[path]}")
    print(f"{len(resolved) - len(bad) - len(unchecked)} ok, {len(bad)} bad", file=sys.stderr)
    if unchecked:  # a shard that failed or was cancelled: the same command finishes the job
        print(f"{len(unchecked)} not checked yet (first: {unchecked[0]}); run the same command again",
              file=sys.stderr)
        return 1
    if args.write_clean:
        clean = [entry for entry, path in zip(entries, resolved) if path not in bad]
        atomic_write_text(args.write_clean, format_list(clean))
        print(f"{args.write_clean}: {len(clean)} of {len(entries)} videos", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
