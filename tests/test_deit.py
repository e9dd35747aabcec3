"""DeiT on the packed token state against timm's own VisionTransformer (dense and key-masked)."""
import pytest
import timm
import torch
from timesformer_reference import randomize

import video_iared  # noqa: F401  registers the variants in timm
from video_iared.models import DeiT, IARed, capture_cls_attention, get_model_info, load_weights

B, GRID = 3, 4
N = GRID * GRID
TINY = dict(img_size=32, patch_size=8, embed_dim=32, depth=3, num_heads=4, num_classes=5, drop_path_rate=0.0)


def build(dtype=torch.float32) -> tuple[DeiT, torch.nn.Module]:
    """A randomised packed DeiT and timm's VisionTransformer holding the same weights."""
    model = DeiT(**TINY).eval()
    randomize(model)
    reference = timm.models.vision_transformer.VisionTransformer(**TINY).eval()
    reference.load_state_dict(model.state_dict())
    return model.to(dtype), reference.to(dtype)


def keep_patterns() -> list[torch.Tensor]:
    """Per group (B, 1, N): different counts per sample, one image losing every token."""
    gen = torch.Generator().manual_seed(5)
    first = torch.rand(B, 1, N, generator=gen) < 0.6
    first[2] = True
    second = first & (torch.rand(B, 1, N, generator=gen) < 0.6)
    second[0] = False
    return [first, second]


def masked_reference(reference: torch.nn.Module, images: torch.Tensor, patterns: list[torch.Tensor],
                     starts=(0, 2)) -> tuple[torch.Tensor, torch.Tensor]:
    """timm's blocks with dropped tokens masked out as keys -> (logits, final patch tokens (B, N, D))."""
    x = reference._pos_embed(reference.patch_embed(images))
    mask = None
    for i, block in enumerate(reference.blocks):
        if i in starts:
            keep = patterns[starts.index(i)][:, 0]
            mask = torch.cat([torch.ones(B, 1, dtype=torch.bool), keep], 1)[:, None, None, :]
        x = block(x, attn_mask=mask)
    return reference.forward_head(reference.norm(x)), x[:, 1:]


def test_state_dict_is_timms_and_registered_variants():
    model = timm.create_model("packed_deit_small_patch16_224")
    timm_model = timm.create_model("deit_small_patch16_224")
    assert model.state_dict().keys() == timm_model.state_dict().keys()
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(22.05e6, rel=1e-3)
    assert model.blocks[0].attn.qkv.weight.std().item() == pytest.approx(0.02, rel=0.1)   # timm's init
    assert timm.create_model("packed_deit_base_patch16_224").embed_dim == 768
    assert get_model_info("packed_deit_small_patch16_224").mean == (0.485, 0.456, 0.406)
    report = load_weights(model, timm_model.state_dict())
    assert not report.missing and not report.unexpected and not report.inflated


def test_all_kept_equals_timm_dense():
    model, reference = build()
    iared = IARed(model, group_starts=(0, 2), interpreter_heads=2).eval()
    images = torch.randn(B, 3, 32, 32)
    everything = [torch.ones(B, 1, N, dtype=torch.bool)] * 2
    with torch.no_grad():
        dense = reference(images)
        assert dense.abs().max() > 1.0
        assert (model(images) - dense).abs().max() <= 1e-5
        assert (model(images[:, :, None]) - dense).abs().max() <= 1e-5      # a one-frame clip
        assert (iared(images, keep=everything).logits - dense).abs().max() <= 1e-5
        assert (iared(images, decision="none").logits - dense).abs().max() <= 1e-5
        state = model.embed(images).select(torch.ones(B, N, dtype=torch.bool))   # index-gathered plan
        assert state.layout.index is not None
        assert (model.head(model.pool(model.forward_blocks(state))) - dense).abs().max() <= 1e-5


def test_given_keep_pattern_equals_masked_reference():
    model, reference = build()
    iared = IARed(model, group_starts=(0, 2), interpreter_heads=2).eval()
    images = torch.randn(B, 3, 32, 32)
    patterns = keep_patterns()
    with torch.no_grad():
        out = iared(images, keep=patterns)
        state = model.embed(images).select(patterns[0][:, 0])
        state = model.forward_blocks(model.forward_blocks(state, 0, 2).select(patterns[1][:, 0]), 2)
        ref_logits, ref_tokens = masked_reference(reference.double(), images.double(), patterns)
    assert (out.logits.double() - ref_logits).abs().max() <= 1e-5
    assert out.groups[1].kept.tolist() == (patterns[0] & patterns[1]).sum((1, 2)).tolist()
    assert out.groups[1].kept[0] == 0
    rows = ref_tokens[patterns[1][:, 0]]
    assert state.patches.shape == rows.shape
    assert (state.patches.double() - rows).abs().max() <= 1e-5


def test_gradients_equal_masked_reference():
    model, reference = build(torch.float64)
    iared = IARed(model.train(), group_starts=(0, 2), interpreter_heads=2).double()
    images = torch.randn(B, 3, 32, 32, dtype=torch.float64)
    patterns = keep_patterns()
    iared(images, keep=patterns).logits.square().sum().backward()
    masked_reference(reference.train(), images, patterns)[0].square().sum().backward()
    ref_params = dict(reference.named_parameters())
    worst = max((p.grad - ref_params[name].grad).abs().max() / (ref_params[name].grad.abs().max() + 1e-12)
                for name, p in model.named_parameters())
    assert model.blocks[2].mlp.fc1.weight.grad.abs().max() > 0
    assert worst <= 1e-9


def test_checkpointing_and_cls_attention_capture():
    model, _ = build()
    images = torch.randn(B, 3, 32, 32)
    model.train()
    model(images).sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.set_grad_checkpointing(True)
    model(images).sum().backward()
    assert all(torch.allclose(g, p.grad, atol=1e-6) for g, p in zip(grads, model.parameters()))
    with torch.no_grad(), capture_cls_attention(model.eval()) as rows:
        model(images)
    assert rows["blocks.2.attn"].shape == (B, 4, 1 + N)
    assert torch.allclose(rows["blocks.2.attn"].sum(-1), torch.ones(B, 4))
