"""Interpreter identity with the plain formulation, its cost, keep decisions and IA-RED² outputs."""
import math

import pytest
import torch
from einops import rearrange
from torch.utils.flop_counter import FlopCounterMode

from video_iared.models import TimeSformer
from video_iared.models.iared import IARed
from video_iared.models.interpreter import MultiHeadInterpreter, decide
from video_iared.models.tokens import TokenLayout, TokenState


def plain_scores(qkv: torch.nn.Linear, heads: int, cls, tokens, present):
    """Released tool's formulation: zero dropped tokens, affine-free LN, full qkv Linear, CLS query."""
    dim = cls.shape[-1]
    x = torch.cat([cls[:, None], tokens * present[..., None]], dim=1)          # (B, 1+L, D)
    q, k, _ = qkv(torch.nn.functional.layer_norm(x, (dim,), eps=1e-6)).chunk(3, dim=-1)
    q = rearrange(q[:, :1], "b l (h d) -> b h l d", h=heads)
    k = rearrange(k[:, 1:], "b l (h d) -> b h l d", h=heads)
    attn = torch.sigmoid(q @ k.transpose(-1, -2) / math.sqrt(dim // heads))    # (B, h, 1, L)
    return attn[:, :, 0].mean(1) * present


def test_folded_scores_equal_plain_formulation_and_load_its_weights():
    torch.manual_seed(0)
    batch, frames, locations, dim, heads = 3, 2, 9, 48, 6
    plain = torch.nn.Linear(dim, 3 * dim)
    interpreter = MultiHeadInterpreter(dim, heads)
    interpreter.load_state_dict({"qkv.weight": plain.weight, "qkv.bias": plain.bias})
    cls = torch.randn(batch, dim)
    tokens = torch.randn(batch, locations * frames, dim) * 3
    present = torch.rand(batch, locations * frames) < 0.6
    layout, rows = TokenLayout(batch, frames, locations, cls.device).select(present)
    state = TokenState(cls, tokens.flatten(0, 1)[rows], layout)
    scores = state.per_token(interpreter(state.cls, state.rows_by_query.gather(state.patches)))   # (B, N*T)
    expected = plain_scores(plain, heads, cls, tokens, present)
    assert (scores - expected).abs().max() <= 1e-6
    assert scores[~present].abs().max() == 0 and scores[present].min() > 0


@pytest.mark.parametrize("init_keep", [0.9, 0.5, 0.2])
def test_a_fresh_interpreter_scores_every_token_near_its_init_keep(init_keep):
    """REINFORCE starts from a policy that keeps each token with probability ~init_keep, whatever
    the tokens (LayerNormed, so their scale does not matter)."""
    torch.manual_seed(0)
    interpreter = MultiHeadInterpreter(96, 4, init_keep=init_keep)
    present = torch.ones(4, 128, dtype=torch.bool)
    layout, _ = TokenLayout(4, 8, 16, torch.device("cpu")).select(present)
    state = TokenState(torch.randn(4, 96) * 5, torch.randn(4 * 128, 96) * 5, layout)
    scores = interpreter(state.cls, state.rows_by_query.gather(state.patches))
    assert scores.shape == (4, 128)
    assert (scores - init_keep).abs().max() < 0.05
    with pytest.raises(ValueError, match="init_keep"):
        MultiHeadInterpreter(96, 4, init_keep=1.0)


def test_interpreter_costs_under_one_percent_of_timesformer_b():
    dim, tokens = 768, 8 * 196
    interpreter = MultiHeadInterpreter(dim, 6)
    layout = TokenLayout(1, 8, 196, torch.device("cpu"))
    state = TokenState(torch.randn(1, dim), torch.randn(tokens, dim), layout)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        interpreter(state.cls, state.rows_by_query.gather(state.patches))
    macs = counter.get_total_flops() / 2
    assert macs <= 1.2 * (tokens * 6 * dim + 2 * dim * dim)        # heads x dim per token, plus the query
    assert 3 * macs <= 0.01 * 195.8e9                                 # three interpreters vs the model


def test_decisions():
    scores = torch.tensor([[0.9, 0.2, 0.6, 0.0], [0.51, 0.49, 0.7, 0.8]])
    present = torch.tensor([[True, True, True, False], [True, True, False, True]])
    keep, _ = decide(scores, present, "threshold")
    assert keep.tolist() == [[True, False, True, False], [True, False, False, True]]
    keep, _ = decide(scores, present, "budget", count=2)
    assert keep.tolist() == [[True, False, True, False], [True, False, False, True]]
    keep, _ = decide(scores, present, "budget", count=4)                  # never revives a dropped token
    assert torch.equal(keep, present)
    keep, log_prob = decide(scores, present, "none")
    assert torch.equal(keep, present) and log_prob.abs().sum() == 0
    # a count per frame: tokens in (n t) order, 2 locations x 2 frames; each frame keeps its best one
    keep, _ = decide(torch.tensor([[0.9, 0.1, 0.2, 0.8]]), torch.ones(1, 4, dtype=torch.bool), "budget",
                     count=1, frames=2)
    assert keep.tolist() == [[True, False, False, True]]               # (n0, t0) and (n1, t1)

    torch.manual_seed(0)
    probs = torch.full((2000, 4), 0.3, requires_grad=True)
    keep, log_prob = decide(probs, torch.ones(2000, 4, dtype=torch.bool), "sample")
    assert abs(keep.float().mean().item() - 0.3) < 0.02
    expected = keep.sum(1) * math.log(0.3) + (4 - keep.sum(1)) * math.log(0.7)
    assert torch.allclose(log_prob, expected.float())
    log_prob.sum().backward()
    assert probs.grad.abs().sum() > 0


def tiny_iared(**kwargs) -> IARed:
    torch.manual_seed(0)
    backbone = TimeSformer(img_size=32, patch_size=8, embed_dim=48, depth=6, num_heads=4, num_frames=4,
                           num_classes=5, drop_path_rate=0.0)
    return IARed(backbone, group_starts=(0, 2, 4), **kwargs).eval()


def test_output_hierarchy_counts_and_cost():
    model = tiny_iared(decision="budget", budgets=(0.7, 0.5, 0.25))
    with torch.no_grad():
        out = model(torch.randn(2, 3, 4, 32, 32))
    assert out.logits.shape == (2, 5) and len(out.groups) == 3
    # of 16 tokens per frame x 4 frames: round(0.7 * 16) = 11, 8, 4 in every frame
    assert [g.kept.tolist() for g in out.groups] == [[44, 44], [32, 32], [16, 16]]
    assert all((g.keep.sum(2) == k).all() for g, k in zip(out.groups, (11, 8, 4)))
    for before, after in zip(out.groups, out.groups[1:]):
        assert not (after.keep & ~before.keep).any()                   # hierarchical
        assert (after.scores[~before.keep] == 0).all()
    expected = 1 - ((1 - 44 / 64) * 2 + (1 - 32 / 64) * 2 + (1 - 16 / 64) * 2) / 6
    assert torch.allclose(out.kept_share, torch.full((2,), expected))


def test_curriculum_and_sampling_log_prob():
    model = tiny_iared(decision="sample", active_groups=1).train()
    out = model(torch.randn(2, 3, 4, 32, 32))
    assert out.groups[1].scores is None and torch.equal(out.groups[1].keep, out.groups[0].keep)
    assert (out.groups[1].log_prob == 0).all() and (out.log_prob < 0).all()
    (-out.log_prob.sum()).backward()
    assert model.interpreters[0].qk.weight.grad.abs().sum() > 0
    assert model.interpreters[1].qk.weight.grad is None


@pytest.mark.parametrize("attention_type", ["joint_space_time", "space_only"])
def test_other_attention_types_run_with_interpreters(attention_type):
    torch.manual_seed(0)
    backbone = TimeSformer(img_size=32, patch_size=8, embed_dim=48, depth=4, num_heads=4, num_frames=4,
                           num_classes=5, attention_type=attention_type)
    model = IARed(backbone, group_starts=(0, 2), decision="budget", budgets=(0.5, 0.25)).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 4, 32, 32))
    assert [g.kept.tolist() for g in out.groups] == [[32, 32], [16, 16]]


