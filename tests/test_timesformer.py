"""TimeSformer: official state-dict keys, parity with a loop reference, checkpointing, AMP."""
import pytest
import torch
from timesformer_reference import randomize, reference_forward

import timm
import video_iared  # noqa: F401  registers the variants in timm
from video_iared.models import Attention, TimeSformer, capture_cls_attention, get_model_info

TINY = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=4, num_frames=4, num_classes=7)


def official_keys(depth: int, attention_type: str) -> set[str]:
    keys = {"cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias",
            "norm.weight", "norm.bias", "head.weight", "head.bias"}
    if attention_type != "space_only":
        keys.add("time_embed")
    block = ["norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2"]
    if attention_type == "divided_space_time":
        block += ["temporal_norm1", "temporal_attn.qkv", "temporal_attn.proj", "temporal_fc"]
    for i in range(depth):
        keys |= {f"blocks.{i}.{m}.{p}" for m in block for p in ("weight", "bias")}
    return keys


@pytest.mark.parametrize("attention_type", ["divided_space_time", "joint_space_time", "space_only"])
def test_state_dict_keys_are_official(attention_type):
    model = TimeSformer(**TINY, attention_type=attention_type)
    assert set(model.state_dict()) == official_keys(TINY["depth"], attention_type)


def test_registered_base_model_size_and_init():
    model = timm.create_model("timesformer_base_patch16_224", num_frames=8)
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(121.6e6, rel=2e-3)
    assert model.blocks[0].norm1.eps == 1e-6
    assert all(b.temporal_fc.weight.count_nonzero() == 0 for b in model.blocks)


def test_registry_variants_and_metadata():
    tiny = timm.create_model("timesformer_tiny_patch8_32", num_frames=4, num_classes=3)
    assert (tiny.num_frames, tiny.num_classes, tiny.embed_dim) == (4, 3, 96)
    hr, large = get_model_info("timesformer_hr_patch16_448"), get_model_info("timesformer_large_patch16_224")
    assert (hr.num_frames, hr.sampling_rate, hr.crop_size) == (16, 16, 448)
    assert (large.num_frames, large.sampling_rate, large.crop_size) == (96, 4, 224)
    assert get_model_info("timesformer_base_patch16_224").mean == (0.45, 0.45, 0.45)
    with pytest.raises(ValueError, match="no weights are downloaded"):
        timm.create_model("timesformer_tiny_patch8_32", pretrained=True)


@pytest.mark.parametrize("attention_type", ["divided_space_time", "joint_space_time", "space_only"])
def test_matches_loop_reference_other_frames_and_size(attention_type):
    torch.manual_seed(0)
    model = TimeSformer(**TINY, attention_type=attention_type).eval()
    randomize(model)
    clip = torch.randn(2, 3, 3, 40, 48)  # T=3 != num_frames=4; 5x6 grid != 4x4
    with torch.no_grad():
        logits = model(clip)
    sd = {k: v.double() for k, v in model.state_dict().items()}
    ref, _ = reference_forward(sd, clip.double(), patch=8, heads=4, depth=2, attention_type=attention_type)
    assert ref.abs().max() > 1.0  # the comparison is not between near-zero numbers
    assert (logits.double() - ref).abs().max() <= 1e-5


def test_frames_change_logits_through_time_embed():
    model = TimeSformer(**TINY).eval()
    randomize(model)
    clip = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        flipped = model(clip.flip(2))
        assert (model(clip) - flipped).abs().max() > 1e-3


def test_gradient_checkpointing_same_gradients():
    model = TimeSformer(**TINY, drop_path_rate=0.0)
    randomize(model)
    clip = torch.randn(2, 3, 4, 32, 32)
    grads = []
    for enable in (False, True):
        model.zero_grad()
        model.set_grad_checkpointing(enable)
        model(clip).square().sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_bf16_autocast_runs_and_is_close():
    model = TimeSformer(**TINY).eval()
    randomize(model)
    clip = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        full = model(clip)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = model(clip)
    assert half.dtype == torch.bfloat16
    assert (half.float() - full).abs().max() < 0.1 * full.abs().max()


def test_capture_cls_attention_rows():
    model = TimeSformer(**TINY).eval()
    randomize(model)
    clip = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        plain = model(clip)
        with capture_cls_attention(model) as rows:
            explicit = model(clip)
    assert (plain - explicit).abs().max() < 1e-5
    spatial = rows["blocks.1.attn"]
    assert spatial.shape == (2 * 4, 4, 1 + 16)  # (B*T frames, heads, CLS + N keys)
    assert torch.allclose(spatial.sum(-1), torch.ones(8, 4))
    assert all(m.attention_sink is None for m in model.modules() if isinstance(m, Attention))
