"""Training-free baselines: exact budgets, CLS-attention scores, ToMe matching and merging."""
import pytest
import torch

from video_iared import baselines
from video_iared.flops import model_macs, shape_of
from video_iared.models import TimeSformer, capture_cls_attention

TINY = dict(img_size=32, patch_size=8, embed_dim=32, depth=4, num_heads=4, num_frames=4, num_classes=7)


@pytest.fixture(scope="module")
def model() -> TimeSformer:
    torch.manual_seed(0)
    net = TimeSformer(**TINY).eval()
    with torch.no_grad():
        for name, param in net.named_parameters():
            if "temporal_fc" not in name:  # zero temporal_fc: block input = spatial-step input
                param.add_(0.2 * torch.randn_like(param))
    return net


@pytest.fixture(scope="module")
def clip() -> torch.Tensor:
    return torch.randn(3, 3, 4, 32, 32, generator=torch.Generator().manual_seed(1))


def test_budget_counts_rounding_and_errors():
    assert baselines.budget_counts([0.7, 0.49, 0.343], 64) == [45, 31, 22]
    with pytest.raises(ValueError, match="non-increasing"):
        baselines.budget_counts([0.5, 0.7], 64)


@pytest.mark.parametrize("make", [baselines.random_predictor, baselines.topk_predictor])
def test_drop_baselines_keep_exactly_the_budget(model, clip, make):
    with torch.no_grad():
        out = make(model, [1, 3], [0.5, 0.25])(clip)
    assert out.keep.tolist() == [[0.5, 0.25]] * 3  # 32 and 16 of 64 tokens in every sample
    assert out.logits.shape == (3, 7)
    assert bool((out.macs < model_macs(shape_of(model))).all())


def test_full_budget_random_equals_dense(model, clip):
    with torch.no_grad():
        out = baselines.random_predictor(model, [0, 2], [1.0, 1.0])(clip)
        assert torch.allclose(out.logits, model(clip), atol=1e-5)
    assert out.macs.tolist() == [model_macs(shape_of(model)).item()] * 3  # random scores are free


def test_cls_attention_scores_equal_the_blocks_attention_row(model, clip):
    """Dense and after a drop: the folded scores equal block 0's captured CLS row (temporal_fc = 0)."""
    state = model.embed(clip)
    keep = torch.rand(3, 64, generator=torch.Generator().manual_seed(2)) < 0.6
    for current in (state, state.select(keep)):
        with torch.no_grad(), capture_cls_attention(model) as rows:
            scores = baselines.cls_attention_scores(model.blocks[0], current)
            model.blocks[0](current)
        layout = current.layout
        captured = rows["blocks.0.attn"].mean(1)  # (B*T, L): the CLS copy of each frame
        ref = layout.frame_sequences.scatter(captured[..., None])[layout.batch * layout.frames:, 0]
        present = layout.keep_mask()
        assert torch.allclose(scores[present], ref, atol=1e-6)
        assert bool((scores[~present] == 0).all())


def test_bipartite_matching_merges_exactly_r():
    metric = torch.randn(2, 9, 5, generator=torch.Generator().manual_seed(3))
    for r in range(5):
        slot = baselines.bipartite_matching(metric, r)
        assert [len(torch.unique(s)) for s in slot] == [9 - r, 9 - r]
        assert slot.max().item() == 8 - r
    with pytest.raises(ValueError, match="at most 4 of 9"):
        baselines.bipartite_matching(metric, 5)


def test_bipartite_matching_merges_the_most_similar_pair():
    metric = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [0.9, 0.1], [1.0, 0.01]]])  # A = {0, 2}, B = {1, 3}
    assert baselines.bipartite_matching(metric, 1).tolist() == [[2, 0, 1, 2]]  # 0 joins 3


def test_merge_tokens_weights_by_size():
    x = torch.tensor([[[1.0], [4.0], [10.0]]])
    size = torch.tensor([[3.0, 1.0, 2.0]])
    merged, new_size = baselines.merge_tokens(x, size, torch.tensor([[0, 0, 1]]), 2)
    assert merged.flatten().tolist() == [pytest.approx(7 / 4), 10.0]
    assert new_size.tolist() == [[4.0, 2.0]]


def test_tome_r0_is_dense_and_merging_lowers_cost(model, clip):
    with torch.no_grad():
        logits, left = baselines.tome_forward(model, clip, 0)
        assert torch.allclose(logits, model(clip), atol=1e-5)
        _, left = baselines.tome_forward(model, clip, 3)
    schedule = baselines.tome_schedule(16, 4, 3)
    assert left.tolist() == [13, 10, 7, 4] == [16 - sum(schedule[:i + 1]) for i in range(4)]
    shape = shape_of(model)
    assert baselines.tome_macs(shape, 0) == model_macs(shape).item()
    assert baselines.tome_macs(shape, 3) < baselines.tome_macs(shape, 1) < baselines.tome_macs(shape, 0)
