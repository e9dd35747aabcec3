"""Token bookkeeping for physically removed tokens: pure tensor functions, no model knowledge.

Layout shared by every backbone (``ARCHITECTURE.md``): a clip of ``T`` frames with ``N`` patch
locations per frame is the sequence of its ``N*T`` patch tokens in the official TimeSformer order,
spatial-major and time-minor, ``(n t)``; token ``j`` is location ``j // T`` of frame ``j % T``.
CLS tokens live apart from the patches (one per sample, or one per frame for space-only attention).

A batch with dropped tokens keeps only the *present* patch tokens, packed across the batch into rows
``(M, D)`` ordered by ``(b, n, t)``; ``index`` holds each row's flat position ``b*N*T + n*T + t``.
Attention runs over *groups* of rows (a frame, a location, a whole clip), padded to the longest
group and masked: :class:`TokenGroups` is the gather/scatter plan, built once per layout and reused
by every block until the next interpreter drops more tokens.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch
from torch import Tensor


@dataclass(frozen=True)
class TokenGroups:
    """Gather rows ``(R, C)`` into padded groups ``(G, L, C)`` and scatter results back.

    ``index`` (G, L): source row of every slot (padding slots read row 0 and are masked);
    ``slot`` (R,): flat slot ``g*L + l`` of every row. Both are ``None`` when the rows already are
    the groups in order (``R == G*L``), so gathering is a free ``view``. ``mask`` (G, 1, 1, L) is
    ``True`` for real keys (an SDPA boolean mask), ``None`` when no slot is padding.
    """

    num_groups: int
    length: int
    index: Tensor | None
    slot: Tensor | None
    mask: Tensor | None

    def gather(self, rows: Tensor) -> Tensor:
        """(R, C) -> (G, L, C)."""
        if self.index is None:
            return rows.view(self.num_groups, self.length, rows.shape[-1])
        return rows.index_select(0, self.index.flatten()).view(self.num_groups, self.length, -1)

    def scatter(self, grouped: Tensor) -> Tensor:
        """(G, L, C) -> (R, C), dropping the padding slots."""
        flat = grouped.reshape(self.num_groups * self.length, grouped.shape[-1])
        return flat if self.slot is None else flat.index_select(0, self.slot)



def make_groups(group_of_row: Tensor, num_groups: int | None = None) -> TokenGroups:
    """Plan for rows labelled with a group id.

    Without ``num_groups`` the ids may be any integers; groups are numbered by increasing id and ids
    without rows get no group. With ``num_groups`` group ``g`` is id ``g`` and an id without rows is a
    group of padding only (fine for per-group products, not for softmax attention). Rows keep their
    relative order inside a group, so a row placed first in the input (a CLS token) is slot 0.
    """
    num_rows = group_of_row.numel()
    device = group_of_row.device
    if num_groups is None:
        ids, group = torch.unique(group_of_row, return_inverse=True)
        num_groups = ids.numel()
    else:
        group = group_of_row
    counts = torch.bincount(group, minlength=num_groups)
    length = int(counts.max()) if num_rows else 0
    order = torch.argsort(group, stable=True)
    starts = counts.cumsum(0) - counts
    rank = torch.empty_like(order)
    rank[order] = torch.arange(num_rows, device=device)
    slot = group * length + rank - starts[group]
    rows = torch.arange(num_rows, device=device)
    if num_rows == num_groups * length and bool((slot == rows).all()):
        return TokenGroups(num_groups, length, None, None, None)
    index = torch.zeros(num_groups * length, dtype=torch.long, device=device)
    index[slot] = rows
    valid = torch.zeros(num_groups * length, dtype=torch.bool, device=device)
    valid[slot] = True
    mask = None if num_rows == num_groups * length else valid.view(num_groups, 1, 1, length)
    return TokenGroups(num_groups, length, index.view(num_groups, length), slot, mask)


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
    ``None`` means every token is present (the dense model). The group plans are computed on first
    use and cached, so all blocks between two interpreters share them.
    """

    batch: int
    frames: int
    locations: int
    device: torch.device
    index: Tensor | None = None

    @property
    def tokens_per_sample(self) -> int:
        return self.frames * self.locations

    @cached_property
    def flat(self) -> Tensor:
        """(M,) flat positions of the present tokens (materialised for the dense layout)."""
        if self.index is not None:
            return self.index
        return torch.arange(self.batch * self.tokens_per_sample, device=self.device)

    @property
    def num_rows(self) -> int:
        return self.batch * self.tokens_per_sample if self.index is None else self.index.numel()

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
        layout = TokenLayout(self.batch, self.frames, self.locations, self.device, self.flat.index_select(0, rows))
        return layout, rows

    # Attention groups. CLS rows, when a group has one, come first in the row order (slot 0).
    @cached_property
    def temporal_groups(self) -> TokenGroups:
        """Rows grouped by (sample, location): divided attention's temporal step (no CLS)."""
        return make_groups(self.flat // self.frames)

    @cached_property
    def frame_groups(self) -> TokenGroups:
        """Rows ``[B*T CLS rows, M patches]`` grouped by (sample, frame), CLS in slot 0."""
        cls = torch.arange(self.batch * self.frames, device=self.device)
        return make_groups(torch.cat([cls, self.sample * self.frames + self.frame]))

    @cached_property
    def sample_groups(self) -> TokenGroups:
        """Rows ``[B CLS rows, M patches]`` grouped by sample, CLS in slot 0 (joint attention)."""
        return make_groups(torch.cat([torch.arange(self.batch, device=self.device), self.sample]))



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
