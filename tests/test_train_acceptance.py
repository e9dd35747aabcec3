"""Issue 6's acceptance of stages 2 and 3 on the tiny synthetic config (the backbone's is in
test_learnability.py), on the demo's training schedule (``video_iared.demo.TRAINING``)."""
import pytest

from video_iared.demo import FINAL

pytestmark = pytest.mark.slow


def _figures(results: dict) -> str:
    return "; ".join(f"{stage}: top1 {r['top1']:.1f} %, keep {r.get('keep', 1.0):.3f}, {r['gflops']:.4f} GFLOPs"
                     for stage, r in results.items())


def test_interpreters_drop_tokens_at_little_cost(tiny_pipeline):
    """Stage 2 as the paper runs it: interpreters against the frozen stage-1 (dense) backbone."""
    dense, pruned = tiny_pipeline["backbone"], tiny_pipeline["interpreters"]
    assert pruned["keep"] <= 0.6, _figures(tiny_pipeline)
    assert pruned["top1"] >= dense["top1"] - 3.0, _figures(tiny_pipeline)
    assert pruned["gflops"] < dense["gflops"], _figures(tiny_pipeline)


def test_finetune_recovers_dense_accuracy(tiny_pipeline):
    """The deployed model, fine-tuned at the end of the schedule: within 1 point of dense, ~2x fewer GFLOPs."""
    dense, tuned = tiny_pipeline["backbone"], tiny_pipeline[FINAL]
    assert tuned["top1"] >= dense["top1"] - 1.0, _figures(tiny_pipeline)
    assert tuned["keep"] <= 0.6, _figures(tiny_pipeline)
    assert tuned["gflops"] <= dense["gflops"] / 2, _figures(tiny_pipeline)
