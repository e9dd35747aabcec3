"""Validation during training: clip top-1 and, for IA-RED2 models, kept share and GFLOPs per view.

Runs on every process over its shard of the validation set; the sampler's padding duplicates are
masked out (item ``j`` of rank ``r`` sits at position ``r + j * world`` of the padded list) so the
figures are exact on any number of processes. Unreadable videos (label -1) are left out and counted.
"""
from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader

from video_iared.data.transforms import normalize_on_device
from video_iared.errors import UserError
from video_iared.models.cost import forward_macs

from . import distributed, policy
from .datasets import InputSpec
from .stages import StageInfo, dense_logits, forward, kept_counts

__all__ = ["validate"]


@torch.no_grad()
def validate(model: nn.Module, loader: DataLoader, *, spec: InputSpec, device: torch.device,
             autocast: Callable[[], AbstractContextManager], info: StageInfo, active: int,
             decision: str = "threshold", rank: int = 0, world_size: int = 1) -> dict[str, float]:
    """``top1`` (%), and with interpreters ``kept_share`` (block-weighted), ``kept_share_g*`` and
    ``gflops``, under the interpreters' ``decision`` (``threshold`` | ``budget`` | ``none``)."""
    model.eval()
    num_items = len(loader.dataset)
    sums = torch.zeros(4 + info.num_groups, dtype=torch.float64)  # count, correct, macs, skipped, kept
    seen = 0
    for batch in loader:
        clips = normalize_on_device(batch["clip"].to(device, non_blocking=True), spec.mean, spec.std)
        labels = batch["label"].to(device)
        size = labels.shape[0]
        in_list = (rank + (seen + torch.arange(size)) * world_size) < num_items
        valid = in_list & (batch["label"] >= 0)
        sums[3] += (in_list & ~valid).sum()
        seen += size
        with autocast():
            if info.num_groups:
                out = forward(model, clips, decision=decision, active_groups=active)
                logits = out.logits
            else:
                logits = dense_logits(model, clips, info)
        sums[0] += valid.sum()
        sums[1] += ((logits.argmax(-1) == labels).cpu() & valid).sum()
        macs = forward_macs(model, clips, [group.keep for group in out.groups] if info.num_groups else [])
        sums[2] += macs[valid].sum()
        if info.num_groups:
            sums[4:] += kept_counts(out).cpu().double()[valid].sum(0)
    sums = distributed.all_reduce_mean(sums.to(device)).cpu() * max(world_size, 1)
    count = sums[0].item()
    if count == 0:
        raise UserError(f"no readable validation video among {num_items}: check the list with "
                        "data_prep/check_videos.py")
    metrics = {"top1": 100.0 * sums[1].item() / count, "gflops": sums[2].item() / count / 1e9,
               "skipped_videos": sums[3].item()}
    if info.num_groups:
        kept = (sums[4:] / count).float()[None]
        metrics["kept_share"] = policy.kept_share(kept, info.num_tokens, info.spans, info.depth).item()
        metrics.update({f"kept_share_g{g}": (kept[0, g] / info.num_tokens).item()
                        for g in range(info.num_groups)})
    return metrics
