"""What a forward dispatches (``video_iared.opcount``): the CPU proxy for GPU launches and syncs.

The issue's measurement setting: width 96, depth 12, 8 x 224, batch 4, interpreters before blocks
0/4/8. Counts are deterministic for a torch version, so the bounds are exact, not timings.
"""
import pytest
import torch

from video_iared.models import IARed, TimeSformer
from video_iared.opcount import OpCounter

BUDGET = [0.7, 0.5, 0.3]


def test_counter_sees_every_kind_of_host_read():
    x = torch.arange(6.0)
    with OpCounter() as counts:
        x.nonzero()
        x.tolist()
        int(x.sum())
        bool(x[0] > 1)
        x[x > 2]
        torch.nonzero_static(x, size=3)                      # sizes known on the host: no read
        torch.nn.functional.scaled_dot_product_attention(*[torch.randn(1, 1, 4, 8)] * 3)
    assert counts.host_reads == 5, counts.host_reads_by_name
    assert counts.attention_calls == 1 and len(counts.attention_shapes) == 1


@pytest.fixture(scope="module")
def clips():
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(4, 3, 8, 224, 224, generator=gen) for _ in range(2)]


def build(attention_type: str) -> tuple[TimeSformer, IARed]:
    torch.manual_seed(0)
    backbone = TimeSformer(img_size=224, embed_dim=96, depth=12, num_heads=6, num_frames=8,
                           attention_type=attention_type).eval()
    return backbone, IARed(backbone, group_starts=(0, 4, 8), decision="budget", budgets=BUDGET).eval()


def count(fn, clip):
    with torch.no_grad(), OpCounter() as counts:
        fn(clip)
    return counts


@pytest.mark.parametrize("attention_type", ["divided_space_time", "joint_space_time", "space_only"])
def test_dense_and_budget_forwards_never_read_the_device(attention_type, clips):
    backbone, iared = build(attention_type)
    steps = 2 if attention_type == "divided_space_time" else 1
    dense = count(backbone, clips[0])
    assert dense.host_reads == 0, dense.host_reads_by_name
    assert dense.attention_calls == steps * 12
    shapes = set()
    for clip in clips:                                        # fresh inputs: the same few shapes
        budget = count(iared, clip)
        assert budget.host_reads == 0, budget.host_reads_by_name
        assert budget.attention_calls == steps * 12            # one call per attention step
        assert budget.ops <= 1.5 * dense.ops, (budget.ops, dense.ops)
        shapes |= set(budget.attention_shapes)
    assert len(shapes) <= steps * len(BUDGET)                  # grids fixed by the model and the budget


def test_threshold_forward_reads_once_per_interpreter(clips):
    backbone, iared = build("divided_space_time")
    dense = count(backbone, clips[0])
    with torch.no_grad():
        scores = iared(clips[0], decision="none").groups[0].scores
    threshold = scores.quantile(0.3).item()                  # drops ~30 % of the tokens at each interpreter
    out = count(lambda clip: iared(clip, decision="threshold", threshold=threshold), clips[1])
    assert out.host_reads == 3, out.host_reads_by_name        # the kept count, once per interpreter
    assert out.attention_calls == 24
    temporal = [shape for shape, masked in out.attention_shapes if shape[2] == 64]   # 64-row windows
    assert len(temporal) == 3 and all(masked for _, masked in out.attention_shapes)
    frames = [shape[2] for shape, _ in out.attention_shapes if shape[2] != 64]   # spatial: 1 + k * 16
    assert len(frames) <= 3 and all((length - 1) % 16 == 0 or length == 197 for length in frames)
    assert out.ops <= 1.5 * dense.ops
    with torch.no_grad():
        kept = iared(clips[1], decision="threshold", threshold=threshold).kept_share
    assert 0.3 < kept.mean() < 0.8                            # the path really dropped tokens
