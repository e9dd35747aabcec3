"""Token bookkeeping: group plans, pack/unpack, layouts."""
import torch

from video_iared.models.tokens import TokenLayout, kept_index, make_groups, pack, unpack

CPU = torch.device("cpu")


def test_make_groups_gathers_each_group_in_order_and_scatters_back():
    group = torch.tensor([7, 3, 7, 3, 3, 9, 7, 3])
    rows = torch.arange(8.0)[:, None] * torch.ones(1, 2)
    plan = make_groups(group)
    grouped = plan.gather(rows)
    assert (plan.num_groups, plan.length) == (3, 4)
    assert grouped[:, :, 0].tolist() == [[1, 3, 4, 7], [0, 2, 6, 0], [5, 0, 0, 0]]  # ids 3, 7, 9; pads read row 0
    assert plan.mask.flatten(1).tolist() == [[True] * 4, [True] * 3 + [False], [True] + [False] * 3]
    assert torch.equal(plan.scatter(grouped), rows)


def test_make_groups_identity_and_fixed_numbering():
    plan = make_groups(torch.arange(12) // 4)
    assert plan.index is None and plan.mask is None                # already grouped: a view
    x = torch.randn(12, 5)
    assert plan.gather(x).data_ptr() == x.data_ptr()
    plan = make_groups(torch.tensor([0, 0, 2]), num_groups=3)      # group 1 is empty: padding only
    assert plan.mask.flatten(1).tolist() == [[True, True], [False, False], [True, False]]


def test_pack_unpack_round_trip():
    keep = torch.tensor([[True, False, True], [False, False, True]])
    index = kept_index(keep)
    assert index.tolist() == [0, 2, 5]
    tokens = torch.arange(6.0).view(2, 3, 1)
    rows = pack(tokens, index)
    assert rows.flatten().tolist() == [0, 2, 5]
    assert unpack(rows, index, 2, 3, fill=-1).flatten().tolist() == [0, -1, 2, -1, -1, 5]


def test_layout_coordinates_groups_and_hierarchy():
    batch, frames, locations = 2, 3, 4
    layout = TokenLayout(batch, frames, locations, CPU)
    keep = torch.zeros(batch, frames * locations, dtype=torch.bool)
    keep[0, [0, 4, 5, 11]] = True       # (n, t) = (0,0), (1,1), (1,2), (3,2)
    keep[1, [7]] = True                 # (2, 1)
    packed, rows = layout.select(keep)
    assert rows.tolist() == [0, 4, 5, 11, 19]
    assert packed.sample.tolist() == [0, 0, 0, 0, 1]
    assert packed.frame.tolist() == [0, 1, 2, 2, 1]
    assert packed.location.tolist() == [0, 1, 1, 3, 2]
    assert packed.temporal_groups.gather(torch.arange(5.0)[:, None])[:, :, 0].tolist() == \
        [[0, 0], [1, 2], [3, 0], [4, 0]]  # (sample, location) groups: (0,0) (0,1) (0,3) (1,2)
    frames_plan = packed.frame_groups   # rows: 6 CLS copies, then the 5 patches
    slots = frames_plan.gather(torch.arange(11.0)[:, None])[:, :, 0]
    assert slots[:, 0].tolist() == [0, 1, 2, 3, 4, 5]               # CLS of (b, t) first
    assert frames_plan.mask.flatten(1).sum(1).tolist() == [2, 2, 3, 1, 2, 1]
    again, _ = packed.select(torch.ones(batch, frames * locations, dtype=torch.bool))
    assert torch.equal(again.flat, packed.flat)                     # dropped tokens are not revived
    assert torch.equal(packed.keep_mask(), keep)
