"""Session fixtures: the data tests' videos, a local SLURM cluster, a small generated synthetic set, and
the demo's synthetic set with the tiny stages trained on it once, shared by every test that needs them."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from slurm_cluster import slurm_cluster  # noqa: F401  (the session's local SLURM cluster, for test_slurm)
from tests.data_fixtures import *  # noqa: F401,F403  (tiny_video_dir for the data tests)
from train_helpers import REPO, make_synthetic, run_python


@pytest.fixture(scope="session")
def small_synthetic(tmp_path_factory) -> Path:
    """24 train / 8 val synthetic videos of 32x32: enough for engine mechanics, not for accuracy."""
    return make_synthetic(tmp_path_factory.mktemp("synthetic_small"), num_train=24, num_val=8)


# The demo's dataset and tiny configs (configs/tiny/*.yaml), each stage trained once per test session.
DEMO_DATA = dict(num_train=2400, num_val=480, size=64, frames=32)  # data_prep/make_synthetic.py defaults


def _train(config: str, root: Path, out: Path, *overrides: str) -> dict:
    """``video-iared train`` in a fresh process, as the demo runs it but validating only after the last
    epoch (the suite's time)."""
    run_python(["-m", "video_iared.cli", "train", "--config", str(REPO / "configs" / "tiny" / f"{config}.yaml"),
                f"data.root={root}", f"run.output_dir={out}", "run.eval_every_epochs=1000", *overrides],
               timeout=1800)  # validation after the last epoch only (it draws no training randomness)
    return {**json.loads((out / "final_metrics.json").read_text()), "output_dir": out}


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory) -> Path:
    """The synthetic set ``make demo`` generates."""
    return make_synthetic(tmp_path_factory.mktemp("synthetic_demo"), **DEMO_DATA)


@pytest.fixture(scope="session")
def tiny_backbone(demo_data, tmp_path_factory) -> dict:
    """Stage 1 of the demo: the tiny TimeSformer trained on 8-frame clips (metrics + ``output_dir``)."""
    return _train("backbone", demo_data, tmp_path_factory.mktemp("runs") / "backbone", "model.weights=")


@pytest.fixture(scope="session")
def single_frame_control(demo_data, tmp_path_factory) -> dict:
    """The same model and recipe on one frame per clip, for 5 of its 8 epochs (the test suite's time;
    all 8 stayed near chance too, 35.4 %): what the data gives away without motion."""
    return _train("backbone", demo_data, tmp_path_factory.mktemp("runs") / "single_frame", "model.weights=",
                  "model.num_frames=1", "data.num_frames=1", "optim.epochs=5")


@pytest.fixture(scope="session")
def tiny_pipeline(tiny_backbone, demo_data, tmp_path_factory) -> dict[str, dict]:
    """The demo's later training stages (``video_iared.demo.TRAINING``) on top of :func:`tiny_backbone`:
    every stage's metrics plus ``output_dir``, keyed by config name."""
    from video_iared.demo import TRAINING

    results = {"backbone": tiny_backbone}
    runs = tmp_path_factory.mktemp("runs")
    for _, config, start in TRAINING[1:]:
        weights = results[start]["output_dir"] / "checkpoint.pth"
        results[config] = _train(config, demo_data, runs / config, f"model.weights={weights}")
    return results
