"""Session fixtures: the data tests' videos, a local SLURM cluster and a small generated synthetic set.

Accuracy targets (the tiny recipe on the demo's set) are not asserted here: they vary between runs and
machines by about a point, so ``make demo`` measures and reports them (REPORT.md, docs/results.md)."""
from __future__ import annotations

from pathlib import Path

import pytest

from slurm_cluster import slurm_cluster  # noqa: F401  (the session's local SLURM cluster, for test_slurm)
from tests.data_fixtures import *  # noqa: F401,F403  (tiny_video_dir for the data tests)
from train_helpers import make_synthetic


@pytest.fixture(scope="session")
def small_synthetic(tmp_path_factory) -> Path:
    """24 train / 8 val synthetic videos of 32x32: enough for engine mechanics, not for accuracy."""
    return make_synthetic(tmp_path_factory.mktemp("synthetic_small"), num_train=24, num_val=8)
