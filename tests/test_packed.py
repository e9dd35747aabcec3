"""Packed execution (dropped tokens physically removed) against the dense model and a masked reference."""
import pytest
import torch
from einops import rearrange
from timesformer_reference import randomize, reference_forward

from video_iared.models import TimeSformer
from video_iared.models.iared import IARed

TYPES = ["divided_space_time", "joint_space_time", "space_only"]
B, T, GRID = 3, 4, 4   # 3 clips of 4 frames, 4x4 locations
N = GRID * GRID


def build(attention_type: str, dtype=torch.float32) -> TimeSformer:
    model = TimeSformer(img_size=32, patch_size=8, embed_dim=32, depth=3, num_heads=4, num_frames=T,
                        num_classes=5, drop_path_rate=0.0, attention_type=attention_type).eval()
    randomize(model)
    return model.to(dtype)


def keep_patterns() -> list[torch.Tensor]:
    """Per group (B, T, N): different counts per sample, an empty frame, a location kept in one frame."""
    gen = torch.Generator().manual_seed(3)
    first = torch.rand(B, T, N, generator=gen) < 0.6
    first[0, 2] = False                 # sample 0: frame 2 loses every token
    first[1, :, 5] = False
    first[1, 3, 5] = True               # sample 1: location 5 kept in frame 3 only
    first[2] = True                     # sample 2 keeps everything at first
    second = first & (torch.rand(B, T, N, generator=gen) < 0.7)
    second[2, :, :8] = False            # ... then drops half
    return [first, second]


def per_block(patterns: list[torch.Tensor], starts=(0, 2), depth=3) -> list[torch.Tensor]:
    ends = list(starts[1:]) + [depth]
    return [p for p, s, e in zip(patterns, starts, ends) for _ in range(s, e)]


@pytest.mark.parametrize("attention_type", TYPES)
def test_all_kept_equals_dense(attention_type):
    model = build(attention_type)
    iared = IARed(model, group_starts=(0, 2), interpreter_heads=2).eval()
    clip = torch.randn(B, 3, T, 32, 32)
    everything = [torch.ones(B, T, N, dtype=torch.bool)] * 2
    with torch.no_grad():
        dense = model(clip)
        assert (iared(clip, keep=everything).logits - dense).abs().max() <= 1e-5
        assert (iared(clip, decision="none").logits - dense).abs().max() <= 1e-5
        # the same tokens through a packed (index-gathered) layout: force a non-trivial plan
        state = model.embed(clip)
        state = state.select(torch.ones(B, T * N, dtype=torch.bool))
        assert state.layout.index is not None
        packed = model.head(model.pool(model.forward_blocks(state)))
    assert (packed - dense).abs().max() <= 1e-5


@pytest.mark.parametrize("attention_type", TYPES)
def test_given_keep_pattern_equals_masked_reference(attention_type):
    model = build(attention_type)
    iared = IARed(model, group_starts=(0, 2), interpreter_heads=2).eval()
    clip = torch.randn(B, 3, T, 32, 32)
    patterns = keep_patterns()
    with torch.no_grad():
        out = iared(clip, keep=patterns)
        # final patch rows of the kept tokens, from the packed state
        state = model.embed(clip).select(rearrange(patterns[0], "b t n -> b (n t)"))
        state = model.forward_blocks(state, 0, 2).select(rearrange(patterns[1], "b t n -> b (n t)"))
        state = model.forward_blocks(state, 2)
    sd = {k: v.double() for k, v in model.state_dict().items()}
    ref_logits, ref_tokens = reference_forward(sd, clip.double(), patch=8, heads=4, depth=3,
                                               attention_type=attention_type, keep=per_block(patterns))
    assert (out.logits.double() - ref_logits).abs().max() <= 1e-5
    assert torch.equal(out.groups[1].keep, patterns[0] & patterns[1])
    assert out.groups[1].keep.sum(2)[0, 2] == 0            # frame 2 of sample 0 kept nothing
    rows = rearrange(ref_tokens, "b t n d -> b (n t) d")[rearrange(patterns[1], "b t n -> b (n t)")]
    assert state.patches.shape == rows.shape
    assert (state.patches.double() - rows).abs().max() <= 1e-5


@pytest.mark.parametrize("attention_type", ["divided_space_time", "joint_space_time"])
def test_gradients_equal_masked_reference(attention_type):
    model = build(attention_type, torch.float64).train()
    iared = IARed(model, group_starts=(0, 2), interpreter_heads=2).double()
    clip = torch.randn(B, 3, T, 32, 32, dtype=torch.float64)
    patterns = keep_patterns()
    iared(clip, keep=patterns).logits.square().sum().backward()
    sd = {k: v.detach().clone().requires_grad_() for k, v in model.state_dict().items()}
    ref, _ = reference_forward(sd, clip, patch=8, heads=4, depth=3, attention_type=attention_type,
                               keep=per_block(patterns))
    ref.square().sum().backward()
    worst = max((p.grad - sd[name].grad).abs().max() / (sd[name].grad.abs().max() + 1e-12)
                for name, p in model.named_parameters())
    assert model.blocks[2].mlp.fc1.weight.grad.abs().max() > 0
    assert worst <= 1e-9


