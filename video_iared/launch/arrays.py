"""The ``--slurm --shards N`` path shared by the data_prep scripts: one function ``fn(shard, num_shards)``
runs either here as the single shard ``(0, 1)`` or as a SLURM array of ``N`` resumable elements.

A shard function processes ``shard_items(items, shard, num_shards)`` of a list every shard computes the
same way, and skips what is already done, so the local run, the array and any rerun of either
process every item exactly once.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from .cluster import add_cluster_arguments, cluster_options, job_folder, submit_shards

__all__ = ["add_shard_arguments", "run_shards", "available_cpus"]

R = TypeVar("R")


def add_shard_arguments(parser: argparse.ArgumentParser) -> None:
    """``--slurm``, ``--shards`` and the cluster flags of :func:`.cluster.add_cluster_arguments`."""
    parser.add_argument("--slurm", action="store_true",
                        help="run as a SLURM array of --shards jobs (submitit), then wait for it")
    parser.add_argument("--shards", type=int, default=1, help="array size with --slurm (default 1)")
    add_cluster_arguments(parser)


def available_cpus() -> int:
    """Cores this process may use (a SLURM job's allocation, not the node's)."""
    return len(os.sched_getaffinity(0))


def run_shards(fn: Callable[[int, int], R], args: argparse.Namespace, *, output_dir: str,
               name: str) -> list[R]:
    """``[fn(0, 1)]`` here, or with ``args.slurm`` the results of ``fn(i, args.shards)`` run as an array
    whose submitit logs go to ``<output_dir>/slurm/<job id>/``."""
    if not args.slurm:
        if args.shards != 1:
            raise SystemExit(f"--shards {args.shards} needs --slurm (a local run is one shard)")
        return [fn(0, 1)]
    jobs = submit_shards(fn, args.shards, folder=job_folder(output_dir), options=cluster_options(args, name))
    print(f"submitted array {jobs[0].job_id.split('_')[0]} ({len(jobs)} shards), logs in "
          f"{Path(output_dir).resolve() / 'slurm'}; waiting (interrupting is safe: jobs go on, and the same "
          "command skips what they finished)", file=sys.stderr)
    return [job.result() for job in jobs]