def test_batch_that_drops_every_token_still_classifies():
    """A threshold no score reaches empties the whole batch after group 0; later groups and the head
    run on the CLS tokens alone (an interpreter stage can reach this while learning)."""
    torch.manual_seed(0)
    model = IARed(TimeSformer(img_size=16, patch_size=8, embed_dim=32, depth=3, num_heads=2, num_frames=2,
                              num_classes=5, drop_path_rate=0.0), group_starts=(1, 2), interpreter_heads=2,
                  threshold=1.1).eval()
    out = model(torch.randn(2, 3, 2, 16, 16), decision="threshold")
    assert out.logits.shape == (2, 5) and torch.isfinite(out.logits).all()
    assert [g.kept.tolist() for g in out.groups] == [[0, 0], [0, 0]]


def test_finetune_trains_on_the_deployed_budget_decisions():
    """Stage 3 with ``iared.decision=budget``: the backbone sees exactly the top-scored tokens of the
    cumulative budget (per sample), the same ones evaluation keeps."""
    from video_iared.engine.stages import StageInfo, finetune_loss

    model = tiny_iared(budgets=[0.5, 0.25, 0.125])   # of the 4 x 16 = 64 patch tokens: 32, 16, 8
    info = StageInfo(spans=(2, 2, 2), depth=6, num_tokens=64)
    clips, labels = torch.randn(3, 3, 4, 32, 32), torch.tensor([0, 1, 2])
    loss, stats = finetune_loss(model, clips, labels, 0.0, info, decision="budget")
    assert [stats[f"kept_share_g{g}"].item() for g in range(3)] == [0.5, 0.25, 0.125]
    assert torch.isclose(stats["kept_share"], torch.tensor((2 * 0.5 + 2 * 0.25 + 2 * 0.125) / 6))
    loss.backward()
    assert model.backbone.blocks[5].mlp.fc1.weight.grad.abs().sum() > 0
    # the default stays the paper's threshold 0.5, which fresh interpreters (scores ~0.9) pass everywhere
    _, default = finetune_loss(model, clips, labels, 0.0, info)
    assert default["kept_share"].item() == 1.0