def test_empty_sample_and_empty_batch():
    """A clip may lose every token (threshold mode); even the whole batch may."""
    model = build("divided_space_time")
    clip = torch.randn(B, 3, T, 32, 32)
    with torch.no_grad():
        none = torch.zeros(B, T * N, dtype=torch.bool)
        state = model.forward_blocks(model.embed(clip).select(none))
        assert state.patches.shape == (0, 32) and torch.isfinite(model.pool(state)).all()
        some = none.clone()
        some[1, :5] = True
        state = model.forward_blocks(model.embed(clip).select(some))
        assert state.patches.shape == (5, 32) and torch.isfinite(state.patches).all()
        dense = state.patches.new_zeros(B * T * N, 32).index_copy(0, state.layout.flat, state.patches)
        dense = dense.view(B, T * N, 32)
        assert dense[0].abs().sum() == 0 and dense[1, :5].abs().sum() > 0


def test_packed_training_with_checkpointing_and_bf16_autocast():
    model = build("divided_space_time")
    model.set_grad_checkpointing(True)
    iared = IARed(model, group_starts=(0, 2), interpreter_heads=2, decision="sample").train()
    clip = torch.randn(B, 3, T, 32, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = iared(clip)
        loss = out.logits.float().logsumexp(1).sum() - out.log_prob.sum()
    loss.backward()
    assert out.groups[1].kept.lt(N * T).all()
    assert torch.isfinite(model.blocks[2].attn.qkv.weight.grad).all()
    assert model.blocks[2].attn.qkv.weight.grad.abs().sum() > 0
    assert iared.interpreters[1].qk.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("attention_type", TYPES)
def test_masking_equals_removal(attention_type):
    """The masking baseline (dropped tokens kept as rows, hidden as keys) gives the packed results."""
    model = build(attention_type)
    clip = torch.randn(B, 3, T, 32, 32)
    first, second = (rearrange(p, "b t n -> b (n t)") for p in keep_patterns())
    with torch.no_grad():
        packed = model.forward_blocks(model.embed(clip).select(first), 0, 2).select(second)
        masked = model.forward_blocks(model.embed(clip).hide(first), 0, 2).hide(second)
        packed, masked = model.forward_blocks(packed, 2), model.forward_blocks(masked, 2)
    assert masked.patches.shape[0] == B * T * N and torch.isfinite(masked.patches).all()
    assert (model.pool(masked) - model.pool(packed)).abs().max() <= 1e-5
    kept = (first & second).flatten()
    assert (masked.patches[kept] - packed.patches).abs().max() <= 1e-5


@pytest.mark.parametrize("attention_type", ["divided_space_time", "space_only"])
def test_frames_packed_into_short_sequences_equal_masking(attention_type):
    """With 25 locations a frame that keeps few tokens gets a short spatial sequence (a multiple of 16
    + CLS, not 26 slots); results and gradients are those of masking."""
    torch.manual_seed(0)
    model = TimeSformer(img_size=40, patch_size=8, embed_dim=32, depth=2, num_heads=4, num_frames=T,
                        num_classes=5, drop_path_rate=0.0, attention_type=attention_type).eval()
    randomize(model)
    clip = torch.randn(B, 3, T, 40, 40, requires_grad=True)
    keep = torch.rand(B, 25 * T, generator=torch.Generator().manual_seed(1)) < 0.4
    packed = model.embed(clip).select(keep)
    assert packed.layout.frame_sequences.length == 17                    # 1 + 16 < 1 + 25
    packed = model.forward_blocks(packed)
    masked = model.forward_blocks(model.embed(clip).hide(keep))
    assert (model.pool(masked) - model.pool(packed)).abs().max() <= 1e-5
    assert (masked.patches[keep.flatten()] - packed.patches).abs().max() <= 1e-5
    grad_packed, = torch.autograd.grad(model.pool(packed).sum(), clip)
    grad_masked, = torch.autograd.grad(model.pool(masked).sum(), clip)
    assert (grad_packed - grad_masked).abs().max() <= 1e-5


def test_hiding_after_a_data_dependent_drop_equals_hiding_twice():
    """A layout packed to short frame sequences, then masked: its plan goes back to N + 1 slots."""
    torch.manual_seed(0)
    model = TimeSformer(img_size=40, patch_size=8, embed_dim=32, depth=2, num_heads=4, num_frames=T,
                        num_classes=5, drop_path_rate=0.0).eval()
    randomize(model)
    clip = torch.randn(B, 3, T, 40, 40)
    gen = torch.Generator().manual_seed(2)
    first = torch.rand(B, 25 * T, generator=gen) < 0.4
    second = torch.rand(B, 25 * T, generator=gen) < 0.7
    with torch.no_grad():
        packed = model.embed(clip).select(first).hide(second)
        assert packed.layout.longest_frame is not None
        packed = model.forward_blocks(packed)
        masked = model.forward_blocks(model.embed(clip).hide(first).hide(second))
    assert (model.pool(masked) - model.pool(packed)).abs().max() <= 1e-5
