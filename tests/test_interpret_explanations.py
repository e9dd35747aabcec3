"""Explanations (Grad-CAM, attention × gradient, transformer attribution) on cases with a known answer,
for every attention type and DeiT, and the interpreters' full-coverage maps."""
import pytest
import torch

from video_iared.interpret.explanations import EXPLANATIONS, explanation_maps, grad_cam, gradient_weighted
from video_iared.interpret.heatmaps import interpreter_scores
from video_iared.models import DeiT, IARed, TimeSformer


def _randomize(model: torch.nn.Module) -> torch.nn.Module:
    torch.manual_seed(0)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.3 * torch.randn_like(param))
    return model.eval()


def _backbone(kind: str, depth: int = 2, heads: int = 2) -> torch.nn.Module:
    size = dict(img_size=16, patch_size=4, embed_dim=16, depth=depth, num_heads=heads, num_classes=3)
    if kind == "image":
        return _randomize(DeiT(**size))
    return _randomize(TimeSformer(**size, num_frames=2, attention_type=kind))


def _input(kind: str) -> torch.Tensor:
    shape = (2, 3, 16, 16) if kind == "image" else (2, 3, 2, 16, 16)
    return torch.randn(*shape, generator=torch.Generator().manual_seed(1))


KINDS = ["divided_space_time", "joint_space_time", "space_only", "image"]


def test_grad_cam_by_hand():
    features = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [2.0, 1.0]]])           # (B, L, C)
    grads = torch.tensor([[[1.0, -1.0], [2.0, -2.0], [0.0, 0.0]]])            # channel weights 1, -1
    assert torch.equal(grad_cam(features, grads), torch.tensor([[1.0, 0.0, 1.0]]))


def test_gradient_weighted_keeps_what_raised_the_logit():
    weights = torch.tensor([[[[0.5, 0.5]], [[0.2, 0.8]]]])                   # (G, h, Q, L)
    grads = torch.tensor([[[[1.0, -1.0]], [[2.0, 1.0]]]])
    # head 1: 0.5, 0 (negative dropped); head 2: 0.4, 0.8; mean over heads
    assert torch.allclose(gradient_weighted(weights, grads), torch.tensor([[[0.45, 0.4]]]))


@pytest.mark.parametrize("kind", KINDS)
def test_every_method_gives_a_map_per_frame(kind):
    model = _backbone(kind)
    maps = explanation_maps(model, _input(kind))
    frames = 1 if kind == "image" else 2
    assert set(maps) == set(EXPLANATIONS)
    for name, heat in maps.items():
        assert heat.shape == (2, frames, 4, 4), name
        assert torch.isfinite(heat).all() and not heat.requires_grad, name
    assert all(p.grad is None for p in model.parameters())                   # the model is left as it was


@pytest.mark.parametrize("kind", ["joint_space_time", "space_only", "image"])
def test_one_block_attribution_is_attention_times_gradient_and_rollout_half_raw(kind):
    """One attention step: R = I + Ā, so its CLS row on the patches is Ā's (attention × gradient); rollout
    (A + I) / 2 halves the raw attention row."""
    maps = explanation_maps(_backbone(kind, depth=1), _input(kind))
    assert torch.allclose(maps["transformer_attribution"], maps["attention_gradient"], atol=1e-6)
    assert torch.allclose(maps["rollout"], maps["raw_attention"] / 2, atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_the_opposite_logit_is_explained_where_the_logit_is_not(kind):
    """A head whose class 1 is minus class 0: every gradient flips sign, so the positive parts of the
    gradient-based maps of the two classes never overlap (one attention head), and each is nonzero
    somewhere."""
    model = _backbone(kind, depth=1, heads=1)
    with torch.no_grad():
        model.head.weight[1] = -model.head.weight[0]
        model.head.bias[1] = -model.head.bias[0]
    x = _input(kind)
    first = explanation_maps(model, x, target=torch.zeros(2, dtype=torch.long))
    second = explanation_maps(model, x, target=torch.ones(2, dtype=torch.long))
    for name in ("grad_cam", "attention_gradient"):
        assert ((first[name] > 0) & (second[name] > 0)).sum() == 0, name
        assert (first[name] > 0).any() and (second[name] > 0).any(), name
    # maps that ignore gradients do not depend on the class
    assert torch.equal(first["rollout"], second["rollout"])


def test_explanations_keep_the_backbones_checkpointing_setting():
    model = _backbone("divided_space_time")
    model.set_grad_checkpointing(True)
    plain = explanation_maps(model, _input("divided_space_time"))
    assert model.grad_checkpointing
    model.set_grad_checkpointing(False)
    again = explanation_maps(model, _input("divided_space_time"))
    assert all(torch.allclose(plain[name], again[name], atol=1e-6) for name in plain)


def test_interpreter_scores_cover_the_tokens_the_deployed_decision_drops():
    backbone = TimeSformer(img_size=16, patch_size=4, embed_dim=16, depth=2, num_heads=2, num_classes=3,
                           num_frames=2)
    model = _randomize(IARed(backbone, group_starts=[0, 1], interpreter_heads=2, decision="budget",
                             budgets=[0.5, 0.25]))
    x = _input("divided_space_time")
    with torch.no_grad():
        deployed = model(x)
        dense = interpreter_scores(model, x)
    dropped = ~deployed.groups[1].keep
    assert dropped.any() and (dense[1][dropped] > 0).all()                    # scored although dropped
    assert (deployed.groups[1].scores[~deployed.groups[0].keep] == 0).all()   # the deployed pass zeroes them
    # the first group sees every token in both passes
    assert torch.allclose(dense[0], deployed.groups[0].scores, atol=1e-6)
