"""What a forward dispatches: aten ops, host reads and attention calls — a CPU proxy for GPU overhead.

On a GPU every aten op is (at most) one kernel launch, and every *host read* — an op whose result
the host must see before it can go on (``.item()``, ``.tolist()``, ``int()``/``bool()`` of a tensor,
``nonzero``, ``unique``, boolean-mask indexing, ...) — is a device-to-host sync that idles the GPU.
Counting them on a CPU shows launch and sync overhead anywhere, with no GPU. Attention calls are
counted with the shapes they see: each new shape is a new kernel plan for cuDNN's SDPA backend.

    with OpCounter() as counts:
        model(clip)
    counts.ops, counts.host_reads, counts.attention_calls, counts.attention_shapes
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

# aten ops whose output size or value the host needs: a device-to-host sync on a GPU
SYNCING_OPS = frozenset({"_local_scalar_dense", "nonzero", "_unique", "_unique2", "unique_dim",
                         "unique_consecutive", "equal", "masked_select", "bincount", "histc"})


def _is_host_read(name: str, args: tuple, kwargs: dict) -> bool:
    if name in SYNCING_OPS:
        return True
    if name == "repeat_interleave":          # tensor repeats without output_size: the host sums them
        return isinstance(args[0], torch.Tensor) and "output_size" not in kwargs and (
            len(args) == 1 or isinstance(args[1], torch.Tensor))
    if name in ("index", "index_put", "index_put_"):   # boolean-mask indexing runs nonzero
        indices = args[1] if len(args) > 1 else ()
        return any(i is not None and i.dtype == torch.bool for i in indices)
    return False


@dataclass
class OpCounts:
    """Per-name counts of dispatched aten ops, host reads and attention calls (with their shapes)."""

    ops_by_name: Counter = field(default_factory=Counter)
    host_reads_by_name: Counter = field(default_factory=Counter)
    attention_shapes: Counter = field(default_factory=Counter)   # (q shape, masked) -> calls

    @property
    def ops(self) -> int:
        return sum(self.ops_by_name.values())

    @property
    def host_reads(self) -> int:
        return sum(self.host_reads_by_name.values())

    @property
    def attention_calls(self) -> int:
        return sum(self.attention_shapes.values())

    def summary(self) -> str:
        return (f"{self.ops} aten ops, {self.host_reads} host reads, {self.attention_calls} attention calls "
                f"over {len(self.attention_shapes)} shapes")


class _Dispatch(TorchDispatchMode):
    def __init__(self, counts: OpCounts) -> None:
        super().__init__()
        self.counts = counts

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__
        self.counts.ops_by_name[name] += 1
        if _is_host_read(name, args, kwargs):
            self.counts.host_reads_by_name[name] += 1
        return func(*args, **kwargs)


class _Functions(TorchFunctionMode):
    """Python-level calls the dispatcher does not show: SDPA (before it picks a backend, which may
    decompose it) and ``Tensor.tolist`` (on a CPU tensor it reads memory without an aten op)."""

    def __init__(self, counts: OpCounts) -> None:
        super().__init__()
        self.counts = counts

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention:
            mask = kwargs.get("attn_mask", args[3] if len(args) > 3 else None)
            self.counts.attention_shapes[(tuple(args[0].shape), mask is not None)] += 1
        elif func is torch.Tensor.tolist:
            self.counts.host_reads_by_name["tolist"] += 1
        return func(*args, **kwargs)


class OpCounter:
    """Context manager that counts what the code inside it dispatches (:class:`OpCounts`)."""

    def __init__(self) -> None:
        self.counts = OpCounts()
        self._modes = [_Functions(self.counts), _Dispatch(self.counts)]

    def __enter__(self) -> OpCounts:
        for mode in self._modes:
            mode.__enter__()
        return self.counts

    def __exit__(self, *exc) -> None:
        for mode in reversed(self._modes):
            mode.__exit__(*exc)
