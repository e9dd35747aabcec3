"""Dense vs packed (dropped tokens physically removed) TimeSformer forward, per-sample keep patterns.

    python benchmarks/pruning_speed.py                       # B-width, depth 2, 8x224, batch 8, CPU
    python benchmarks/pruning_speed.py --depth 12 --device cuda --keep 1.0 0.7 0.5 0.3

Each sample keeps a different share of its tokens (keep ratio +-20 %), drawn per token. Prints the
analytic MAC ratio dense/packed, the measured speed-up (best of ``--repeats`` interleaved runs) and
their quotient (goal: >= 0.9).
"""
from __future__ import annotations

import argparse
import time

import torch
from einops import rearrange

from video_iared.models import TimeSformer


def block_macs(keep: torch.Tensor, dim: int, mlp_ratio: float, attention_type: str) -> float:
    """MACs of one block on one clip whose present tokens are ``keep`` (T, N) (fvcore convention).

    Linear layers cost dim^2 per token and projection; attention 2 L^2 dim per group (QK^T and AV).
    """
    frames = keep.shape[0]
    kept = float(keep.sum())
    mlp = 2 * mlp_ratio * dim * dim * (kept + 1)
    if attention_type == "joint_space_time":
        return mlp + 4 * dim * dim * (kept + 1) + 2 * (kept + 1) ** 2 * dim
    temporal = 5 * dim * dim * kept + 2 * dim * float((keep.sum(0) ** 2).sum())
    spatial = 4 * dim * dim * (kept + frames) + 2 * dim * float(((keep.sum(1) + 1) ** 2).sum())
    return mlp + temporal + spatial


def model_macs(model: TimeSformer, keep: torch.Tensor, in_chans: int = 3) -> float:
    """MACs per batch: patch embedding, blocks on ``keep`` (B, T, N), head."""
    dim = model.embed_dim
    batch, frames, locations = keep.shape
    embed = batch * frames * locations * in_chans * model.patch_size**2 * dim
    mlp_ratio = model.blocks[0].mlp.fc1.out_features / dim
    blocks = sum(block_macs(k, dim, mlp_ratio, model.attention_type) for k in keep) * len(model.blocks)
    return embed + blocks + batch * dim * model.num_classes


def random_keep(batch: int, frames: int, locations: int, ratio: float, seed: int = 0) -> torch.Tensor:
    """(B, T, N): sample i keeps about ratio * (0.8 .. 1.2) of its tokens, chosen at random."""
    gen = torch.Generator().manual_seed(seed)
    per_sample = ratio * torch.linspace(0.8, 1.2, batch) if batch > 1 else torch.tensor([ratio])
    return torch.rand(batch, frames, locations, generator=gen) < per_sample.clamp(max=1.0)[:, None, None]


@torch.inference_mode()
def forward(model: TimeSformer, clip: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
    state = model.embed(clip)
    if keep is not None:
        state = state.select(rearrange(keep.to(clip.device), "b t n -> b (n t)"))
    return model.head(model.pool(model.forward_blocks(state)))


def timed(fn, device: torch.device) -> float:
    """Seconds of one call (device work included)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--attention-type", default="divided_space_time",
                        choices=["divided_space_time", "joint_space_time"])
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--embed-dim", type=int, default=768)
    parser.add_argument("--num-heads", type=int, default=12)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--keep", type=float, nargs="+", default=[0.5])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    args = parser.parse_args()

    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    torch.manual_seed(0)
    model = TimeSformer(embed_dim=args.embed_dim, depth=args.depth, num_heads=args.num_heads,
                        num_frames=args.frames, img_size=args.img_size,
                        attention_type=args.attention_type).eval().to(device, dtype)
    clip = torch.randn(args.batch, 3, args.frames, args.img_size, args.img_size, device=device, dtype=dtype)
    locations = (args.img_size // 16) ** 2
    dense_macs = model_macs(model, torch.ones(args.batch, args.frames, locations, dtype=torch.bool))
    print(f"{args.attention_type}, dim {args.embed_dim}, depth {args.depth}, {args.frames}x{args.img_size}, "
          f"batch {args.batch}, {args.device} {args.dtype}, threads {torch.get_num_threads()}")
    print(f"{'keep':>5} {'kept':>6} {'GMACs/clip':>10} {'MAC ratio':>9} {'dense s':>8} {'packed s':>8} "
          f"{'speed-up':>8} {'quotient':>8}")
    for ratio in args.keep:
        keep = random_keep(args.batch, args.frames, locations, ratio)
        forward(model, clip, keep), forward(model, clip, None)  # warm-up
        dense = packed = float("inf")
        for _ in range(args.repeats):   # interleaved, so drifting machine load hits both alike
            dense = min(dense, timed(lambda: forward(model, clip, None), device))
            packed = min(packed, timed(lambda: forward(model, clip, keep), device))
        mac_ratio = dense_macs / model_macs(model, keep)
        speedup = dense / packed
        print(f"{ratio:5.2f} {keep.float().mean():6.3f} {model_macs(model, keep) / args.batch / 1e9:10.2f} "
              f"{mac_ratio:9.3f} {dense:8.3f} {packed:8.3f} {speedup:8.3f} {speedup / mac_ratio:8.3f}")


if __name__ == "__main__":
    main()
