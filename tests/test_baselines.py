"""Training-free baselines: exact budgets, CLS-attention scores, ToMe matching and merging, and the
oracle references (actor-mask coverage, per-sample counts)."""
import pytest
import torch
from einops import rearrange

from video_iared import baselines
from video_iared.flops import model_macs, shape_of
from video_iared.models import TimeSformer, capture_cls_attention
from video_iared.models.layers import attention_weights

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
    assert out.kept_per_group.tolist() == [[0.5, 0.25]] * 3  # 32 and 16 of 64 tokens in every sample
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


def test_tome_proportional_attention_is_one_sdpa_call_with_a_log_size_bias(model, clip, monkeypatch):
    """Merged tokens weigh as the tokens they replaced: the SDPA call with log(size) as a key bias equals
    the softmax written out (ToMe's formulation)."""
    with torch.no_grad():
        fused, left = baselines.tome_forward(model, clip, 3)
        scale = model.blocks[0].attn.scale
        explicit_attend = lambda q, k, v, bias: attention_weights(q, k, scale, bias) @ v   # noqa: E731
        monkeypatch.setattr(baselines, "attend", explicit_attend)
        explicit, _ = baselines.tome_forward(model, clip, 3)
    assert left.tolist()[-1] < 16 and (fused - explicit).abs().max() <= 1e-5


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


# ---------------------------------------------------------------------------------------------
# Oracle references: actor-mask coverage scores and per-sample counts


def actor_masks() -> torch.Tensor:
    """(3, 4, 32, 32) masks on the 4 x 4 patch grid of TINY: sample 0 covers 24 pixels of location 0 in
    every frame (4 tokens), sample 1 16 to 36 pixels of locations 5, 6, 9, 10 in frame 2 (4 tokens) and 3
    pixels of location 15 in frame 3 (1 token), sample 2 nothing."""
    masks = torch.zeros(3, 4, 32, 32, dtype=torch.uint8)
    masks[0, :, 0:8, 0:3] = 1
    masks[1, 2, 10:20, 10:20] = 255
    masks[1, 3, 31, 29:32] = 1
    return masks


def test_mask_coverage_values_in_the_token_order():
    masks = torch.zeros(1, 2, 4, 4, dtype=torch.uint8)  # T = 2 frames, 2 x 2 patches of 2 x 2 pixels
    masks[0, 0, 0, 0] = 1          # frame 0, location 0: 1 of 4 pixels
    masks[0, 1, 0:2, 2:4] = 7      # frame 1, location 1 (top right): all of it, any nonzero value
    masks[0, 0, 2:4, 0] = 1        # frame 0, location 2 (bottom left): 2 of 4
    # token j = location j // T of frame j % T
    assert baselines.mask_coverage(masks, 2).tolist() == [[0.25, 0.0, 0.0, 1.0, 0.5, 0.0, 0.0, 0.0]]


def test_mask_coverage_matches_the_models_token_layout():
    """A patch embedding that averages channel 0 over each patch makes every token's feature 0 its
    coverage: the scorer's order is the model's."""
    net = TimeSformer(**TINY).eval()
    with torch.no_grad():
        net.patch_embed.proj.weight.zero_()
        net.patch_embed.proj.weight[0, 0] = 1 / 64
        net.patch_embed.proj.bias.zero_()
        net.pos_embed.zero_()
        net.time_embed.zero_()
        masks = actor_masks()
        state = net.embed(masks[:, None].expand(-1, 3, -1, -1, -1).float().clamp(max=1))
    assert torch.allclose(state.patches[:, 0].view(3, 64), baselines.mask_coverage(masks, 8))


def test_oracle_scores_rank_by_coverage_and_break_ties_at_random():
    masks = actor_masks()
    coverage = baselines.mask_coverage(masks, 8)
    scores = baselines.oracle_scores(masks, 8, torch.Generator().manual_seed(0))
    again = baselines.oracle_scores(masks, 8, torch.Generator().manual_seed(0))
    assert torch.equal(scores, again)
    assert bool(((scores - coverage) >= 0).all() and ((scores - coverage) < 0.5 / 64).all())
    present = torch.ones(3, 64, dtype=torch.bool)
    keep = baselines.keep_top(scores, present, 4)
    assert torch.equal(keep[0], coverage[0] > 0)  # the 4 covered tokens first
    assert torch.equal(keep[1], coverage[1] >= 16 / 64)  # the 3/64-covered token comes fifth
    # without an actor every token ties: each sample draws its own, not the same positions
    empty = baselines.oracle_scores(torch.zeros(2, 4, 32, 32), 8, torch.Generator().manual_seed(0))
    background = baselines.keep_top(empty, present[:2], 4)
    assert background.sum(1).tolist() == [4, 4] and not torch.equal(background[0], background[1])


def expected_actor_keep(masks: torch.Tensor) -> torch.Tensor:
    """(B, T, N) the tokens each mask touches, from the pixels directly."""
    touched = masks.view(3, 4, 4, 8, 4, 8).amax((3, 5)) > 0  # (B, T, h, w)
    return touched.flatten(2)


def expected_tube_keep(masks: torch.Tensor) -> torch.Tensor:
    """(B, T, N) every location some frame's mask touches, in every frame."""
    touched = expected_actor_keep(masks)
    return touched.any(1, keepdim=True).expand_as(touched)


