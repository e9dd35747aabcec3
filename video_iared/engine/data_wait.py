"""How much of the training step time goes to waiting for the next batch, and what to do about it.

The loop asks the loader for a batch, then computes. Time blocked in ``next(loader)`` is time the
accelerator has nothing to do (the step's own ``.item()`` sync means the host never runs ahead of
it by more than a step), so ``wait / (wait + compute)`` is the share of the run lost to input. The
first batch of each epoch (workers starting, queues filling) is logged but left out of the run's
verdict.
"""
from __future__ import annotations

import os
import time
from typing import Iterable, Iterator, TypeVar

__all__ = ["DataWait", "available_cores", "input_bound_verdict"]

T = TypeVar("T")

INPUT_BOUND = 0.10  # above this share of step time waiting, the run is input-bound
NEGLIGIBLE = 0.02


class DataWait:
    """Wraps a loader's iteration (:meth:`batches`) and accumulates wait and step time."""

    def __init__(self) -> None:
        self.window_wait = self.window_total = 0.0
        self.run_wait = self.run_total = 0.0

    def batches(self, loader: Iterable[T]) -> Iterator[T]:
        iterator = iter(loader)
        for number in range(2**62):
            start = time.perf_counter()
            try:
                batch = next(iterator)
            except StopIteration:
                return
            waited = time.perf_counter() - start
            self._add(waited, 0.0, counted=number > 0)
            yield batch  # the caller's step runs until the next call
            self._add(0.0, time.perf_counter() - start - waited, counted=number > 0)

    def _add(self, wait: float, compute: float, *, counted: bool) -> None:
        self.window_wait += wait
        self.window_total += wait + compute
        if counted:
            self.run_wait += wait
            self.run_total += wait + compute

    def window_share(self) -> float:
        """Share of the time since the last call spent waiting for data (then starts a new window)."""
        share = self.window_wait / self.window_total if self.window_total else 0.0
        self.window_wait = self.window_total = 0.0
        return share

    @property
    def run_share(self) -> float:
        return self.run_wait / self.run_total if self.run_total else 0.0


def available_cores() -> int:
    """Cores this process may use: its affinity (a SLURM task's allocation, not the node's), shared with
    the other processes torchrun started on the node."""
    return max(len(os.sched_getaffinity(0)) // int(os.environ.get("LOCAL_WORLD_SIZE", 1)), 1)


def input_bound_verdict(share: float, *, num_workers: int, cores: int, format: str, augment_on: str,
                        num_samples: int) -> str:
    """One line: was the run input-bound (``share`` of step time waiting for data), and the first knob
    to turn, in the order that costs least (docs/design.md, Data path)."""
    head = f"data wait {100 * share:.1f}% of step time"
    if share < NEGLIGIBLE:
        return f"{head}: not input-bound; a faster loader would not shorten this run"
    if share < INPUT_BOUND:
        return f"{head}: slightly input-bound; not worth a change unless it grows"
    if num_workers < cores - 1:
        knob = f"raise data.num_workers (now {num_workers}; this process may use {cores} cores)"
    elif format == "video":
        knob = "store JPEG frames (data_prep/extract_frames.py, then data.format=frames)"
    elif augment_on == "host":
        knob = "resize on the device: data.augment_on=device"
    elif num_samples == 1:
        knob = "decode once for two clips: data.num_samples=2 (halve optim.epochs to keep the clips seen)"
    else:
        knob = "more CPU cores per GPU (README, Data loading: cores per H200)"
    return f"{head}: INPUT-BOUND; {knob}"
