"""A slow TimeSformer written from the official model's description, sharing no code with the package.

Loops over samples, frames and locations with plain matmul + softmax, on a state dict with the
official key names. ``keep[k]`` (B, T, N) bool optionally removes tokens from block ``k`` on (the masked
reference of IA-RED²: dropped tokens are neither queries nor keys; a frame without tokens keeps its
CLS copy, which attends only to itself).
"""
import math

import torch


def layer_norm(x, weight=None, bias=None, eps=1e-6):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    y = (x - mean) / torch.sqrt(var + eps)
    return y if weight is None else y * weight + bias


def gelu(x):
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def linear(x, sd, name):
    return x @ sd[name + ".weight"].T + sd[name + ".bias"]


def self_attention(seq, sd, name, heads):
    """seq (L, D): one group's tokens; multi-head softmax attention, head by head."""
    dim = seq.shape[1]
    hd = dim // heads
    qkv = linear(seq, sd, name + ".qkv")
    outs = []
    for h in range(heads):
        q = qkv[:, h * hd:(h + 1) * hd]
        k = qkv[:, dim + h * hd:dim + (h + 1) * hd]
        v = qkv[:, 2 * dim + h * hd:2 * dim + (h + 1) * hd]
        weights = torch.softmax(q @ k.T / math.sqrt(hd), dim=-1)
        outs.append(weights @ v)
    return linear(torch.cat(outs, dim=1), sd, name + ".proj")


def nearest(n_in, n_out):
    """Source index of each output position for torch's legacy 'nearest' interpolation."""
    return [min(int(math.floor(i * n_in / n_out)), n_in - 1) for i in range(n_out)]


def embed(sd, clip, patch, attention_type):
    """Returns cls (B, D) [or (B, T, D)] and tokens[b][t][n] as a (B, T, N, D) tensor."""
    B, C, T, H, W = clip.shape
    h, w = H // patch, W // patch
    weight = sd["patch_embed.proj.weight"].reshape(sd["patch_embed.proj.weight"].shape[0], -1)
    pos = sd["pos_embed"][0]
    grid = int(round(math.sqrt(pos.shape[0] - 1)))
    rows, cols = nearest(grid, h), nearest(grid, w)
    tokens = torch.zeros(B, T, h * w, weight.shape[0], dtype=clip.dtype)
    for b in range(B):
        for t in range(T):
            for i in range(h):
                for j in range(w):
                    pixels = clip[b, :, t, i * patch:(i + 1) * patch, j * patch:(j + 1) * patch].reshape(-1)
                    tokens[b, t, i * w + j] = pixels @ weight.T + sd["patch_embed.proj.bias"]
                    tokens[b, t, i * w + j] += pos[1 + rows[i] * grid + cols[j]]
    if attention_type != "space_only":
        time = sd["time_embed"][0]
        src = nearest(time.shape[0], T)
        for t in range(T):
            tokens[:, t] += time[src[t]]
    cls = sd["cls_token"][0, 0] + pos[0]
    if attention_type == "space_only":
        return cls.expand(B, T, -1).clone(), tokens
    return cls.expand(B, -1).clone(), tokens


def reference_forward(sd, clip, *, patch, heads, depth, attention_type, keep=None):
    """Logits (B, K) and final patch tokens (B, T, N, D) (dropped ones left as they were)."""
    cls, tokens = embed(sd, clip, patch, attention_type)
    B, T, N, _ = tokens.shape
    present = torch.ones(B, T, N, dtype=torch.bool)
    for k in range(depth):
        if keep is not None:
            present = present & keep[k]
        p = f"blocks.{k}."
        norm1 = (sd[p + "norm1.weight"], sd[p + "norm1.bias"])
        new_tokens = tokens.clone()
        new_cls = cls.clone()
        for b in range(B):
            if attention_type == "divided_space_time":
                for n in range(N):
                    frames = [t for t in range(T) if present[b, t, n]]
                    if not frames:
                        continue
                    seq = tokens[b, frames, n]
                    out = self_attention(layer_norm(seq, sd[p + "temporal_norm1.weight"],
                                                    sd[p + "temporal_norm1.bias"]), sd, p + "temporal_attn", heads)
                    new_tokens[b, frames, n] = seq + linear(out, sd, p + "temporal_fc")
                cls_sum = torch.zeros_like(cls[b])
                spatial = new_tokens.clone()
                for t in range(T):
                    locs = [n for n in range(N) if present[b, t, n]]
                    seq = torch.cat([cls[b][None], new_tokens[b, t, locs]])
                    out = self_attention(layer_norm(seq, *norm1), sd, p + "attn", heads)
                    cls_sum = cls_sum + out[0]
                    spatial[b, t, locs] = new_tokens[b, t, locs] + out[1:]
                new_tokens[b] = spatial[b]
                new_cls[b] = cls[b] + cls_sum / T
            elif attention_type == "joint_space_time":
                where = present[b].nonzero().tolist()
                seq = torch.cat([cls[b][None]] + [tokens[b, t, n][None] for t, n in where])
                out = self_attention(layer_norm(seq, *norm1), sd, p + "attn", heads)
                new_cls[b] = cls[b] + out[0]
                for i, (t, n) in enumerate(where):
                    new_tokens[b, t, n] = tokens[b, t, n] + out[1 + i]
            else:  # space_only
                for t in range(T):
                    locs = [n for n in range(N) if present[b, t, n]]
                    seq = torch.cat([cls[b, t][None], tokens[b, t, locs]])
                    out = self_attention(layer_norm(seq, *norm1), sd, p + "attn", heads)
                    new_cls[b, t] = cls[b, t] + out[0]
                    new_tokens[b, t, locs] = tokens[b, t, locs] + out[1:]

        def mlp(x):
            y = layer_norm(x, sd[p + "norm2.weight"], sd[p + "norm2.bias"])
            return x + linear(gelu(linear(y, sd, p + "mlp.fc1")), sd, p + "mlp.fc2")

        cls = mlp(new_cls)
        tokens = torch.where(present[..., None], mlp(new_tokens), tokens)
    if attention_type == "space_only":
        cls = cls.mean(1)
    logits = linear(layer_norm(cls, sd["norm.weight"], sd["norm.bias"]), sd, "head")
    return logits, tokens
