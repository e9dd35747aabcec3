"""Token bookkeeping for physically removed tokens: pure tensor functions, no model knowledge.

Layout shared by every backbone (``ARCHITECTURE.md``): a clip of ``T`` frames with ``N`` patch
locations per frame is the sequence of its ``N*T`` patch tokens in the official TimeSformer order,
spatial-major and time-minor, ``(n t)``; token ``j`` is location ``j // T`` of frame ``j % T``.
CLS tokens live apart from the patches (one per sample, or one per frame for space-only attention).

A batch with dropped tokens keeps only the *present* patch tokens, packed across the batch into rows
``(M, D)`` ordered by ``(b, n, t)``; ``index`` holds each row's flat position ``b*N*T + n*T + t``.
Attention runs over *groups* of rows (a frame, a location, a whole clip); groups of similar length
are padded into one batch with a key mask (length buckets). :class:`TokenGroups` is the gather/scatter
plan, built once per layout and reused by every block until the next interpreter drops more tokens.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch
from torch import Tensor


# Groups whose lengths differ by less than this share one padded batch (<= 12.5 % padding).
BUCKET_TOLERANCE = 0.125


@dataclass(frozen=True)
class GroupBucket:
    """Groups of similar length padded to one ``(G, L, C)`` batch.

    ``groups`` (G,) are their ids; ``index`` (G, L) the source row of every slot (padding slots read
    row 0), ``None`` when the rows already are these groups in order (a free view); ``mask``
    (G, 1, 1, L) is ``True`` for real keys (an SDPA boolean mask), ``None`` without padding.
    """

    groups: Tensor
    length: int
    index: Tensor | None
    mask: Tensor | None

    def gather(self, rows: Tensor) -> Tensor:
        """(R, C) -> (G, L, C)."""
        count = self.groups.numel()
        if self.index is None:
            return rows.view(count, self.length, rows.shape[-1])
        return rows.index_select(0, self.index.flatten()).view(count, self.length, rows.shape[-1])


@dataclass(frozen=True)
class TokenGroups:
    """Plan that gathers rows ``(R, C)`` into length buckets of padded groups and scatters back.

    ``slot`` (R,): position of every row among the concatenated, flattened bucket slots; ``None``
    when that concatenation is the rows themselves (the dense model: no copy at all).
    """

    buckets: tuple[GroupBucket, ...]
    slot: Tensor | None

    def gather(self, rows: Tensor) -> list[Tensor]:
        """(R, C) -> one (G_k, L_k, C) tensor per bucket."""
        return [bucket.gather(rows) for bucket in self.buckets]

    def scatter(self, grouped: list[Tensor] | Tensor) -> Tensor:
        """Per-bucket (G_k, L_k, C) -> (R, C), dropping the padding slots.

        A single tensor (G, L, C) holds every group in id order, padded to any ``L`` >= the longest
        (what :func:`~video_iared.models.layers.capture_cls_attention` records); for a one-bucket plan in
        id order the two forms coincide.
        """
        if isinstance(grouped, Tensor):
            grouped = [grouped[bucket.groups, : bucket.length] for bucket in self.buckets]
        flat = [part.reshape(-1, part.shape[-1]) for part in grouped]
        flat = flat[0] if len(flat) == 1 else torch.cat(flat)
        return flat if self.slot is None else flat.index_select(0, self.slot)


def _bucket_bounds(lengths: list[int], tolerance: float) -> list[int]:
    """Split lengths sorted in decreasing order into runs whose shortest is >= (1 - tolerance) x longest."""
    bounds, longest = [0], lengths[0] if lengths else 0
    for i, length in enumerate(lengths):
        if length < (1 - tolerance) * longest:
            bounds.append(i)
            longest = length
    return bounds + [len(lengths)]


def make_groups(group_of_row: Tensor, num_groups: int | None = None,
                tolerance: float = BUCKET_TOLERANCE) -> TokenGroups:
    """Plan for rows labelled with a group id.

    Without ``num_groups`` the ids may be any integers (groups are the distinct ids); with it, ids are
    ``0 .. num_groups-1`` and the buckets' ``groups`` refer to them. Groups without rows are left out.
    Rows keep their relative order inside a group, so a row placed first in the input (a CLS token)
    is slot 0. Groups are sorted by decreasing length into buckets padded by at most ``tolerance``.
    """
    num_rows = group_of_row.numel()
    device = group_of_row.device
    if num_groups is None:
        ids, group = torch.unique(group_of_row, return_inverse=True)
    else:
        ids, group = torch.arange(num_groups, device=device), group_of_row
    counts = torch.bincount(group, minlength=ids.numel())
    lengths, by_length = torch.sort(counts, descending=True, stable=True)
    nonempty = int((lengths > 0).sum())
    lengths, by_length = lengths[:nonempty].tolist(), by_length[:nonempty]
    bounds = _bucket_bounds(lengths, tolerance)
    # first slot of every group: groups laid out bucket after bucket, each padded to its bucket's length
    padded = torch.repeat_interleave(
        torch.tensor([lengths[lo] for lo in bounds[:-1]], dtype=torch.long, device=device),
        torch.tensor([hi - lo for lo, hi in zip(bounds, bounds[1:])], dtype=torch.long, device=device))
    base = torch.zeros_like(counts)
    base[by_length] = padded.cumsum(0) - padded
    order = torch.argsort(group, stable=True)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(num_rows, device=device)
    slot = base[group] + rank - (counts.cumsum(0) - counts)[group]
    total = int(padded.sum())
    rows = torch.arange(num_rows, device=device)
    if len(bounds) == 2 and total == num_rows and bool((slot == rows).all()):
        return TokenGroups((GroupBucket(ids[by_length], lengths[0] if lengths else 0, None, None),), None)
    index = torch.zeros(total, dtype=torch.long, device=device)
    index[slot] = rows
    valid = torch.zeros(total, dtype=torch.bool, device=device)
    valid[slot] = True
    buckets, offset = [], 0
    for lo, hi in zip(bounds, bounds[1:]):
        count, length = hi - lo, lengths[lo]
        part = slice(offset, offset + count * length)
        mask = valid[part].view(count, 1, 1, length)
        buckets.append(GroupBucket(ids[by_length[lo:hi]], length, index[part].view(count, length),
                                   None if bool(mask.all()) else mask))
        offset += count * length
    return TokenGroups(tuple(buckets), slot)


def hide_keys(groups: TokenGroups, visible: Tensor) -> TokenGroups:
    """The same plan with the rows whose ``visible`` (R,) is ``False`` masked out as attention keys.

    They stay rows (queries, linear layers, MLP). A group without any visible row keeps all its keys:
    its outputs belong to hidden rows only, and a query without keys would make NaNs.
    """
    buckets, offset = [], 0
    for bucket in groups.buckets:
        count, length = bucket.groups.numel(), bucket.length
        rows = (torch.arange(offset, offset + count * length, device=visible.device).view(count, length)
                if bucket.index is None else bucket.index)
        real = (torch.ones_like(rows, dtype=torch.bool) if bucket.mask is None
                else bucket.mask.view(count, length))
        keys = visible[rows] & real                                         # padding is never a key
        keys = torch.where(keys.any(1, keepdim=True), keys, real)
        buckets.append(GroupBucket(bucket.groups, length, bucket.index, keys.view(count, 1, 1, length)))
        offset += count * length
    return TokenGroups(tuple(buckets), groups.slot)


def kept_index(keep: Tensor) -> Tensor:
    """(B, L) bool keep mask -> (M,) increasing flat positions ``b*L + j`` of the kept tokens."""
    return keep.flatten().nonzero().squeeze(1)


def pack(tokens: Tensor, index: Tensor) -> Tensor:
    """(B, L, D) dense tokens -> (M, D) rows at the flat positions ``index``."""
    return tokens.flatten(0, 1).index_select(0, index)


def unpack(rows: Tensor, index: Tensor, batch: int, length: int, fill: float = 0.0) -> Tensor:
    """(M, ...) rows -> (B, L, ...) dense tensor, ``fill`` at absent positions (inverse of :func:`pack`)."""
    out = rows.new_full((batch * length, *rows.shape[1:]), fill)
    return out.index_copy(0, index, rows).view(batch, length, *rows.shape[1:])


@dataclass(eq=False)
class TokenLayout:
    """Which patch tokens of a ``(batch, frames, locations)`` clip batch are present.

    ``index`` (M,) are the flat positions ``b*N*T + n*T + t`` of the present tokens, increasing;
    ``None`` means every token is present (the dense model). ``visible`` (M,) bool marks the rows that
    attention may use as keys (``None``: all); only the masking baseline (:meth:`hide`) sets it. The
    group plans are computed on first use and cached, so all blocks between two interpreters share them.
    """

    batch: int
    frames: int
    locations: int
    device: torch.device
    index: Tensor | None = None
    visible: Tensor | None = None

    @property
    def tokens_per_sample(self) -> int:
        return self.frames * self.locations

    @cached_property
    def flat(self) -> Tensor:
        """(M,) flat positions of the present tokens (materialised for the dense layout)."""
        if self.index is not None:
            return self.index
        return torch.arange(self.batch * self.tokens_per_sample, device=self.device)

    @cached_property
    def sample(self) -> Tensor:
        """(M,) sample of every row."""
        return self.flat // self.tokens_per_sample

    @cached_property
    def frame(self) -> Tensor:
        """(M,) frame of every row."""
        return self.flat % self.frames

    @cached_property
    def location(self) -> Tensor:
        """(M,) spatial location of every row."""
        return (self.flat // self.frames) % self.locations

    def keep_mask(self) -> Tensor:
        """(B, N*T) bool, ``True`` where the token is present."""
        keep = torch.zeros(self.batch * self.tokens_per_sample, dtype=torch.bool, device=self.device)
        keep[self.flat] = True
        return keep.view(self.batch, self.tokens_per_sample)

    def select(self, keep: Tensor) -> tuple[TokenLayout, Tensor]:
        """Drop more tokens: ``keep`` (B, N*T) bool -> (new layout, positions of surviving rows).

        Tokens absent from this layout stay absent whatever ``keep`` says (hierarchical dropping).
        """
        rows = keep.flatten().index_select(0, self.flat).nonzero().squeeze(1)
        index = self.flat.index_select(0, rows)
        visible = None if self.visible is None else self.visible.index_select(0, rows)
        layout = TokenLayout(self.batch, self.frames, self.locations, self.device, index, visible)
        return layout, rows

    def hide(self, keep: Tensor) -> TokenLayout:
        """Masking instead of removal: tokens whose ``keep`` (B, N*T) entry is ``False`` stay rows but
        are hidden from attention as keys (the naive alternative: same results for the kept tokens,
        dense cost)."""
        visible = keep.flatten().index_select(0, self.flat)
        if self.visible is not None:
            visible = visible & self.visible
        return TokenLayout(self.batch, self.frames, self.locations, self.device, self.index, visible)

    def _plan(self, group_of_row: Tensor, num_cls: int = 0) -> TokenGroups:
        """Plan for rows ``[num_cls CLS rows, M patches]``; hidden patch rows masked out as keys."""
        groups = make_groups(group_of_row)
        if self.visible is None:
            return groups
        return hide_keys(groups, torch.cat([self.visible.new_ones(num_cls), self.visible]))

    # Attention groups. CLS rows, when a group has one, come first in the row order (slot 0).
    @cached_property
    def temporal_groups(self) -> TokenGroups:
        """Rows grouped by (sample, location): divided attention's temporal step (no CLS)."""
        return self._plan(self.flat // self.frames)

    @cached_property
    def frame_groups(self) -> TokenGroups:
        """Rows ``[B*T CLS rows, M patches]`` grouped by (sample, frame), CLS in slot 0."""
        cls = torch.arange(self.batch * self.frames, device=self.device)
        return self._plan(torch.cat([cls, self.sample * self.frames + self.frame]), self.batch * self.frames)

    @cached_property
    def sample_with_cls(self) -> Tensor:
        """(B + M,) sample of every row of ``[B CLS rows, M patches]`` (the rows of ``sample_groups``)."""
        return torch.cat([torch.arange(self.batch, device=self.device), self.sample])

    @cached_property
    def sample_groups(self) -> TokenGroups:
        """Rows ``[B CLS rows, M patches]`` grouped by sample, CLS in slot 0 (joint attention)."""
        return self._plan(self.sample_with_cls, self.batch)


@dataclass
class TokenState:
    """Token state between blocks: CLS rows ``(B*C, D)`` (C = 1, or T for space-only attention),
    present patch rows ``(M, D)`` and their :class:`TokenLayout`."""

    cls: Tensor
    patches: Tensor
    layout: TokenLayout

    @property
    def cls_per_sample(self) -> int:
        return self.cls.shape[0] // self.layout.batch

    @property
    def cls_sample(self) -> Tensor:
        """(B*C,) sample of every CLS row."""
        return torch.arange(self.cls.shape[0], device=self.cls.device) // self.cls_per_sample

    @cached_property
    def cls_of_row(self) -> Tensor:
        """(M,) CLS row that belongs to every patch row (its sample's, or its frame's)."""
        if self.cls_per_sample == 1:
            return self.layout.sample
        return self.layout.sample * self.layout.frames + self.layout.frame

    @cached_property
    def rows_by_cls(self) -> TokenGroups:
        """Patch rows grouped by their CLS row (group g = CLS row g), for per-query products."""
        return make_groups(self.cls_of_row, num_groups=self.cls.shape[0])

    def select(self, keep: Tensor) -> TokenState:
        """Physically remove the patch rows whose ``keep`` (B, N*T) entry is ``False``."""
        layout, rows = self.layout.select(keep)
        return TokenState(self.cls, self.patches.index_select(0, rows), layout)

    def hide(self, keep: Tensor) -> TokenState:
        """Mask the patch rows whose ``keep`` (B, N*T) entry is ``False`` out of attention, keeping them
        as rows (the masking baseline of :meth:`select`)."""
        return TokenState(self.cls, self.patches, self.layout.hide(keep))
