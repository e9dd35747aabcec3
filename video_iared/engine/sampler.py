"""A DistributedSampler that can start mid-epoch, so a resumed run sees exactly the remaining items.

The epoch's order is a permutation seeded by (seed, epoch) alone, padded with its first items to a
multiple of the number of processes and dealt out rank by rank (``indices[rank::world]``), as
``torch.utils.data.DistributedSampler`` does. On resume, ``set_start(k)`` skips the first ``k`` items
this process already consumed. Because the data layer seeds each item's augmentation from
(seed, epoch, index), which DataLoader worker loads an item no longer matters.
"""
from __future__ import annotations

import math
from typing import Iterator

import torch
from torch.utils.data import Sampler

from video_iared.config import ConfigError

__all__ = ["ResumableSampler", "videos_per_batch"]


def videos_per_batch(batch_size: int, num_samples: int) -> int:
    """Videos per loader batch when each gives ``num_samples`` clips and a step holds ``batch_size``
    clips (repeated sampling: the step, its memory and the LR scaling by clips stay the same; an epoch,
    one pass over the videos, then has ``num_samples`` times the steps and clips)."""
    if num_samples < 1 or batch_size % num_samples:
        raise ConfigError(f"data.batch_size={batch_size} must be a multiple of data.num_samples="
                          f"{num_samples} (a batch holds whole videos, each giving num_samples clips)")
    return batch_size // num_samples


class ResumableSampler(Sampler[int]):
    """Per-process indices of an epoch, from item ``start`` on (see module docstring)."""

    def __init__(self, num_items: int, *, num_replicas: int = 1, rank: int = 0, seed: int = 0,
                 shuffle: bool = True) -> None:
        if num_items < 1:
            raise ValueError("the dataset is empty")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} outside {num_replicas} replicas")
        self.num_items, self.num_replicas, self.rank = num_items, num_replicas, rank
        self.seed, self.shuffle = seed, shuffle
        self.per_replica = math.ceil(num_items / num_replicas)
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self.start = epoch, 0

    def set_start(self, start: int) -> None:
        """Skip this process's first ``start`` items of the current epoch."""
        if not 0 <= start <= self.per_replica:
            raise ValueError(f"cannot skip {start} of {self.per_replica} items")
        self.start = start

    def epoch_indices(self) -> list[int]:
        """All of this process's indices for the current epoch (ignoring ``start``)."""
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.num_items, generator=generator).tolist()
        else:
            order = list(range(self.num_items))
        total = self.per_replica * self.num_replicas
        order += (order * math.ceil(total / len(order)))[: total - len(order)]
        return order[self.rank:total:self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        return iter(self.epoch_indices()[self.start:])

    def __len__(self) -> int:
        return self.per_replica - self.start
