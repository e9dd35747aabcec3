"""Dense clips/s of video_iared's TimeSformer vs an eager plain-attention TimeSformer (explicit
softmax, the official code's formulation) with the same weights, divided and joint attention.

    python benchmarks/model_speed.py                                   # reduced size, CPU, ~1-2 min
    python benchmarks/model_speed.py --embed-dim 768 --depth 12 --num-heads 12 --batch 8 --device cuda
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from einops import rearrange, repeat

from video_iared.models import TimeSformer


def eager_attention(x: torch.Tensor, sd: dict, name: str, heads: int) -> torch.Tensor:
    """(G, L, D) -> (G, L, D): q k^T, softmax, times v, written out."""
    q, k, v = rearrange(F.linear(x, sd[name + ".qkv.weight"], sd[name + ".qkv.bias"]),
                        "g l (three h d) -> three g h l d", three=3, h=heads)
    weights = (q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5).softmax(-1)
    out = rearrange(weights @ v, "g h l d -> g l (h d)")
    return F.linear(out, sd[name + ".proj.weight"], sd[name + ".proj.bias"])


def eager_forward(sd: dict, clip: torch.Tensor, patch: int, heads: int, depth: int,
                  attention: str) -> torch.Tensor:
    """The official forward at the model's own frame count and size, in the official token layout."""
    b, _, t, h, w = clip.shape
    dim = sd["cls_token"].shape[-1]
    x = F.conv2d(rearrange(clip, "b c t h w -> (b t) c h w"), sd["patch_embed.proj.weight"],
                 sd["patch_embed.proj.bias"], stride=patch)
    x = rearrange(x, "(b t) d h w -> (b t) (h w) d", t=t) + sd["pos_embed"][:, 1:]
    time = repeat(sd["time_embed"][0], "t d -> (n t) d", n=x.shape[1])
    x = rearrange(x, "(b t) n d -> b (n t) d", t=t) + time
    cls = (sd["cls_token"] + sd["pos_embed"][:, :1]).expand(b, -1, -1)
    x = torch.cat([cls, x], dim=1)
    n = (h // patch) * (w // patch)

    def norm(y, name):
        return F.layer_norm(y, (dim,), sd[name + ".weight"], sd[name + ".bias"], eps=1e-6)

    for i in range(depth):
        p = f"blocks.{i}."
        if attention == "divided_space_time":
            xt = rearrange(x[:, 1:], "b (n t) d -> (b n) t d", t=t)
            res = eager_attention(norm(xt, p + "temporal_norm1"), sd, p + "temporal_attn", heads)
            res = F.linear(rearrange(res, "(b n) t d -> b (n t) d", b=b), sd[p + "temporal_fc.weight"],
                           sd[p + "temporal_fc.bias"])
            xt = x[:, 1:] + res
            xs = torch.cat([repeat(x[:, :1], "b 1 d -> (b t) 1 d", t=t),
                            rearrange(xt, "b (n t) d -> (b t) n d", t=t)], dim=1)
            res = eager_attention(norm(xs, p + "norm1"), sd, p + "attn", heads)
            cls_res = rearrange(res[:, :1], "(b t) 1 d -> b t d", b=b).mean(1, keepdim=True)
            res = rearrange(res[:, 1:], "(b t) n d -> b (n t) d", b=b, n=n)
            x = torch.cat([x[:, :1], xt], dim=1) + torch.cat([cls_res, res], dim=1)
        else:
            x = x + eager_attention(norm(x, p + "norm1"), sd, p + "attn", heads)
        y = F.gelu(F.linear(norm(x, p + "norm2"), sd[p + "mlp.fc1.weight"], sd[p + "mlp.fc1.bias"]))
        x = x + F.linear(y, sd[p + "mlp.fc2.weight"], sd[p + "mlp.fc2.bias"])
    return F.linear(norm(x[:, 0], "norm"), sd["head.weight"], sd["head.bias"])


def clips_per_second(fn, batch: int, repeats: int, device: torch.device) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return batch / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--embed-dim", type=int, default=384)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--num-heads", type=int, default=6)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    device = torch.device(args.device)
    print(f"dim {args.embed_dim}, depth {args.depth}, heads {args.num_heads}, {args.frames}x{args.img_size}, "
          f"batch {args.batch}, {args.device}, threads {torch.get_num_threads()}")
    print(f"{'attention':>20} {'eager clips/s':>13} {'ours clips/s':>12} {'ratio':>6} {'max |dlogit|':>12}")
    for attention in ("divided_space_time", "joint_space_time"):
        torch.manual_seed(0)
        model = TimeSformer(embed_dim=args.embed_dim, depth=args.depth, num_heads=args.num_heads,
                            num_frames=args.frames, img_size=args.img_size,
                            attention_type=attention).eval().to(device)
        sd = model.state_dict()
        clip = torch.randn(args.batch, 3, args.frames, args.img_size, args.img_size, device=device)
        with torch.inference_mode():
            ours_fn = lambda: model(clip)  # noqa: E731
            eager_fn = lambda: eager_forward(  # noqa: E731
                sd, clip, 16, args.num_heads, args.depth, attention)
            diff = (ours_fn() - eager_fn()).abs().max().item()
            eager = ours = 0.0
            for _ in range(args.repeats):  # interleaved, so drifting machine load hits both alike
                eager = max(eager, clips_per_second(eager_fn, args.batch, 1, device))
                ours = max(ours, clips_per_second(ours_fn, args.batch, 1, device))
        print(f"{attention:>20} {eager:13.3f} {ours:12.3f} {ours / eager:6.2f} {diff:12.2e}")


if __name__ == "__main__":
    main()
