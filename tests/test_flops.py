"""Analytic MAC counter: published figures, hand counts, and fvcore on real forwards."""
import pytest
import timm
import torch

from video_iared.flops import VitShape, fvcore_macs, keep_ratio_masks, model_macs

TIMESFORMER_B = VitShape(embed_dim=768, depth=12, num_heads=12, mlp_ratio=4, patch_size=16, in_chans=3,
                         num_classes=400, num_patches=196, num_frames=8, attention_type="divided_space_time")
DEIT_S = VitShape(embed_dim=384, depth=12, num_heads=6, mlp_ratio=4, patch_size=16, in_chans=3,
                  num_classes=1000, num_patches=196, num_frames=1, attention_type="image")


def test_published_dense_figures():
    assert model_macs(TIMESFORMER_B).item() / 1e9 == pytest.approx(195.8, abs=0.05)  # per view
    assert model_macs(DEIT_S).item() / 1e9 == pytest.approx(4.6, abs=0.01)


def test_deit_small_equals_fvcore_on_timm():
    model = timm.create_model("deit_small_patch16_224").eval()
    traced, unsupported = fvcore_macs(model, (torch.randn(1, 3, 224, 224),))
    assert unsupported == {}
    assert traced == pytest.approx(model_macs(DEIT_S).item(), rel=1e-6)


def test_unsupported_matmul_like_op_is_reported():
    class Baddbmm(torch.nn.Module):
        def forward(self, x):
            return torch.baddbmm(x, x, x)

    _, unsupported = fvcore_macs(Baddbmm(), (torch.randn(2, 4, 4),))
    assert "aten::baddbmm" in unsupported


def test_divided_block_by_hand():
    """One divided block, T=2 frames of N=3 patches, dim 4, one sample keeping 3 of 6 tokens."""
    shape = VitShape(embed_dim=4, depth=1, num_heads=1, mlp_ratio=2, patch_size=1, in_chans=1,
                     num_classes=0, num_patches=3, num_frames=2, attention_type="divided_space_time")
    keep = torch.tensor([[[True, True, False], [True, False, False]]])  # locations kept 2,1,0 times
    d, kept = 4, 3
    temporal = kept * 3 * d * d + 2 * (2 ** 2 + 1 ** 2) * d + kept * d * d + kept * d * d
    spatial = (kept + 2) * 3 * d * d + 2 * ((2 + 1) ** 2 + (1 + 1) ** 2) * d + (kept + 2) * d * d
    mlp = 2 * (kept + 1) * d * 8
    interpreter = 2 * d * d + (6 + 1) * 1 * d  # scores CLS + all 6 tokens with one head
    embed = 6 * d
    got = model_macs(shape, group_starts=[0], group_keep=[keep], interpreter_heads=1)
    assert got.item() == embed + interpreter + temporal + spatial + mlp


def test_keep_ratio_lowers_cost_monotonically():
    costs = [model_macs(TIMESFORMER_B, group_starts=[0, 4, 8],
                        group_keep=keep_ratio_masks(TIMESFORMER_B, [r, r * r, r ** 3])).item()
             for r in (1.0, 0.7, 0.5)]
    assert costs[0] > costs[1] > costs[2]
    assert costs[2] / costs[0] < 0.5
