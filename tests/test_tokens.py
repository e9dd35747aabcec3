"""Token bookkeeping: sequence plans, kept positions, layouts."""
import torch

import torch.nn.functional as F

from video_iared.models.tokens import (SequencePlan, TokenLayout, compact_index, round_up, run_windows,
                                       sequence_plan)

CPU = torch.device("cpu")


def real(plan: SequencePlan, grid: torch.Tensor) -> torch.Tensor:
    """The grid (G, L, 1) with its padding slots zeroed: the rows' own slots only."""
    if plan.slot is None:
        return grid[..., 0]
    occupied = torch.zeros(plan.count * plan.length, dtype=torch.bool).index_fill_(0, plan.slot, True)
    return (grid[..., 0] * occupied.view(plan.count, plan.length))


def test_sequence_plan_gathers_rows_into_slots_and_scatters_back():
    rows = torch.arange(1.0, 6.0)[:, None] * torch.ones(1, 2)         # rows 1..5
    slot = torch.tensor([4, 0, 1, 7, 5])                               # 2 sequences of 4 slots
    plan = sequence_plan(slot, 2, 4)
    grid = plan.gather(rows)
    assert grid[..., 0].tolist() == [[2, 3, 3, 4], [1, 5, 2, 4]]      # padding slot i copies row i mod 5
    assert plan.mask.flatten(1).tolist() == [[True, True, False, False], [True, True, False, True]]
    assert torch.equal(plan.scatter(grid), rows)
    keys = torch.tensor([True, False, True, True, True])               # row 2 (slot 0) hidden
    assert sequence_plan(slot, 2, 4, keys).mask.flatten(1)[0].tolist() == [False, True, False, False]
    empty = sequence_plan(torch.tensor([0, 1]), 2, 2, fill_empty=True)  # sequence 1 has no row
    assert empty.mask.flatten(1).tolist() == [[True, True], [True, True]]
    assert sequence_plan(slot, 2, 4, masked=False).mask is None


def test_sequence_plan_without_padding_is_a_permutation_or_a_view():
    x = torch.randn(6, 3)
    view = SequencePlan(2, 3)
    assert view.gather(x).data_ptr() == x.data_ptr() and torch.equal(view.scatter(view.gather(x)), x)
    perm = sequence_plan(torch.tensor([5, 0, 3, 1, 4, 2]), 3, 2)
    assert perm.mask is None and perm.source is not None              # one gather, no padding
    assert torch.equal(perm.gather(x).reshape(6, 3)[5], x[0]) and torch.equal(perm.scatter(perm.gather(x)), x)


def test_compact_index_and_round_up():
    keep = torch.tensor([[True, False, True], [False, False, True]])
    assert compact_index(keep.flatten(), 3).tolist() == [0, 2, 5]
    assert round_up(17, 16, 40) == 32 and round_up(33, 16, 40) == 40 and round_up(0, 16, 40) == 0


def layout_with_drops():
    batch, frames, locations = 2, 3, 4
    keep = torch.zeros(batch, frames * locations, dtype=torch.bool)
    keep[0, [0, 4, 5, 11]] = True       # (n, t) = (0,0), (1,1), (1,2), (3,2)
    keep[1, [7]] = True                 # (2, 1)
    return TokenLayout(batch, frames, locations, CPU), keep


def test_layout_coordinates_sequences_and_hierarchy():
    layout, keep = layout_with_drops()
    packed, rows = layout.select(keep)
    assert rows.tolist() == [0, 4, 5, 11, 19]
    assert packed.counts.tolist() == [4, 1] and packed.longest == 4 and not packed.uniform
    assert packed.sample.tolist() == [0, 0, 0, 0, 1]
    assert packed.frame.tolist() == [0, 1, 2, 2, 1]
    assert packed.location.tolist() == [0, 1, 1, 3, 2]
    values = torch.arange(1.0, 6.0)[:, None]
    temporal = packed.temporal_sequences   # runs (b, n) of consecutive rows, in one 64-row window
    assert (temporal.count, temporal.length) == (1, 64)
    assert torch.equal(temporal.scatter(temporal.gather(values)), values)
    same_run = [[1, 0, 0, 0, 0], [0, 1, 1, 0, 0], [0, 1, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1]]
    assert temporal.mask[0, 0, :5, :5].int().tolist() == same_run
    frames = packed.frame_sequences       # rows: 6 CLS copies (b*T + t), then 5 patches at 1 + location
    assert (frames.count, frames.length) == (6, 5)
    grid = real(frames, frames.gather(torch.cat([torch.full((6, 1), -1.0), values])))
    assert grid[:, 0].tolist() == [-1] * 6
    assert grid[2].tolist() == [-1, 0, 3, 0, 4] and grid[4].tolist() == [-1, 0, 0, 5, 0]
    assert frames.mask.flatten(1).sum(1).tolist() == [2, 2, 3, 1, 2, 1]
    samples = packed.sample_sequences     # CLS, then the sample's tokens; 1 + 4 rounded up to 16, at most 12
    assert (samples.count, samples.length) == (2, 13)
    grid = real(samples, samples.gather(torch.cat([torch.full((2, 1), -1.0), values])))
    assert grid[0, :5].tolist() == [-1, 1, 2, 3, 4] and grid[1, :3].tolist() == [-1, 5, 0]
    again, _ = packed.select(torch.ones(2, 12, dtype=torch.bool))
    assert torch.equal(again.flat, packed.flat)                     # dropped tokens are not revived
    assert torch.equal(packed.keep_mask(), keep)


