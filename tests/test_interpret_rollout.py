"""Rollout for divided attention: the step matrices and the product, on cases computed by hand."""
import torch

from video_iared.interpret.explanations import explanation_maps
from video_iared.interpret.heatmaps import interpreter_maps, token_map
from video_iared.interpret.rollout import cls_rollout, spatial_step, temporal_step, with_residual
from video_iared.models import TimeSformer, capture_cls_attention
from video_iared.models.layers import capture_attention


def _tiny(depth: int = 2, frames: int = 2) -> TimeSformer:
    torch.manual_seed(0)
    # 16 x 16 frames, patch 8: N = 4 locations
    return TimeSformer(img_size=16, patch_size=8, embed_dim=16, depth=depth, num_heads=2, num_classes=3,
                       num_frames=frames, drop_path_rate=0.0).eval()


def test_step_matrices_by_hand():
    # T = 2 frames, N = 1 location: tokens [CLS, (n0, t0), (n0, t1)]
    temporal = torch.tensor([[[[0.75, 0.25], [0.5, 0.5]]]])                   # (1, N, T, T)
    spatial = torch.tensor([[[[0.6, 0.4], [0.2, 0.8]],                        # frame 0: [CLS copy, n0]
                             [[0.4, 0.6], [0.1, 0.9]]]])                      # frame 1
    assert torch.allclose(temporal_step(temporal)[0], torch.tensor(
        [[0.0, 0.0, 0.0], [0.0, 0.75, 0.25], [0.0, 0.5, 0.5]]))
    # CLS row: mean over frames of CLS->CLS, each copy's CLS->patch divided by T
    assert torch.allclose(spatial_step(spatial)[0], torch.tensor(
        [[0.5, 0.2, 0.3], [0.2, 0.8, 0.0], [0.1, 0.0, 0.9]]))
    assert torch.allclose(with_residual(temporal_step(temporal))[0, 0], torch.tensor([1.0, 0.0, 0.0]))
    # e0 (S+I)/2 (T+I)/2: [0.75, 0.1, 0.15] @ [[1,0,0],[0,.875,.125],[0,.25,.75]]
    rollout = cls_rollout([temporal_step(temporal), spatial_step(spatial)])
    assert torch.allclose(rollout[0], torch.tensor([0.75, 0.125, 0.125]))


def test_spatial_step_places_tokens_in_n_t_order():
    weights = torch.rand(1, 2, 3, 3).softmax(-1)                            # T = 2, N = 2
    step = spatial_step(weights)[0]
    # token 1 + n*T + t; patch (n=1, t=0) is token 3, (n=0, t=0) token 1, (n=1, t=1) token 4
    assert step[3, 1] == weights[0, 0, 2, 1] and step[3, 4] == 0 and step[3, 0] == weights[0, 0, 2, 0]
    assert torch.allclose(step.sum(-1), torch.ones(5))


def test_cls_rollout_equals_full_product():
    steps = [torch.rand(2, 5, 5).softmax(-1) for _ in range(3)]
    full = with_residual(steps[2]) @ with_residual(steps[1]) @ with_residual(steps[0])
    assert torch.allclose(cls_rollout(steps), full[:, 0], atol=1e-6)


def test_unnormalised_rollout_is_the_relevance_product():
    steps = [torch.rand(2, 5, 5) for _ in range(3)]
    eye = torch.eye(5)
    full = (steps[2] + eye) @ (steps[1] + eye) @ (steps[0] + eye)
    assert torch.allclose(cls_rollout(steps, normalise=False), full[:, 0], atol=1e-5)


def test_rollout_on_uniform_attention_model_by_hand():
    model = _tiny(depth=2, frames=2)
    for block in model.blocks:
        for attn in (block.attn, block.temporal_attn):
            torch.nn.init.zeros_(attn.qkv.weight)
            torch.nn.init.zeros_(attn.qkv.bias)
    maps = explanation_maps(model, torch.randn(1, 3, 2, 16, 16))
    # every attention is uniform: temporal 1/T, spatial 1/(1+N). N = 4, T = 2.
    # one block: CLS keeps c = (1 + 1/5)/2 = 0.6, each patch p = 1 / (2 T (1+N)) = 0.05;
    # second block: patch = c p + p (N / (2 (1+N)) + 1/2) = 0.03 + 0.045
    assert torch.allclose(maps["rollout"], torch.full((1, 2, 2, 2), 0.075))
    assert torch.allclose(maps["raw_attention"], torch.full((1, 2, 2, 2), 0.2))


