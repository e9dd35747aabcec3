"""Token dropping: removal (packed rows) vs masking vs the dense model, for TimeSformer and DeiT.

    python benchmarks/pruning_speed.py                # divided, joint (B width, depth 1), DeiT-S; CPU
    python benchmarks/pruning_speed.py --timesformer-depth 12 --device cuda --repeats 10

Batch 8; each sample keeps a different share of its tokens (keep ratio x 0.8 .. 1.2, drawn per token;
keep 1.0 keeps every token) from the first block on. Per keep ratio: the analytic GFLOPs ratio dense /
dropped (``flops.model_macs``, fvcore convention), the measured speed-up of removal and its quotient
by the GFLOPs ratio (goal >= 0.9), and the speed-up of masking (dropped tokens kept in the sequence
but hidden from attention: the naive approach, no fewer MACs). Times are the best of ``--repeats``
interleaved runs, by process CPU time on a CPU (robust to other jobs on a shared machine) and by
wall clock on a GPU.
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Literal

import torch
from einops import rearrange
from torch import nn

from video_iared.flops import model_macs, shape_of
from video_iared.models import DeiT, TimeSformer

Mode = Literal["dense", "removal", "masking"]


def random_keep(batch: int, frames: int, locations: int, ratio: float, seed: int = 0) -> torch.Tensor:
    """(B, T, N): sample i keeps about ratio * (0.8 .. 1.2) of its tokens, chosen at random."""
    if ratio >= 1.0:
        return torch.ones(batch, frames, locations, dtype=torch.bool)
    gen = torch.Generator().manual_seed(seed)
    per_sample = ratio * torch.linspace(0.8, 1.2, batch) if batch > 1 else torch.tensor([ratio])
    return torch.rand(batch, frames, locations, generator=gen) < per_sample.clamp(max=1.0)[:, None, None]


@torch.inference_mode()
def forward(model: nn.Module, x: torch.Tensor, keep: torch.Tensor, mode: Mode) -> torch.Tensor:
    """Logits with the tokens outside ``keep`` (B, T, N) removed, masked, or (dense) all used."""
    state = model.embed(x)
    if mode != "dense":
        flat = rearrange(keep.to(x.device), "b t n -> b (n t)")
        state = state.select(flat) if mode == "removal" else state.hide(flat)
    return model.head(model.pool(model.forward_blocks(state)))


def timed(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds of one call: wall clock on a GPU (synchronised), process CPU time otherwise."""
    clock = time.perf_counter if device.type == "cuda" else time.process_time
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = clock()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return clock() - start


def build(name: str, depth: int, frames: int, img_size: int) -> tuple[nn.Module, tuple[int, ...]]:
    """(model, input shape without the batch) for ``divided`` / ``joint`` TimeSformer-B or ``deit`` DeiT-S."""
    if name == "deit":
        return DeiT(img_size=img_size, embed_dim=384, depth=depth, num_heads=6), (3, img_size, img_size)
    model = TimeSformer(img_size=img_size, embed_dim=768, depth=depth, num_heads=12, num_frames=frames,
                        attention_type=f"{name}_space_time")
    return model, (3, frames, img_size, img_size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["divided", "joint", "deit"],
                        choices=["divided", "joint", "deit"])
    parser.add_argument("--timesformer-depth", type=int, default=1)
    parser.add_argument("--deit-depth", type=int, default=12)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--keep", type=float, nargs="+", default=[1.0, 0.7, 0.5, 0.3])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    clock = "wall" if device.type == "cuda" else "CPU time"
    print(f"batch {args.batch}, {args.img_size}px, {args.device} {args.dtype}, "
          f"threads {torch.get_num_threads()}, best of {args.repeats} by {clock}")
    print(f"{'model':<22} {'keep':>4} {'kept':>5} {'GFLOPs':>7} {'ratio':>6} {'dense s':>8} {'removal s':>9} "
          f"{'speed-up':>8} {'/ratio':>6} {'masking s':>9} {'speed-up':>8}")
    for name in args.models:
        torch.manual_seed(0)
        depth = args.deit_depth if name == "deit" else args.timesformer_depth
        model, input_shape = build(name, depth, args.frames, args.img_size)
        model = model.eval().to(device, dtype)
        x = torch.randn(args.batch, *input_shape, device=device, dtype=dtype)
        shape = shape_of(model)
        label = f"{name} d{depth}" + (f" {args.frames}f" if name != "deit" else "")
        dense_macs = model_macs(shape, batch=args.batch).sum().item()
        for ratio in args.keep:
            keep = random_keep(args.batch, shape.num_frames, shape.num_patches, ratio)
            macs = model_macs(shape, group_starts=[0], group_keep=[keep], interpreter_heads=0).sum().item()
            runs = {mode: (lambda mode=mode: forward(model, x, keep, mode))
                    for mode in ("dense", "removal", "masking")}
            best = dict.fromkeys(runs, float("inf"))
            if ratio == args.keep[0]:   # warm-up
                runs["dense"]()
            for _ in range(args.repeats):   # interleaved, so drifting machine load hits all alike
                for mode, fn in runs.items():
                    best[mode] = min(best[mode], timed(fn, device))
            ratio_macs = dense_macs / macs
            removal, masking = best["dense"] / best["removal"], best["dense"] / best["masking"]
            print(f"{label:<22} {ratio:4.2f} {keep.float().mean():5.3f} {macs / args.batch / 1e9:7.2f} "
                  f"{ratio_macs:6.2f} {best['dense']:8.3f} {best['removal']:9.3f} {removal:8.2f} "
                  f"{removal / ratio_macs:6.2f} {best['masking']:9.3f} {masking:8.2f}", flush=True)


if __name__ == "__main__":
    main()
