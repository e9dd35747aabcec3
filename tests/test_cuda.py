"""The packed path on a GPU: no device-to-host sync in dense and budget forwards, bf16 close to float32.

Skipped without CUDA (CI has none); run on a GPU machine with ``pytest tests/test_cuda.py``.
"""
import pytest
import torch

from video_iared.models import IARed, TimeSformer

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
BUDGET = [0.7, 0.5, 0.3]


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    backbone = TimeSformer(img_size=224, embed_dim=192, depth=6, num_heads=3, num_frames=8).cuda().eval()
    return backbone, IARed(backbone, group_starts=(0, 2, 4), decision="budget", budgets=BUDGET).cuda().eval()


def test_dense_and_budget_forwards_never_sync(models):
    backbone, iared = models
    clip = torch.randn(4, 3, 8, 224, 224, device="cuda")
    with torch.no_grad():
        backbone(clip), iared(clip)                      # warm-up: lazy initialisation may sync once
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")          # any device-to-host sync raises
        try:
            for _ in range(2):                           # fresh inputs
                clip = torch.randn(4, 3, 8, 224, 224, device="cuda")
                backbone(clip)
                iared(clip)
        finally:
            torch.cuda.set_sync_debug_mode("default")


@pytest.mark.parametrize("decision", ["budget", "threshold"])
def test_bf16_matches_float32(models, decision):
    backbone, iared = models
    clip = torch.randn(4, 3, 8, 224, 224, device="cuda")
    with torch.no_grad():
        ref = iared(clip, decision=decision)
        keep = [g.keep for g in ref.groups]               # the same tokens in both precisions
        with torch.autocast("cuda", dtype=torch.bfloat16):
            low = iared(clip, keep=keep).logits.float()
    assert (low - ref.logits).norm() <= 1e-2 * ref.logits.norm()


def test_training_step_runs_and_has_gradients(models):
    backbone, iared = models
    iared.train()
    try:
        clip = torch.randn(2, 3, 8, 224, 224, device="cuda")
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = iared(clip, decision="sample")
            loss = out.logits.float().logsumexp(1).sum() - out.log_prob.sum()
        loss.backward()
        grads = [p.grad for p in iared.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)
    finally:
        iared.eval()
        iared.zero_grad(set_to_none=True)


def test_budget_forward_replays_as_a_cuda_graph(models):
    """The budget forward has static shapes and no host reads, so a captured CUDA graph replays it
    on new inputs with the eager results."""
    _, iared = models
    static = torch.randn(4, 3, 8, 224, 224, device="cuda")
    with torch.no_grad():
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):                   # warm-up off the default stream, as capture wants
            iared(static)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            captured = iared(static).logits
        fresh = torch.randn_like(static)
        static.copy_(fresh)
        graph.replay()
        assert (captured - iared(fresh).logits).abs().max() <= 1e-4
