"""Session fixtures: the data tests' videos, a local SLURM cluster, a small generated synthetic set, and
one run of the tiny three-stage pipeline shared by every test that needs a trained model."""
from __future__ import annotations

from pathlib import Path

import pytest

from slurm_cluster import slurm_cluster  # noqa: F401  (the session's local SLURM cluster, for test_slurm)
from tests.data_fixtures import *  # noqa: F401,F403  (tiny_video_dir for the data tests)
from train_helpers import REPO, make_synthetic


@pytest.fixture(scope="session")
def small_synthetic(tmp_path_factory) -> Path:
    """24 train / 8 val synthetic videos of 32x32: enough for engine mechanics, not for accuracy."""
    return make_synthetic(tmp_path_factory.mktemp("synthetic_small"), num_train=24, num_val=8)


# The tiny three-stage pipeline, trained once per test session (configs/tiny/*.yaml, generated data).
TINY_DATA = dict(num_train=600, num_val=120, size=32, frames=32)


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory) -> dict[str, dict]:
    """Train backbone -> interpreters -> finetune with the tiny configs; each stage's returned metrics
    plus ``output_dir``. Shared by every test that needs a trained model."""
    from video_iared.config import load_config
    from video_iared.engine.train import train

    root = make_synthetic(tmp_path_factory.mktemp("synthetic_tiny"), **TINY_DATA)
    runs = tmp_path_factory.mktemp("tiny_runs")
    results: dict[str, dict] = {}
    weights = ""
    for stage in ("backbone", "interpreters", "finetune"):
        out = runs / stage
        cfg = load_config(REPO / "configs" / "tiny" / f"{stage}.yaml",
                          [f"data.root={root}", f"run.output_dir={out}", f"model.weights={weights}"])
        results[stage] = {**train(cfg), "output_dir": out}
        weights = str(out / "checkpoint.pth")
    return results
