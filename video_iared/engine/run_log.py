"""Run logs on the main process: ``metrics.jsonl`` (one JSON object per line) and TensorBoard scalars.

Each row is ``{"split": "train"|"val", "epoch": e, "step": global optimiser step, ...scalars}``. On
resume, train rows logged after the checkpoint's step (by the run that was killed) are dropped, so
the file reads as one uninterrupted run.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

__all__ = ["METRICS_NAME", "RunLogger", "read_metrics"]

METRICS_NAME = "metrics.jsonl"


def read_metrics(output_dir: str | Path, split: str | None = None) -> list[dict[str, Any]]:
    """The rows of a run's ``metrics.jsonl`` (optionally of one split)."""
    path = Path(output_dir) / METRICS_NAME
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [row for row in rows if split is None or row["split"] == split]


class RunLogger:
    """Appends scalars to ``metrics.jsonl`` and TensorBoard; a no-op on other ranks."""

    def __init__(self, output_dir: str | Path, *, enabled: bool, resume_step: int | None = None) -> None:
        self.enabled = enabled
        self.path = Path(output_dir) / METRICS_NAME
        self.writer = None
        if not enabled:
            return
        if resume_step is not None and self.path.is_file():
            kept = [row for row in read_metrics(output_dir) if row["step"] <= resume_step]
            self.path.write_text("".join(json.dumps(row) + "\n" for row in kept))
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(Path(output_dir) / "tensorboard"), purge_step=resume_step)

    def log(self, split: str, *, epoch: int, step: int, **scalars: float) -> None:
        if not self.enabled:
            return
        row = {"split": split, "epoch": epoch, "step": step,
               **{k: (float(v) if math.isfinite(float(v)) else str(float(v))) for k, v in scalars.items()}}
        with open(self.path, "a") as handle:
            handle.write(json.dumps(row) + "\n")
        for key, value in scalars.items():
            self.writer.add_scalar(f"{split}/{key}", float(value), step)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