def test_budget_select_is_uniform_and_unpadded():
    layout = TokenLayout(2, 3, 4, CPU)
    keep = torch.zeros(2, 12, dtype=torch.bool)
    keep[0, [1, 2, 9]] = True
    keep[1, [0, 5, 6]] = True
    packed, rows = layout.select(keep, per_sample=3)
    assert rows.tolist() == [1, 2, 9, 12, 17, 18] and packed.uniform and packed.longest == 3
    plan = packed.sample_sequences
    assert (plan.count, plan.length) == (2, 4) and plan.mask is None     # no padding: no mask
    second, rows = packed.select(keep & (torch.arange(12) != 2), per_sample=2)
    assert rows.tolist() == [0, 2, 3, 4] and second.flat.tolist() == [1, 9, 12, 17]


def test_dense_layout_plans_need_no_mask():
    layout = TokenLayout(2, 3, 4, CPU)
    assert layout.temporal_sequences.slot is None and layout.temporal_sequences.mask is None
    for plan in (layout.frame_sequences, layout.sample_sequences):
        assert plan.mask is None and plan.source is not None


def test_hidden_rows_are_no_keys():
    layout, keep = layout_with_drops()
    hidden = layout.hide(keep)
    frames = hidden.frame_sequences
    assert frames.mask.flatten(1).sum(1).tolist() == [2, 2, 3, 1, 2, 1]   # the CLS copy + kept tokens
    assert hidden.temporal_sequences.mask.flatten(1)[2].tolist() == [True] * 3   # nothing visible: every slot


def per_run_attention(x: torch.Tensor, run: torch.Tensor) -> torch.Tensor:
    """Reference: each row attends to the rows of its own run (x used as query, key and value)."""
    same = run[:, None] == run[None, :]
    return F.scaled_dot_product_attention(x[None], x[None], x[None], attn_mask=same[None])[0]


def test_run_windows_keep_whole_runs_together():
    lengths = [3, 1, 2, 3, 3, 1, 2, 3, 3, 2, 1, 3]                      # 27 rows, runs of at most 3
    run = torch.repeat_interleave(torch.arange(len(lengths)) * 5, torch.tensor(lengths))   # sorted ids
    plan = run_windows(run, max_run=3, width=8)                          # stride 6: windows overlap by 2
    assert (plan.count, plan.length) == (5, 8)
    owner = plan.slot // 8
    for r in range(run.numel()):                                         # a run lies whole in its owner
        same = (run == run[r]).nonzero().flatten()
        assert (owner[same] == owner[r]).all()
        window_rows = plan.source.view(5, 8)[owner[r]]
        assert set(same.tolist()) <= set(window_rows.tolist())
    x = torch.randn(run.numel(), 4, dtype=torch.float64)
    grid = plan.gather(x)[:, None]                                       # (count, 1 head, 8, 4)
    out = plan.scatter(F.scaled_dot_product_attention(grid, grid, grid, attn_mask=plan.mask)[:, 0])
    assert (out - per_run_attention(x, run)).abs().max() <= 1e-12
    assert plan.count * plan.length < 2 * run.numel()                    # ~rows * width / stride slots


def test_run_windows_widen_for_long_runs_and_accept_no_rows():
    plan = run_windows(torch.zeros(40, dtype=torch.long), max_run=40)    # T = 40: 128-row windows
    assert plan.length == 128 and plan.count == 1 and plan.mask[0, 0, :40, :40].all()
    assert not plan.mask[0, 0, :40, 40:].any()                         # padding slots are no keys
    empty = run_windows(torch.zeros(0, dtype=torch.long), max_run=8)
    assert empty.count == 0 and empty.gather(torch.zeros(0, 3)).shape == (0, 64, 3)


def test_a_count_per_frame_gives_unpadded_frames():
    layout = TokenLayout(2, 3, 4, CPU)
    keep = torch.zeros(2, 4, 3, dtype=torch.bool)                       # (b, n, t): two tokens per frame
    keep[0, [0, 2], 0] = keep[0, [1, 3], 1] = keep[0, [0, 1], 2] = True
    keep[1, [2, 3]] = True
    packed, _ = layout.select(keep.flatten(1), per_frame=2)
    assert packed.uniform and packed.longest == 6 and packed.per_frame == 2
    frames = packed.frame_sequences
    assert (frames.count, frames.length) == (6, 3) and frames.mask is None
    values = torch.arange(1.0, 13.0)[:, None]                           # rows in (b n t) order
    grid = frames.gather(torch.cat([torch.zeros(6, 1), values]))[..., 0]
    assert grid[0].tolist() == [0, 1, 5] and grid[1].tolist() == [0, 3, 6] and grid[2].tolist() == [0, 2, 4]
    assert grid[3].tolist() == [0, 7, 10]                               # sample 1, frame 0: locations 2, 3
    assert torch.equal(frames.scatter(frames.gather(torch.cat([torch.zeros(6, 1), values])))[6:], values)


def test_plan_gradients_are_gathers_not_atomic_adds():
    """The backward of a plan's gather and scatter reads the owned slots (index_select), never
    index_add's atomics, and equals autograd's own gradient of index_select."""
    from video_iared.opcount import OpCounter

    lengths = [3, 1, 2, 3, 3, 1, 2, 3]
    run = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))
    plan = run_windows(run, max_run=3, width=8)
    x = torch.randn(run.numel(), 4, dtype=torch.float64, requires_grad=True)
    grid = plan.gather(x)[:, None]
    out = plan.scatter(F.scaled_dot_product_attention(grid, grid, grid, attn_mask=plan.mask)[:, 0])
    weights = torch.randn_like(out)
    with OpCounter() as counts:
        grad, = torch.autograd.grad((out * weights).sum(), x)
    assert "index_add" not in counts.ops_by_name and "index_add_" not in counts.ops_by_name
    reference = per_run_attention(x, run)
    expected, = torch.autograd.grad((reference * weights).sum(), x)
    assert (grad - expected).abs().max() <= 1e-12
