"""Launch and sync proxy on any machine: aten ops, host reads and attention calls of one forward,
dense against IA-RED² (budget and threshold decisions), from ``video_iared.opcount``.

    python benchmarks/op_count.py                 # width 96, depth 12, 8 x 224, batch 4 (seconds on a CPU)

On a GPU each aten op is at most one kernel launch and each host read a device-to-host sync; each
attention shape is one cuDNN plan. The threshold is set to a score quantile so that each interpreter
drops about 30 % of the tokens it sees (the weights are random).
"""
from __future__ import annotations

import argparse

import torch

from video_iared.models import DeiT, IARed, TimeSformer
from video_iared.opcount import OpCounter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dim", type=int, default=96)
    parser.add_argument("--depth", type=int, default=12)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--budget", type=float, nargs=3, default=[0.7, 0.5, 0.3])
    args = parser.parse_args()
    starts = (0, args.depth // 3, 2 * args.depth // 3)
    gen = torch.Generator().manual_seed(0)
    print(f"width {args.dim}, depth {args.depth}, batch {args.batch}, "
          f"interpreters before blocks {list(starts)}, "
          f"budget {args.budget}")
    print(f"{'model':<22} {'forward':<10} {'aten ops':>8} {'x dense':>7} {'host reads':>10} "
          f"{'attention':>9} {'shapes':>6}")
    for name in ("divided_space_time", "joint_space_time", "space_only", "deit"):
        torch.manual_seed(0)
        if name == "deit":
            backbone = DeiT(embed_dim=args.dim, depth=args.depth, num_heads=6)
            clip = torch.randn(args.batch * 8, 3, 224, 224, generator=gen)
        else:
            backbone = TimeSformer(embed_dim=args.dim, depth=args.depth, num_heads=6, num_frames=8,
                                   attention_type=name)
            clip = torch.randn(args.batch, 3, 8, 224, 224, generator=gen)
        model = IARed(backbone.eval(), group_starts=starts, decision="budget", budgets=args.budget).eval()
        with torch.no_grad():
            cut = model(clip, decision="none").groups[0].scores.quantile(0.3).item()
            runs = {"dense": lambda: backbone(clip), "budget": lambda: model(clip),
                    "threshold": lambda: model(clip, decision="threshold", threshold=cut)}
            dense_ops = None
            for forward, fn in runs.items():
                with OpCounter() as counts:
                    fn()
                dense_ops = dense_ops or counts.ops
                print(f"{name:<22} {forward:<10} {counts.ops:8d} {counts.ops / dense_ops:7.2f} "
                      f"{counts.host_reads:10d} {counts.attention_calls:9d} "
                      f"{len(counts.attention_shapes):6d}")


if __name__ == "__main__":
    main()
