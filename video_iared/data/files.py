"""File helpers shared by the loaders and the data_prep scripts: mask sidecars, atomic writes, and a
process-parallel map with a progress bar (every prep script is resumable and parallel)."""
from __future__ import annotations

import os
import sys
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, TypeVar

import numpy as np
from tqdm import tqdm

__all__ = [
    "mask_sidecar_path", "save_masks", "load_masks", "atomic_write_text", "parallel_map", "temporary_path",
]

T = TypeVar("T")
R = TypeVar("R")


def mask_sidecar_path(video_path: str) -> str:
    """``videos/x.mp4`` -> ``videos/x.masks.npz`` (uint8 ``masks`` (frames, H, W), nonzero = foreground)."""
    return os.path.splitext(video_path)[0] + ".masks.npz"


def temporary_path(path: str) -> str:
    """A hidden per-process name beside ``path``: written first, then renamed over ``path`` (same file
    system, so the rename is atomic and a killed writer leaves only a ``.tmp`` file)."""
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".{name}.{os.getpid()}.tmp")


def save_masks(path: str, masks: np.ndarray) -> None:
    """Write a mask sidecar atomically (compressed npz with one uint8 array ``masks``)."""
    tmp = temporary_path(path)
    with open(tmp, "wb") as f:
        np.savez_compressed(f, masks=masks.astype(np.uint8))
    os.replace(tmp, path)


def load_masks(path: str) -> np.ndarray:
    with np.load(path) as data:
        return data["masks"]


def atomic_write_text(path: str, text: str) -> None:
    tmp = temporary_path(path)
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def parallel_map(fn: Callable[[T], R], jobs: Iterable[T], *, workers: int, desc: str,
                 threads: bool = False) -> Iterator[R]:
    """``fn`` over ``jobs`` in ``workers`` processes (in-process when ``workers <= 1``), yielding results
    as they finish under a tqdm bar. ``fn`` must be a module-level function (it is pickled), unless
    ``threads``: then threads run it (for work that waits on child processes of its own)."""
    jobs = list(jobs)
    with tqdm(total=len(jobs), desc=desc, unit="video", dynamic_ncols=True) as bar:
        if workers <= 1:
            for job in jobs:
                yield fn(job)
                bar.update()
            return
        with (ThreadPoolExecutor if threads else ProcessPoolExecutor)(max_workers=workers) as pool:
            for future in as_completed([pool.submit(fn, job) for job in jobs]):
                yield future.result()
                bar.update()


@dataclass
class ShardSummary:
    """What one shard of a data_prep script did: items written, already present, unreadable
    ``(path, reason)``."""

    written: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)


def convert_items(convert: Callable[[T], tuple[str, str | None]], todo: list[T], *, skipped: int,
                  workers: int, desc: str) -> ShardSummary:
    """``convert(job) -> (source path, failure reason or None)`` over ``todo`` in ``workers`` processes,
    counted into a :class:`ShardSummary` (``skipped``: the items already done)."""
    summary = ShardSummary(skipped=skipped)
    for src, reason in parallel_map(convert, todo, workers=workers, desc=desc):
        if reason is None:
            summary.written += 1
        else:
            summary.failed.append((src, reason))
    return summary


def source_and_output(src_dir: str, dst_dir: str) -> tuple[str, str]:
    """Absolute ``(source tree, output tree)`` of a data_prep conversion, the output created; a missing
    source, or an output inside the source (whose outputs a rerun would convert again), stops it."""
    src, dst = os.path.abspath(src_dir), os.path.abspath(dst_dir)
    if not os.path.isdir(src):
        raise SystemExit(f"{src_dir}: no such folder")
    if os.path.commonpath([src, dst]) == src:
        raise SystemExit(f"{dst_dir} is inside {src_dir}: a rerun would convert its outputs again; "
                         "choose a folder outside the source tree")
    os.makedirs(dst, exist_ok=True)
    return src, dst


def report_shards(summaries: Iterable[ShardSummary]) -> None:
    """Every unreadable item (``path<TAB>reason``) on stdout, the totals on stderr."""
    summaries = list(summaries)
    failed = [item for summary in summaries for item in summary.failed]
    for path, reason in failed:
        print(f"{path}\t{reason}")
    print(f"{sum(s.written for s in summaries)} written, {sum(s.skipped for s in summaries)} already done, "
          f"{len(failed)} unreadable", file=sys.stderr)