def test_joint_attention_rollout_by_hand():
    model = TimeSformer(img_size=16, patch_size=8, embed_dim=16, depth=1, num_heads=2, num_classes=3,
                        num_frames=2, attention_type="joint_space_time").eval()
    torch.nn.init.zeros_(model.blocks[0].attn.qkv.weight)
    torch.nn.init.zeros_(model.blocks[0].attn.qkv.bias)
    maps = explanation_maps(model, torch.randn(1, 3, 2, 16, 16))
    # one uniform attention over 1 + N*T = 9 tokens, residual added: patch = (1/9) / 2
    assert torch.allclose(maps["rollout"], torch.full((1, 2, 2, 2), 1 / 18))


def test_raw_attention_matches_the_models_cls_rows():
    model = _tiny(depth=2, frames=3)
    clip = torch.randn(2, 3, 3, 16, 16)
    with capture_cls_attention(model) as rows:
        model(clip)
    maps = explanation_maps(model, clip, block=0)
    expected = rows["blocks.0.attn"].mean(1)[:, 1:].reshape(2, 3, 2, 2)        # (B*T, h, L) -> (B, T, h, w)
    assert torch.allclose(maps["raw_attention"], expected, atol=1e-6)
    assert (maps["rollout"] > 0).all()


def test_capture_attention_records_every_module_and_restores_it():
    model = _tiny(depth=1)
    with capture_attention(model) as weights:
        model(torch.randn(1, 3, 2, 16, 16))
    assert weights["blocks.0.temporal_attn"].shape == (4, 2, 2, 2)            # (B*N, heads, T, T)
    assert weights["blocks.0.attn"].shape == (2, 2, 5, 5)                     # (B*T, heads, 1+N, 1+N)
    assert torch.allclose(weights["blocks.0.attn"].sum(-1), torch.ones(2, 2, 5))
    assert all(m.attention_sink is None for m in model.modules() if hasattr(m, "attention_sink"))


def test_token_map_reads_n_t_order():
    values = torch.arange(4.0)[None]                          # token j = n*T + t; N = 2, T = 2
    assert torch.equal(token_map(values, 2, (1, 2))[0, :, 0], torch.tensor([[0.0, 2.0], [1.0, 3.0]]))


def test_interpreter_maps_per_group_and_product():
    # T = 2 frames of N = 2 locations on a 1 x 2 grid, (B, T, N)
    first = torch.tensor([[[0.9, 0.6], [0.2, 0.8]]])
    second = torch.tensor([[[0.5, 1.0], [0.0, 0.5]]])
    maps = interpreter_maps([first, second], grid=(1, 2))
    assert torch.equal(maps["interpreter_g0"][0, :, 0], first[0])
    assert torch.allclose(maps["interpreter"][0, :, 0], torch.tensor([[0.45, 0.6], [0.0, 0.4]]))


def test_space_only_explains_each_frame_with_its_own_cls():
    model = TimeSformer(img_size=16, patch_size=8, embed_dim=16, depth=1, num_heads=2, num_classes=3,
                        num_frames=2, attention_type="space_only").eval()
    torch.nn.init.zeros_(model.blocks[0].attn.qkv.weight)
    torch.nn.init.zeros_(model.blocks[0].attn.qkv.bias)
    maps = explanation_maps(model, torch.randn(1, 3, 2, 16, 16))
    # each frame: one uniform attention over its CLS + N = 4 patches; rollout (1/5) / 2
    assert torch.allclose(maps["raw_attention"], torch.full((1, 2, 2, 2), 0.2))
    assert torch.allclose(maps["rollout"], torch.full((1, 2, 2, 2), 0.1))
