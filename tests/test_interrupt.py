"""Ctrl-C loses nothing: SIGINT / SIGTERM on a local run save a checkpoint at the current step, say
where and exit 128 + signal; the rerun says where it resumed, continues exactly, and its log holds
every step once."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
import torch

from video_iared.engine.checkpoint import load_checkpoint
from video_iared.engine.interrupt import StopSignals
from video_iared.engine.run_log import RunLogger, read_metrics

from train_helpers import REPO


def test_first_signal_asks_to_stop_and_the_handlers_come_back():
    with StopSignals() as stop:
        assert signal.getsignal(signal.SIGTERM) != signal.SIG_DFL
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested and stop.signum == signal.SIGTERM
        with pytest.raises(KeyboardInterrupt):  # Ctrl-C after a request: stop at once
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_launchers_own_handler_is_left_alone():
    """submitit handles SIGTERM itself (requeue); the run must not take it over."""
    received = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    try:
        with StopSignals() as stop:
            os.kill(os.getpid(), signal.SIGTERM)
            assert received == [signal.SIGTERM] and not stop.requested
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_fresh_start_drops_rows_of_an_attempt_without_checkpoint(tmp_path):
    rows = [{"split": "train", "epoch": 0, "step": step, "loss": 1.0} for step in (10, 20)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    logger = RunLogger(tmp_path, enabled=True, resume_step=0)
    logger.log("train", epoch=0, step=10, loss=0.5)
    logger.close()
    assert [(row["step"], row["loss"]) for row in read_metrics(tmp_path)] == [(10, 0.5)]


def train_args(root, out) -> list[str]:
    """Tiny model, 24 videos in batches of 4 (6 steps per epoch), 2 epochs, 2 loader workers, no
    checkpoint inside an epoch: the interrupted step is saved only because of the signal."""
    return [f"data.root={root}", "data.batch_size=4", "data.num_workers=2", "model.num_classes=6",
            "model.drop_path_rate=0.1", "optim.optimizer=adamw", "optim.lr=0.001", "optim.global_batch=4",
            "optim.epochs=2", "run.ckpt_every_steps=0", "run.log_every=1", f"run.output_dir={out}"]


def run(args: list[str]) -> subprocess.CompletedProcess:
    """Python in a new session (its own process group, so a group signal reaches only the run)."""
    env = {**os.environ, "PYTHONPATH": f"{REPO}:{REPO / 'tests'}", "OMP_NUM_THREADS": "2"}
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600, start_new_session=True)


@pytest.mark.slow
def test_ctrl_c_saves_the_step_and_the_rerun_resumes_exactly(small_synthetic, tmp_path):
    full, stopped = tmp_path / "full", tmp_path / "stopped"
    assert run(["-m", "video_iared.cli", "train", *train_args(small_synthetic, full)]).returncode == 0
    stopped.mkdir()  # an earlier attempt, stopped before its first checkpoint, left a row behind
    (stopped / "metrics.jsonl").write_text(json.dumps({"split": "train", "epoch": 0, "step": 2, "loss": 9.0})
                                           + "\n")
    proc = run(["tests/interrupt_at_step.py", "3", "INT", *train_args(small_synthetic, stopped)])
    assert proc.returncode == 130, proc.stderr[-3000:]
    saved = f"SIGINT: stopped at step 3 (epoch 1); checkpoint saved to {stopped / 'checkpoint.pth'}"
    assert saved in proc.stderr
    state = load_checkpoint(stopped / "checkpoint.pth")
    assert (state["epoch"], state["step_in_epoch"], state["global_step"]) == (0, 3, 3)

    proc = run(["-m", "video_iared.cli", "train", *train_args(small_synthetic, stopped)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resumed from step 3 (epoch 1)" in proc.stdout + proc.stderr
    a, b = load_checkpoint(full / "checkpoint.pth"), load_checkpoint(stopped / "checkpoint.pth")
    assert a["global_step"] == b["global_step"] == 12
    assert all(torch.equal(a["model"][key], b["model"][key]) for key in a["model"])
    steps = [row["step"] for row in read_metrics(stopped, "train") if "loss" in row]
    assert steps == list(range(1, 13))  # every step once
    losses = [[row["loss"] for row in read_metrics(d, "train") if "loss" in row] for d in (full, stopped)]
    assert losses[0] == losses[1]
