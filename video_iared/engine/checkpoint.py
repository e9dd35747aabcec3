"""Crash-safe training checkpoints and the RNG state that makes resuming exact.

A checkpoint is written to a temporary file in the same folder, flushed to disk, then renamed over
the previous one with ``os.replace`` (atomic on POSIX): a SIGKILL or node failure during saving
leaves the last good checkpoint intact. Every tensor-free value is kept to plain Python types so the
file loads with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["CHECKPOINT_NAME", "checkpoint_path", "find_checkpoint", "save_checkpoint",
           "load_checkpoint", "rng_state", "set_rng_state"]

CHECKPOINT_NAME = "checkpoint.pth"


def checkpoint_path(output_dir: str | Path) -> Path:
    """Where a run in ``output_dir`` keeps its latest checkpoint."""
    return Path(output_dir) / CHECKPOINT_NAME


def find_checkpoint(output_dir: str | Path) -> Path | None:
    """The run's latest checkpoint, or None for a fresh run (what automatic resume looks for)."""
    path = checkpoint_path(output_dir)
    return path if path.is_file() else None


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    """Write ``state`` atomically: temp file, fsync, ``os.replace``, fsync of the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as handle:
        torch.save(state, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` onto the CPU."""
    return torch.load(path, map_location="cpu", weights_only=True)


def rng_state() -> dict[str, Any]:
    """This process's python, numpy, torch and CUDA generator states, as tensors and plain types."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
