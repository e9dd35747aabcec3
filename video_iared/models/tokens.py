"""Token bookkeeping for physically removed tokens: pure tensor functions, no model knowledge.

Layout shared by every backbone: a clip of ``T`` frames with ``N`` patch locations per frame is the
sequence of its ``N*T`` patch tokens in the official TimeSformer order, spatial-major and time-minor,
``(n t)``; token ``j`` is location ``j // T`` of frame ``j % T``. CLS tokens live apart from the
patches (one per sample, or one per frame for space-only attention).

A batch with dropped tokens keeps only the *present* patch tokens, packed across the batch into rows
``(M, D)`` ordered by ``(b, n, t)``; ``index`` holds each row's flat position ``b*N*T + n*T + t``.
Linear layers and the MLP run on these rows. Attention runs within *sequences* (a frame, a location,
a whole clip): a :class:`SequencePlan` places the rows into a ``(G, L)`` grid whose size follows the
kept tokens, never the dense token count:

- spatial (a frame, CLS first): a budget decision keeps the same count ``k`` in every frame, so the grid
  is ``(B*T, 1+k)`` with no padding and no mask (any SDPA backend, cuDNN/flash included); other
  decisions pad to the longest frame rounded up to 16, with a key mask.
- temporal (a location's tokens over time, at most T): the rows, already in ``(b n t)`` order, are read
  in overlapping windows of ``W`` rows (:func:`run_windows`) with a block-diagonal key mask, so the grid
  holds ~``M * W / (W - T + 1)`` slots instead of ``B*N*T``, and a 64-slot tile serves ~7 locations
  instead of one 8-frame sequence.
- joint / image (the whole sample, CLS first): ``(B, 1+k)`` for budgets, no mask.

Plans are built on the device from the layout, once per layout (the blocks up to the next drop share
them): a budget decision needs no host sync at all, any other decision one per interpreter (the kept
counts, to size the rows). Nothing here reads the device or branches on values, so a budget block
compiles into one graph (``torch.compile(fullgraph=True)``).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from einops import rearrange
from torch import Tensor

# Joint / image sequences of data-dependent length are padded to a multiple of this: few shapes.
LENGTH_STEP = 16
# Memory-efficient attention wants a bias whose rows start 16-aligned; otherwise it pads it per call.
BIAS_ALIGN = 16
# Temporal windows: rows per window (one 64x64 tile of memory-efficient attention) when T <= 32.
WINDOW = 64


@dataclass(frozen=True)
class SequencePlan:
    """Rows ``(R, C)`` laid out as ``count`` sequences of ``length`` slots; attention stays inside each.

    ``slot`` (R,): every row's position in the flattened ``(count*length)`` grid; ``None`` when the
    rows already are the grid (a free view). ``source`` (count*length,): the row each slot reads
    (:func:`slot_sources`). ``mask`` (count, 1, 1, length) bool is ``True`` for the keys attention may
    use, or (count, 1, length, length) per query (:func:`run_windows`), as an SDPA mask; ``None`` when
    every slot may attend to every slot.
    """

    count: int
    length: int
    slot: Tensor | None = None
    source: Tensor | None = None
    mask: Tensor | None = None
    _biases: dict = field(default_factory=dict, compare=False, repr=False)

    def bias(self, dtype: torch.dtype) -> Tensor | None:
        """The key mask as an additive SDPA bias (0 / -inf) in ``dtype``, made once per plan and dtype
        (every block between two interpreters reuses it), its rows 16-aligned in memory."""
        if self.mask is None:
            return None
        if dtype not in self._biases:
            width = -(-self.length // BIAS_ALIGN) * BIAS_ALIGN
            bias = torch.zeros(*self.mask.shape[:-1], width, dtype=dtype, device=self.mask.device)
            bias = bias[..., : self.length]
            self._biases[dtype] = bias.masked_fill_(~self.mask, float("-inf"))
        return self._biases[dtype]

    def gather(self, rows: Tensor) -> Tensor:
        """(R, C) -> (G, L, C): one gather; padding slots hold copies of real rows (finite values:
        masked out as keys, their outputs dropped by :meth:`scatter`)."""
        shape = (self.count, self.length, rows.shape[-1])
        if self.slot is None:
            return rows.view(shape)
        if rows.shape[0] == 0:   # every token dropped: nothing to copy
            return rows.new_zeros(shape)
        return take_rows(rows, self.source, self.slot).view(shape)

    def scatter(self, grid: Tensor) -> Tensor:
        """(G, L, C) -> (R, C), dropping the padding slots (inverse of :meth:`gather`)."""
        flat = grid.reshape(self.count * self.length, grid.shape[-1])
        if self.slot is None:
            return flat
        if not (torch.is_grad_enabled() and flat.requires_grad):
            return flat.index_select(0, self.slot)
        return take_rows(flat, self.slot, self.source, self._owned())

    def _owned(self) -> Tensor:
        """(G*L,) 1 at the slots that hold their own row, 0 at padding and copies."""
        if "owned" not in self._biases:
            owned = torch.zeros(self.count * self.length, device=self.slot.device)
            self._biases["owned"] = owned.index_fill_(0, self.slot, 1.0)
        return self._biases["owned"]


class _TakeRows(torch.autograd.Function):
    """``x[index]`` along rows whose backward is a gather too (``grad[inverse]``, zeroed where
    ``owned`` is 0) instead of ``index_add``'s atomics: deterministic, and one read per row.

    Exact for the plans' gathers: a grid slot that is not its row's own (padding, a window's copy of a
    neighbour's run) only feeds outputs that :meth:`SequencePlan.scatter` drops and keys that no kept
    query may use, so its gradient is exactly zero and the owned slot carries the row's whole gradient.
    """

    @staticmethod
    def forward(ctx, x: Tensor, index: Tensor, inverse: Tensor, owned: Tensor | None) -> Tensor:
        ctx.save_for_backward(inverse, owned)
        return x.index_select(0, index)

    @staticmethod
    def backward(ctx, grad: Tensor):
        inverse, owned = ctx.saved_tensors
        grad = grad.index_select(0, inverse)
        if owned is not None:
            grad = grad * owned.to(grad.dtype)[:, None]
        return grad, None, None, None


def take_rows(x: Tensor, index: Tensor, inverse: Tensor, owned: Tensor | None = None) -> Tensor:
    """``x.index_select(0, index)`` with an inverse-gather backward (:class:`_TakeRows`); plain
    ``index_select`` when no gradient is needed."""
    if not (torch.is_grad_enabled() and x.requires_grad):
        return x.index_select(0, index)
    return _TakeRows.apply(x, index, inverse, owned)


def slot_sources(slot: Tensor, slots: int) -> Tensor:
    """(slots,) the row each grid slot reads: its own row, and for a padding slot any real row
    (``i mod R``), so the grid is one gather of finite values rather than a zero fill plus a copy.
    Gradients at padding are exactly zero (masked keys, dropped outputs), so the copies change nothing."""
    rows = torch.arange(slot.numel(), device=slot.device)
    source = torch.arange(slots, device=slot.device) % max(slot.numel(), 1)
    return source.index_copy_(0, slot, rows)


def sequence_plan(slot: Tensor | None, count: int, length: int, keys: Tensor | None = None,
                  fill_empty: bool = False, masked: bool = True) -> SequencePlan:
    """Plan for rows at grid positions ``slot`` (R,) (``None``: the rows are the grid).

    ``keys`` (R,) bool marks the rows attention may use as keys (``None``: all). Without padding and
    with every row a key, the plan has no mask. With ``fill_empty``, a sequence without any key
    (only possible without a CLS row) uses every slot as a key: its outputs belong to no kept row,
    and a query without keys would make NaNs. ``masked=False``: no mask (the caller drops padding).
    """
    slots = count * length
    rows = slots if slot is None else slot.numel()
    source = None if slot is None else slot_sources(slot, slots)
    if (rows == slots and keys is None) or not masked:
        return SequencePlan(count, length, slot, source, None)
    device = slot.device if slot is not None else keys.device
    real = torch.ones(rows, dtype=torch.bool, device=device) if keys is None else keys
    if slot is not None:
        real = torch.zeros(slots, dtype=torch.bool, device=device).index_copy(0, slot, real)
    grid = real.view(count, length)
    if fill_empty:
        grid = grid | ~grid.any(1, keepdim=True)
    return SequencePlan(count, length, slot, source, grid.view(count, 1, 1, length))


def compact_index(keep: Tensor, count: int) -> Tensor:
    """(L,) bool with ``count`` ``True`` entries -> (count,) their increasing positions.

    ``torch.nonzero_static`` with the count known on the host: no device-to-host sync, unlike
    ``nonzero``."""
    return torch.nonzero_static(keep, size=count).squeeze(1)


def round_up(length: int, step: int, limit: int) -> int:
    """``length`` rounded up to a multiple of ``step``, at most ``limit`` (a padded sequence length)."""
    return min(limit, -(-length // step) * step)


def run_windows(run: Tensor, max_run: int, width: int = WINDOW) -> SequencePlan:
    """Rows (R,) grouped into *runs* (``run`` (R,) non-decreasing ids: each run's rows consecutive, at
    most ``max_run`` of them) -> a plan of overlapping windows in which attention stays inside each run.

    Window ``c`` reads rows ``[c*S, c*S + width)`` with stride ``S = width - max_run + 1``, so every run
    that *starts* in ``[c*S, (c+1)*S)`` lies whole in window ``c``, which owns it: its rows' outputs are
    read from there. Other rows in the window (runs owned by a neighbour, padding past the end) only
    attend within their own run, their outputs are dropped, and their gradients are exactly zero.
    The key mask (count, 1, width, width) is block-diagonal by run. ~``R * width / S`` slots in all:
    the grid shrinks with the rows, and one ``width``-slot tile holds several short runs.
    """
    rows, device = run.numel(), run.device
    max_run = int(max_run)   # a plain int also under fvcore's jit trace
    width = max(width, 1 << (2 * max_run - 1).bit_length())       # at least 2 * max_run
    stride = width - max_run + 1
    count = -(-rows // stride)
    index = torch.arange(rows, device=device)
    start = torch.searchsorted(run, run)                          # first row of each row's run
    owner = start // stride
    slot = owner * width + index - owner * stride
    position = torch.arange(count, device=device)[:, None] * stride + torch.arange(width, device=device)
    source = position.clamp(max=max(rows - 1, 0)).flatten()      # (count*width,) row read by each slot
    ids = torch.where(position < rows, run.index_select(0, source).view(count, width), -1)  # padding: -1
    mask = (ids[:, :, None] == ids[:, None, :])[:, None]          # (count, 1, width, width)
    return SequencePlan(count, width, slot, source, mask)


@dataclass(eq=False)
class TokenLayout:
    """Which patch tokens of a ``(batch, frames, locations)`` clip batch are present.

    ``index`` (M,) are the flat positions ``b*N*T + n*T + t`` of the present tokens, increasing;
    ``None`` means every token is present (the dense model). ``counts`` (B,) are the present tokens of
    each sample (``None`` when they are all equal), ``longest`` their maximum (a host int) and
    ``uniform`` says every sample has ``longest``; ``per_frame`` says every frame has exactly that many
    (budget decisions); ``longest_frame`` is the most tokens any frame kept, when known (data-dependent
    decisions read it with the count); ``present`` (B, N*T) bool is the keep mask behind ``index``.
    ``visible`` (M,) bool marks the rows attention may use as keys (``None``: all); only the masking
    baseline (:meth:`hide`) sets it. ``windowed``: the dense layout's temporal step also runs in run
    windows (packed layouts always do). Coordinates and plans are computed on first use and memoised (a
    plain dict: no lock, so ``torch.compile`` traces it), so all blocks between two interpreters
    share them.
    """

    batch: int
    frames: int
    locations: int
    device: torch.device
    index: Tensor | None = None
    counts: Tensor | None = None
    longest: int | None = None
    uniform: bool = True
    longest_frame: int | None = None
    present: Tensor | None = None
    visible: Tensor | None = None
    per_frame: int | None = None
    windowed: bool = False
    _memo: dict = field(default_factory=dict, repr=False)

    def _memoised(self, name: str, make: Callable[[], object]):
        if name not in self._memo:
            self._memo[name] = make()
        return self._memo[name]

    @property
    def tokens_per_sample(self) -> int:
        return self.frames * self.locations

    @property
    def num_rows(self) -> int:
        return self.batch * self.tokens_per_sample if self.index is None else self.index.numel()

    @property
    def flat(self) -> Tensor:
        """(M,) flat positions of the present tokens (materialised for the dense layout)."""
        if self.index is not None:
            return self.index
        return self._memoised("flat", lambda: torch.arange(self.batch * self.tokens_per_sample,
                                                           device=self.device))

    @property
    def sample(self) -> Tensor:
        """(M,) sample of every row."""
        return self._memoised("sample", lambda: self.flat // self.tokens_per_sample)

    @property
    def frame(self) -> Tensor:
        """(M,) frame of every row."""
        return self._memoised("frame", lambda: self.flat % self.frames)

    @property
    def location(self) -> Tensor:
        """(M,) spatial location of every row."""
        return self._memoised("location", lambda: (self.flat // self.frames) % self.locations)

    def keep_mask(self) -> Tensor:
        """(B, N*T) bool, ``True`` where the token is present."""
        if self.index is None:
            return torch.ones(self.batch, self.tokens_per_sample, dtype=torch.bool, device=self.device)
        return self.present

    def _row_of_position(self) -> Tensor:
        """(B*N*T,) the row holding each flat position (meaningful where present)."""
        total = self.batch * self.tokens_per_sample
        rows = torch.arange(self.num_rows, device=self.device)
        return torch.zeros(total, dtype=torch.long, device=self.device).index_copy_(0, self.flat, rows)

    def select(self, keep: Tensor, per_sample: int | None = None,
               per_frame: int | None = None) -> tuple[TokenLayout, Tensor]:
        """Drop more tokens: ``keep`` (B, N*T) bool -> (new layout, rows of the surviving tokens).

        Tokens absent from this layout stay absent whatever ``keep`` says (hierarchical dropping).
        ``per_frame``: every frame keeps exactly this many present tokens (a budget decision), or
        ``per_sample``: every sample does; the row count is then known without reading the device.
        Otherwise one host read sizes it.
        """
        if self.index is not None:
            keep = keep & self.present
        counts, longest_frame = None, per_frame   # counts: only a layout of unequal samples needs them
        if per_frame is not None:
            per_sample = per_frame * self.frames
        if per_sample is None:   # the one host read of a data-dependent decision
            counts = keep.sum(1)
            per_location = rearrange(keep, "b (n t) -> b n t", t=self.frames).sum(1)
            sizes = torch.stack([counts.sum(), counts.max(), per_location.max()])
            total, longest, longest_frame = sizes.tolist()
            uniform = False
        else:
            total, longest, uniform = per_sample * self.batch, per_sample, True
        index = compact_index(keep.flatten(), total)
        rows = index if self.index is None else self._row_of_position().index_select(0, index)
        visible = None if self.visible is None else self.visible.index_select(0, rows)
        layout = TokenLayout(self.batch, self.frames, self.locations, self.device, index, counts,
                             longest, uniform, longest_frame, keep, visible, per_frame, self.windowed)
        return layout, rows

    def hide(self, keep: Tensor) -> TokenLayout:
        """Masking instead of removal: tokens whose ``keep`` (B, N*T) entry is ``False`` stay rows but
        are hidden from attention as keys (the naive alternative: same results for the kept tokens,
        dense cost)."""
        visible = keep.flatten().index_select(0, self.flat)
        if self.visible is not None:
            visible = visible & self.visible
        return TokenLayout(self.batch, self.frames, self.locations, self.device, self.index, self.counts,
                           self.longest, self.uniform, self.longest_frame, self.present, visible,
                           self.per_frame, self.windowed)

    def _keys(self, num_cls: int) -> Tensor | None:
        """(num_cls + M,) key flags of the rows ``[CLS rows, patches]``; ``None``: every row is a key."""
        if self.visible is None:
            return None
        return torch.cat([self.visible.new_ones(num_cls), self.visible])

    # Attention sequences. CLS rows, when a sequence has one, come first in the row order and sit in
    # slot 0 of their sequence.
    @property
    def temporal_sequences(self) -> SequencePlan:
        """Rows by (sample, location) over time: divided attention's temporal step. Dense (or masked)
        layouts use the ``(b n) t`` grid, whose slots are the rows' flat positions; packed rows are
        read in windows of whole runs (:func:`run_windows`)."""
        return self._memoised("temporal", self._temporal_sequences)

    def _temporal_sequences(self) -> SequencePlan:
        count = self.batch * self.locations
        if (self.index is None and not self.windowed) or self.visible is not None:   # slot = flat position
            return sequence_plan(self.index, count, self.frames, self._keys(0), fill_empty=True)
        return run_windows(self.flat // self.frames, self.frames)

    @property
    def frame_sequences(self) -> SequencePlan:
        """Rows ``[B*T CLS rows, M patches]`` by (sample, frame), CLS in slot 0 (divided and space-only
        attention's spatial step): ``N + 1`` slots with each patch at ``1 + location``; with a count per
        frame (budget decisions), ``1 + per_frame`` slots, unpadded; or, when the most tokens a frame
        kept is known (data-dependent decisions), that count rounded up to a multiple of
        ``LENGTH_STEP``. Packed frames hold their tokens in location order after the CLS."""
        return self._memoised("frames", self._frame_sequences)

    def _frame_sequences(self) -> SequencePlan:
        count, grid = self.batch * self.frames, self.locations + 1
        if self.index is None or self.visible is not None:   # every patch at its location
            cls = torch.arange(count, device=self.device) * grid
            patches = (self.sample * self.frames + self.frame) * grid + 1 + self.location
            return sequence_plan(torch.cat([cls, patches]), count, grid, self._keys(count))
        length = grid
        if self.per_frame is not None:
            length = 1 + self.per_frame
        elif self.longest_frame is not None:
            length = 1 + round_up(self.longest_frame, LENGTH_STEP, grid - 1)
        cls = torch.arange(count, device=self.device) * length
        present = self.present.view(self.batch, self.locations, self.frames)      # (B, N, T)
        if length == grid:   # at its location
            position = self.location
        else:                # packed: rank among the frame's present tokens
            position = (present.cumsum(1) - 1).flatten().index_select(0, self.flat)
        slot = torch.cat([cls, (self.sample * self.frames + self.frame) * length + 1 + position])
        source = slot_sources(slot, count * length)
        if self.per_frame is not None:   # every frame full: no padding, no mask
            return SequencePlan(count, length, slot, source)
        if length == grid:
            keys = torch.cat([present.new_ones(self.batch, 1, self.frames), present], 1)   # (B, 1+N, T)
            keys = rearrange(keys, "b l t -> (b t) l")
        else:
            keys = torch.arange(length, device=self.device) <= present.sum(1).view(count, 1)   # CLS + kept
        return SequencePlan(count, length, slot, source, keys.view(count, 1, 1, length))

    @property
    def sample_with_cls(self) -> Tensor:
        """(B + M,) sample of every row of ``[B CLS rows, M patches]`` (the rows of ``sample_sequences``)."""
        return self._memoised("sample_with_cls", lambda: torch.cat(
            [torch.arange(self.batch, device=self.device), self.sample]))

    @property
    def sample_sequences(self) -> SequencePlan:
        """Rows ``[B CLS rows, M patches]`` by sample (joint attention, images): CLS in slot 0, the
        sample's present tokens packed after it in row order. ``1 + longest`` slots when every sample
        keeps the same count (no padding, no mask), else rounded up to a multiple of ``LENGTH_STEP``."""
        return self._memoised("samples", self._sample_sequences)

    def _sample_sequences(self) -> SequencePlan:
        total = self.tokens_per_sample
        if self.index is None:
            length = 1 + total
        elif self.uniform:
            length = 1 + self.longest
        else:
            length = 1 + round_up(self.longest, LENGTH_STEP, total)
        cls = torch.arange(self.batch, device=self.device) * length
        rows = torch.arange(self.num_rows, device=self.device)
        if self.index is None or self.uniform:   # row m: sample m // per, rank m % per
            patches = rows + rows // (length - 1) + 1
        else:
            first = self.counts.cumsum(0) - self.counts          # first row of every sample
            patches = self.sample * length + 1 + rows - first.index_select(0, self.sample)
        return sequence_plan(torch.cat([cls, patches]), self.batch, length, self._keys(self.batch))

    def query_sequences(self, cls_per_sample: int) -> SequencePlan:
        """Patch rows by the CLS row that queries them (interpreters, CLS-attention scores): one
        sequence of ``N*T`` slots per sample (the dense layout), or, with a CLS per frame, one of
        ``N`` slots per frame. Padding is unmasked: callers drop its values (:meth:`TokenState.per_token`)."""
        if cls_per_sample == 1:
            if self.index is None:
                return SequencePlan(self.batch, self.tokens_per_sample)
            if self.uniform:   # every sample's rows are consecutive and as many: the rows are the grid
                return SequencePlan(self.batch, self.longest)
            return SequencePlan(self.batch, self.tokens_per_sample, self.index,
                                slot_sources(self.index, self.batch * self.tokens_per_sample))
        slot = (self.sample * self.frames + self.frame) * self.locations + self.location
        return sequence_plan(slot, self.batch * self.frames, self.locations, masked=False)


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
    def cls_sample(self) -> Tensor | None:
        """(B*C,) sample of every CLS row; ``None`` with one CLS per sample (row b is sample b)."""
        if self.cls_per_sample == 1:
            return None
        return torch.arange(self.cls.shape[0], device=self.cls.device) // self.cls_per_sample

    @property
    def rows_by_query(self) -> SequencePlan:
        """Patch rows by their CLS row (sequence g = CLS row g), for per-query products."""
        return self.layout.query_sequences(self.cls_per_sample)

    def per_token(self, values: Tensor) -> Tensor:
        """Values on the :attr:`rows_by_query` grid (Q, L) -> (B, N*T) per token, 0 where absent."""
        layout = self.layout
        if self.cls_per_sample == 1 and layout.index is not None and layout.uniform:   # grid = rows
            dense = values.new_zeros(layout.batch * layout.tokens_per_sample)
            return dense.index_copy(0, layout.index, values.flatten()).view(layout.batch, -1)
        if self.cls_per_sample > 1:
            values = rearrange(values, "(b t) n -> b (n t)", b=self.layout.batch)
        return values if self.layout.present is None else values * self.layout.present

    def select(self, keep: Tensor, per_sample: int | None = None, per_frame: int | None = None) -> TokenState:
        """Physically remove the patch rows whose ``keep`` (B, N*T) entry is ``False`` (``per_sample``,
        ``per_frame``: see :meth:`TokenLayout.select`)."""
        layout, rows = self.layout.select(keep, per_sample, per_frame)
        return TokenState(self.cls, self.patches.index_select(0, rows), layout)

    def hide(self, keep: Tensor) -> TokenState:
        """Mask the patch rows whose ``keep`` (B, N*T) entry is ``False`` out of attention, keeping them
        as rows (the masking baseline of :meth:`select`)."""
        return TokenState(self.cls, self.patches, self.layout.hide(keep))
