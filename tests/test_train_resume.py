"""Exact resume after SIGKILL (1 and 2 processes) and 1-vs-2-process agreement."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from video_iared.engine.checkpoint import load_checkpoint
from video_iared.engine.run_log import read_metrics

from train_helpers import run_python, torchrun_args

pytestmark = pytest.mark.slow


def overrides(root: Path, out: Path, *, batch: int, epochs: int, drop_path: float) -> list[str]:
    """Tiny model, training augmentation (jitter, crop position, flip), 2 loader workers, AdamW + EMA."""
    return [f"data.root={root}", f"data.batch_size={batch}", "data.num_workers=2",
            "model.num_classes=6", f"model.drop_path_rate={drop_path}",
            "optim.optimizer=adamw", "optim.lr=0.001", "optim.global_batch=8", "optim.schedule=cosine",
            "optim.warmup_epochs=0.5", f"optim.epochs={epochs}", "optim.ema_decay=0.9", "optim.clip_grad=1.0",
            "run.ckpt_every_steps=2", "run.log_every=1", f"run.output_dir={out}"]


def assert_same_state(a: Path, b: Path) -> None:
    sa, sb = load_checkpoint(a / "checkpoint.pth"), load_checkpoint(b / "checkpoint.pth")
    assert sa["global_step"] == sb["global_step"]
    for key in ("model", "ema"):
        assert sa[key].keys() == sb[key].keys()
        diff = [k for k in sa[key] if not torch.equal(sa[key][k], sb[key][k])]
        assert not diff, f"{key} differs in {diff[:5]}"
    opt_a, opt_b = sa["optimizer"], sb["optimizer"]
    assert opt_a["param_groups"] == opt_b["param_groups"]
    for index, state in opt_a["state"].items():
        for name, value in state.items():
            assert torch.equal(value, opt_b["state"][index][name]), f"optimizer state {index}.{name}"
    assert sa["scheduler"] == sb["scheduler"]
    losses = [[row["loss"] for row in read_metrics(d, "train")] for d in (a, b)]
    assert losses[0] == losses[1]


@pytest.mark.parametrize("nproc", [1, 2])
def test_sigkilled_run_resumes_exactly(small_synthetic, tmp_path, nproc):
    """24 videos, global batch 4: 6 steps per epoch, 2 epochs; killed after the step-8 checkpoint
    (second epoch, mid-epoch), then relaunched with the same command."""
    launch = torchrun_args(nproc) if nproc > 1 else []
    threads = 1 if nproc > 1 else 2
    batch = 4 // nproc
    full, killed = tmp_path / "full", tmp_path / "killed"
    run_python([*launch, "-m", "video_iared.cli", "train",
                *overrides(small_synthetic, full, batch=batch, epochs=2, drop_path=0.1)], threads=threads)
    args = overrides(small_synthetic, killed, batch=batch, epochs=2, drop_path=0.1)
    proc = run_python([*launch, "tests/kill_after_checkpoint.py", "8", *args], threads=threads, check=False)
    assert proc.returncode != 0
    state = load_checkpoint(killed / "checkpoint.pth")
    assert (state["epoch"], state["step_in_epoch"], state["global_step"]) == (1, 2, 8)
    run_python([*launch, "-m", "video_iared.cli", "train", *args], threads=threads)
    assert_same_state(full, killed)


def test_one_and_two_processes_agree(small_synthetic, tmp_path):
    """Same global batch (2 = 1 x 2 = 2 x 1), drop path off: the loss of each of 24 steps agrees."""
    one, two = tmp_path / "one", tmp_path / "two"
    run_python(["-m", "video_iared.cli", "train",
                *overrides(small_synthetic, one, batch=2, epochs=2, drop_path=0.0)])
    run_python([*torchrun_args(2), "-m", "video_iared.cli", "train",
                *overrides(small_synthetic, two, batch=1, epochs=2, drop_path=0.0)], threads=1)
    a, b = read_metrics(one, "train"), read_metrics(two, "train")
    assert len(a) == len(b) == 24
    for row_a, row_b in zip(a, b):
        assert row_a["loss"] == pytest.approx(row_b["loss"], abs=1e-5), row_a["step"]
