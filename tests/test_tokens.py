"""Token bookkeeping: group plans, pack/unpack, layouts."""
import torch

from video_iared.models.tokens import TokenLayout, kept_index, make_groups, pack, unpack

CPU = torch.device("cpu")


def test_make_groups_gathers_each_group_in_order_and_scatters_back():
    group = torch.tensor([7, 3, 7, 3, 3, 9, 7, 3])
    rows = torch.arange(8.0)[:, None] * torch.ones(1, 2)
    plan = make_groups(group, tolerance=0.5)      # lengths 4, 3 share a bucket; 1 gets its own
    grouped = plan.gather(rows)
    assert [b.groups.tolist() for b in plan.buckets] == [[3, 7], [9]]
    assert grouped[0][:, :, 0].tolist() == [[1, 3, 4, 7], [0, 2, 6, 0]]  # padding reads row 0
    assert grouped[1][:, :, 0].tolist() == [[5]] and plan.buckets[1].mask is None
    assert plan.buckets[0].mask.flatten(1).tolist() == [[True] * 4, [True] * 3 + [False]]
    assert torch.equal(plan.scatter(grouped), rows)
    by_id = torch.full((10, 5, 2), -1.0)          # every group at its id, padded past the longest
    for bucket, part in zip(plan.buckets, grouped):
        by_id[bucket.groups, : bucket.length] = part
    assert torch.equal(plan.scatter(by_id), rows)
    one = make_groups(group, tolerance=1.0)       # a single padded bucket
    assert len(one.buckets) == 1 and torch.equal(one.scatter(one.gather(rows)), rows)


def test_buckets_bound_padding():
    gen = torch.Generator().manual_seed(0)
    group = torch.randint(0, 40, (2000,), generator=gen) % torch.randint(1, 40, (2000,), generator=gen)
    plan = make_groups(group)
    slots = sum(b.groups.numel() * b.length for b in plan.buckets)
    assert slots <= 2000 / (1 - 0.125) and len(plan.buckets) > 1
    for bucket in plan.buckets:
        if bucket.mask is not None:
            lengths = bucket.mask.flatten(1).sum(1)
            assert lengths.min() >= (1 - 0.125) * bucket.length
    rows = torch.randn(2000, 3)
    assert torch.equal(plan.scatter(plan.gather(rows)), rows)


def test_make_groups_identity_and_fixed_numbering():
    plan = make_groups(torch.arange(12) // 4)
    assert plan.slot is None and plan.buckets[0].index is None     # already grouped: a view
    x = torch.randn(12, 5)
    assert plan.gather(x)[0].data_ptr() == x.data_ptr()
    plan = make_groups(torch.tensor([0, 0, 2]), num_groups=3, tolerance=1.0)  # id 1 has no rows: left out
    assert plan.buckets[0].groups.tolist() == [0, 2]
    assert plan.buckets[0].mask.flatten(1).tolist() == [[True, True], [True, False]]


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
    temporal = packed.temporal_groups   # (sample, location) (0,0) (0,1) (0,3) (1,2): lengths 1, 2, 1, 1
    parts = temporal.gather(torch.arange(5.0)[:, None])
    assert [p[:, :, 0].tolist() for p in parts] == [[[1, 2]], [[0], [3], [4]]]
    frame_of_row = torch.cat([torch.arange(6), packed.sample * frames + packed.frame])
    frames_plan = make_groups(frame_of_row, tolerance=1.0)
    slots = frames_plan.gather(torch.arange(11.0)[:, None])[0][:, :, 0]  # rows: 6 CLS copies, then 5 patches
    assert frames_plan.buckets[0].groups.tolist() == [2, 0, 1, 4, 3, 5]  # frames b*T+t, longest first
    assert slots[:, 0].tolist() == [2, 0, 1, 4, 3, 5]               # each led by its CLS copy
    assert frames_plan.buckets[0].mask.flatten(1).sum(1).tolist() == [3, 2, 2, 2, 1, 1]
    again, _ = packed.select(torch.ones(batch, frames * locations, dtype=torch.bool))
    assert torch.equal(again.flat, packed.flat)                     # dropped tokens are not revived
    assert torch.equal(packed.keep_mask(), keep)