def test_tube_coverage_is_each_locations_largest_coverage_in_every_frame():
    masks = actor_masks()
    tube = rearrange(baselines.tube_coverage(masks, 8, 4), "b (n t) -> b t n", t=4)
    assert torch.equal(tube > 0, expected_tube_keep(masks))
    assert tube[1, 0, 15].item() == pytest.approx(3 / 64)  # frame 0 inherits frame 3's coverage


def test_actor_tube_keeps_exactly_the_tube(model, clip):
    masks = actor_masks()
    expected = expected_tube_keep(masks)
    coverage = baselines.tube_coverage(masks, 8, 4)
    with torch.no_grad():
        logits, kept = baselines.drop_tokens(model, clip, [1], [(coverage > 0).sum(1)],
                                             lambda block, state: coverage)
        out = baselines.actor_tube_predictor(model, 1)(clip, masks)
        state = model.forward_blocks(model.embed(clip), 0, 1)
        state = state.select(rearrange(expected, "b t n -> b (n t)"))
        reference = model.head(model.pool(model.forward_blocks(state, 1)))
    assert torch.equal(kept[0], expected)
    assert expected.sum((1, 2)).tolist() == [4, 20, 0]  # 1 and 5 locations x 4 frames
    assert out.kept_per_group.flatten().tolist() == [4 / 64, 20 / 64, 0.0]
    assert torch.allclose(out.logits, reference, atol=1e-5) and torch.allclose(logits, reference, atol=1e-5)


def test_random_same_count_keeps_the_same_counts_elsewhere(model, clip):
    masks = actor_masks()
    with torch.no_grad():
        actor = baselines.actor_tube_predictor(model, 1)(clip, masks)
        rand = baselines.random_same_count_predictor(model, 1, seed=0)(clip, masks)
        again = baselines.random_same_count_predictor(model, 1, seed=0)(clip, masks)
        counts = (baselines.tube_coverage(masks, 8, 4) > 0).sum(1)
        _, kept = baselines.drop_tokens(model, clip, [1], [counts],
                                        baselines.random_scores(torch.Generator().manual_seed(0)))
    assert torch.equal(rand.kept_per_group, actor.kept_per_group) and torch.equal(rand.logits, again.logits)
    assert kept[0].sum((1, 2)).tolist() == [4, 20, 0]
    assert not torch.equal(kept[0], expected_tube_keep(masks))


def test_per_sample_count_drop_costs_what_the_counter_says(model, clip):
    masks = actor_masks()
    with torch.no_grad():
        out = baselines.actor_tube_predictor(model, 1)(clip, masks)
    shape = shape_of(model)
    reference = model_macs(shape, group_starts=[1], group_keep=[expected_tube_keep(masks)],
                           interpreter_heads=0)
    assert torch.equal(out.macs, reference)
    dense = model_macs(shape).item()
    assert out.macs[0] < dense and out.macs[2] < out.macs[0] and len(set(out.macs.tolist())) == 3


def test_oracle_predictor_keeps_the_budget_at_no_scorer_cost(model, clip):
    masks = actor_masks()
    with torch.no_grad():
        oracle = baselines.oracle_predictor(model, [1, 3], [0.5, 0.0625])(clip, masks)
        rand = baselines.random_predictor(model, [1, 3], [0.5, 0.0625])(clip)
    assert oracle.kept_per_group.tolist() == rand.kept_per_group.tolist() == [[0.5, 0.0625]] * 3  # 32, 4
    scores = baselines.oracle_scores(masks, 8, torch.Generator().manual_seed(0))
    with torch.no_grad():
        _, kept = baselines.drop_tokens(model, clip, [1, 3], [32, 4], lambda block, state: scores)
    keep = [k.cpu() for k in kept]
    assert torch.equal(oracle.macs, model_macs(shape_of(model), group_starts=[1, 3], group_keep=keep,
                                               interpreter_heads=0))
    assert torch.equal(kept[1][0], expected_actor_keep(masks)[0])  # sample 0: its 4 covered tokens last


def test_per_sample_counts_must_not_grow(model, clip):
    grow = [torch.tensor([3, 2, 1]), torch.tensor([4, 1, 1])]
    with pytest.raises(ValueError, match="non-increasing"):
        baselines.drop_tokens(model, clip, [0, 2], grow, lambda block, state: torch.rand(3, 64))
    with pytest.raises(ValueError, match="do not match"):
        baselines.actor_tube_predictor(model, 1)(clip, actor_masks()[:, :, :16])


def test_tome_on_deit_is_tome_as_published_and_r0_is_dense():
    from video_iared.models import DeiT

    torch.manual_seed(0)
    deit = DeiT(img_size=32, patch_size=4, embed_dim=32, depth=3, num_heads=2, num_classes=3).eval()
    with torch.no_grad():
        for param in deit.parameters():
            param.add_(0.2 * torch.randn_like(param))
        images = torch.randn(2, 3, 32, 32)
        logits, left = baselines.tome_forward(deit, images, 0)
        assert torch.allclose(logits, deit(images), atol=1e-5) and left.tolist() == [64, 64, 64]
        out = baselines.tome_predictor(deit, 8)(images)
    assert out.kept_per_group.tolist() == [[56 / 64, 48 / 64, 40 / 64]] * 2      # 8 tokens merged per block
    assert float(out.macs[0]) < model_macs(shape_of(deit)).item()
