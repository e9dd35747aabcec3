"""The budget path compiles into one graph: no graph breaks (no locks, host reads or value-dependent
Python in the forward), so ``torch.compile(fullgraph=True)`` and CUDA-graph capture can take it whole."""
import pytest
import torch
import torch._dynamo as dynamo

from video_iared.models import DeiT, IARed, TimeSformer
from video_iared.models.interpreter import decide

B, T = 2, 4


def tiny(attention_type: str = "divided_space_time", **kwargs) -> TimeSformer:
    torch.manual_seed(0)
    return TimeSformer(img_size=32, patch_size=8, embed_dim=32, depth=3, num_heads=4, num_frames=T,
                       num_classes=5, attention_type=attention_type, **kwargs).eval()


def breaks(fn, *args) -> tuple[int, int, list[str]]:
    dynamo.reset()
    explained = dynamo.explain(fn)(*args)
    reasons = [str(b.reason) for b in explained.break_reasons]
    return explained.graph_count, explained.graph_break_count, reasons


@pytest.mark.parametrize("attention_type", ["divided_space_time", "joint_space_time", "space_only"])
def test_a_block_on_budget_rows_is_one_graph(attention_type):
    model = tiny(attention_type)
    with torch.no_grad():
        state = model.embed(torch.randn(B, 3, T, 32, 32))
        keep, _ = decide(torch.rand(B, 16 * T), torch.ones(B, 16 * T, dtype=torch.bool), "budget",
                         count=6, frames=T)
        packed = state.select(keep, per_frame=6)
        assert breaks(model.blocks[1], packed) == (1, 0, [])


@pytest.mark.parametrize("backbone", ["timesformer", "deit"])
def test_the_whole_budget_forward_is_one_graph(backbone):
    if backbone == "deit":
        torch.manual_seed(0)
        model = DeiT(img_size=32, patch_size=8, embed_dim=32, depth=3, num_heads=4, num_classes=5).eval()
        x = torch.randn(B, 3, 32, 32)
    else:
        model, x = tiny(), torch.randn(B, 3, T, 32, 32)
    iared = IARed(model, group_starts=(0, 2), interpreter_heads=2, decision="budget", budgets=[0.5, 0.25])
    with torch.no_grad():
        assert breaks(lambda clip: iared(clip).logits, x) == (1, 0, [])


def test_fullgraph_compile_matches_eager_on_fresh_inputs():
    iared = IARed(tiny(), group_starts=(0, 2), interpreter_heads=2, decision="budget", budgets=[0.5, 0.25])
    compiled = torch.compile(lambda clip: iared(clip).logits, fullgraph=True, backend="eager")
    with torch.no_grad():
        for _ in range(2):   # new values, same shapes: no recompilation needed
            clip = torch.randn(B, 3, T, 32, 32)
            assert (compiled(clip) - iared(clip).logits).abs().max() <= 1e-5


def test_dense_temporal_windows_equal_the_per_location_sequences():
    x = torch.randn(B, 3, T, 32, 32)
    plain, windowed = tiny(), tiny(temporal_windows=True)
    windowed.load_state_dict(plain.state_dict())
    with torch.no_grad():
        for block in plain.blocks:            # give the temporal steps weight (zero-initialised)
            torch.nn.init.normal_(block.temporal_fc.weight, std=0.2)
        windowed.load_state_dict(plain.state_dict())
        assert windowed.embed(x).layout.temporal_sequences.length == 64
        assert (windowed(x) - plain(x)).abs().max() <= 1e-5
