"""Issue 6's acceptance of stages 2 and 3 on the tiny synthetic config (the backbone's is in
test_learnability.py); ``make acceptance`` runs them."""
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.acceptance]


def _figures(results: dict) -> str:
    return "; ".join(f"{stage}: top1 {r['top1']:.1f} %, keep {r.get('keep', 1.0):.3f}, {r['gflops']:.4f} GFLOPs"
                     for stage, r in results.items())


def test_interpreters_drop_tokens_at_little_cost(tiny_pipeline):
    dense, pruned = tiny_pipeline["backbone"], tiny_pipeline["interpreters"]
    assert pruned["keep"] <= 0.6, _figures(tiny_pipeline)
    assert pruned["top1"] >= dense["top1"] - 3.0, _figures(tiny_pipeline)
    assert pruned["gflops"] < dense["gflops"], _figures(tiny_pipeline)


def test_finetune_recovers_dense_accuracy(tiny_pipeline):
    dense, tuned = tiny_pipeline["backbone"], tiny_pipeline["finetune"]
    assert tuned["top1"] >= dense["top1"] - 1.0, _figures(tiny_pipeline)
    assert tuned["keep"] <= 0.6, _figures(tiny_pipeline)
