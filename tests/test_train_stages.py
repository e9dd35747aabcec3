"""What each stage trains and freezes, the curriculum, and what the interpreters stage logs."""
from __future__ import annotations

import pytest
import torch

from video_iared.config import load_config
from video_iared.engine.checkpoint import load_checkpoint
from video_iared.engine.run_log import read_metrics
from video_iared.engine.train import train

pytestmark = pytest.mark.slow


def _run(root, out, stage: str, weights: str = "", *extra: str) -> dict:
    cfg = load_config(None, [f"data.root={root}", "data.batch_size=8", "data.num_workers=0",
                             "model.num_classes=6", "optim.optimizer=adamw", "optim.lr=0.003",
                             "optim.global_batch=8", "optim.epochs=2", "run.log_every=1",
                             f"run.output_dir={out}", f"iared.stage={stage}", f"model.weights={weights}",
                             *(["model.group_starts=[1,2,3]"] if stage != "backbone" else []), *extra])
    return train(cfg)


def _split(state: dict) -> tuple[dict, dict]:
    model = state["model"]
    return ({k: v for k, v in model.items() if k.startswith("interpreters.")},
            {k: v for k, v in model.items() if not k.startswith("interpreters.")})


def test_each_stage_trains_only_its_part(small_synthetic, tmp_path):
    _run(small_synthetic, tmp_path / "bb", "backbone")
    dense = load_checkpoint(tmp_path / "bb" / "checkpoint.pth")["model"]
    result = _run(small_synthetic, tmp_path / "int", "interpreters", str(tmp_path / "bb" / "checkpoint.pth"),
                  "iared.curriculum_epochs=[0,1,1]")
    interp, backbone = _split(load_checkpoint(tmp_path / "int" / "checkpoint.pth"))
    assert all(torch.equal(v, dense[k.removeprefix("backbone.")]) for k, v in backbone.items())
    assert {"kept_share", "kept_share_g0", "kept_share_g1", "kept_share_g2", "gflops", "top1"} \
        <= result.keys()

    # curriculum: in epoch 0 only group 0 decides, groups 1 and 2 keep what it kept
    rows = read_metrics(tmp_path / "int", "train")
    assert {"reward", "acc", "kept_share"} <= rows[0].keys()
    first = [r for r in rows if r["epoch"] == 0]
    assert all(r["kept_share_g0"] == r["kept_share_g1"] == r["kept_share_g2"] for r in first)
    val = read_metrics(tmp_path / "int", "val")
    assert [r["epoch"] for r in val] == [0, 1] and val[0]["kept_share_g1"] == val[0]["kept_share_g0"]

    _run(small_synthetic, tmp_path / "ft", "finetune", str(tmp_path / "int" / "checkpoint.pth"))
    tuned_interp, tuned_backbone = _split(load_checkpoint(tmp_path / "ft" / "checkpoint.pth"))
    assert all(torch.equal(v, interp[k]) for k, v in tuned_interp.items())
    assert not all(torch.equal(v, backbone[k]) for k, v in tuned_backbone.items())
