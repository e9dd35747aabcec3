"""Atomic checkpoint files and RNG state capture."""
import os
import random

import numpy as np
import pytest
import torch

from video_iared.engine import checkpoint as ckpt


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path, monkeypatch):
    path = ckpt.checkpoint_path(tmp_path)
    assert ckpt.find_checkpoint(tmp_path) is None
    ckpt.save_checkpoint({"step": 1, "w": torch.ones(3)}, path)
    assert ckpt.find_checkpoint(tmp_path) == path

    def killed_while_writing(obj, handle):
        handle.write(b"half a checkpoint")
        raise KeyboardInterrupt  # stands in for a kill during torch.save

    monkeypatch.setattr(torch, "save", killed_while_writing)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint({"step": 2}, path)
    monkeypatch.undo()
    assert ckpt.load_checkpoint(path)["step"] == 1  # the last good checkpoint survives
    for stale in tmp_path.glob(".*.tmp*"):
        os.remove(stale)
    ckpt.save_checkpoint({"step": 3}, path)
    assert ckpt.load_checkpoint(path)["step"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == [ckpt.CHECKPOINT_NAME]


def test_rng_state_round_trips_through_a_weights_only_file(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    ckpt.save_checkpoint({"rng": ckpt.rng_state()}, tmp_path / "c.pth")
    expected = (random.random(), np.random.rand(), torch.rand(2))
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    ckpt.set_rng_state(ckpt.load_checkpoint(tmp_path / "c.pth")["rng"])
    got = (random.random(), np.random.rand(), torch.rand(2))
    assert got[:2] == expected[:2] and torch.equal(got[2], expected[2])
