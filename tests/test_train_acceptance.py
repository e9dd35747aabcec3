"""Issue 6's acceptance on the tiny synthetic config: the paper's three stages, trained once per session."""
import pytest

pytestmark = pytest.mark.slow


def test_backbone_learns_the_synthetic_actions(tiny_pipeline):
    assert tiny_pipeline["backbone"]["top1"] >= 90.0


def test_interpreters_drop_tokens_at_little_cost(tiny_pipeline):
    dense, pruned = tiny_pipeline["backbone"], tiny_pipeline["interpreters"]
    assert pruned["keep"] <= 0.6
    assert pruned["top1"] >= dense["top1"] - 3.0
    assert pruned["gflops"] < dense["gflops"]


def test_finetune_recovers_dense_accuracy(tiny_pipeline):
    dense, tuned = tiny_pipeline["backbone"], tiny_pipeline["finetune"]
    assert tuned["top1"] >= dense["top1"] - 1.0
    assert tuned["keep"] <= 0.6
