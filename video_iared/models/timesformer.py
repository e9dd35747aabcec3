"""TimeSformer (Bertasius et al., ICML 2021), numerically identical to facebookresearch/TimeSformer.

Parameter names, initialisation, embeddings and the divided block's CLS handling follow the official
``VisionTransformer``; the forward runs on a :class:`~video_iared.models.tokens.TokenState` so the same
blocks execute the dense model and the packed IA-RED² model (dropped tokens physically removed).

Block, divided space-time (x: CLS (B, D), patches (M, D) in ``(b n t)`` order)::

    patches += temporal_fc(temporal_attn(temporal_norm1(patches)))      sequences: (sample, location)
    r = attn(norm1([CLS copy per frame; patches]))                      sequences: (sample, frame), CLS first
    CLS += mean over the T frames of r[CLS copies];  patches += r[patches]
    x += mlp(norm2(x))
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from einops import rearrange, reduce, repeat
from timm.layers import Mlp, resample_abs_pos_embed, trunc_normal_
from torch import Tensor, nn

from .layers import Attention, PatchEmbed, SampleDropPath, run_blocks
from .tokens import TokenLayout, TokenState

AttentionType = Literal["divided_space_time", "joint_space_time", "space_only"]
ATTENTION_TYPES = ("divided_space_time", "joint_space_time", "space_only")


def resize_time_embed(time_embed: Tensor, frames: int) -> Tensor:
    """[1, T0, D] -> [1, T, D] by nearest interpolation (the official inference-time rule)."""
    # timm's resample_abs_pos_embed (used for pos_embed) resizes a 2-D grid; this is a 1-D sequence
    return F.interpolate(time_embed.transpose(1, 2), size=frames, mode="nearest").transpose(1, 2)


class Block(nn.Module):
    """One TimeSformer block for any attention type, on CLS rows + packed patch rows."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = False,
                 drop: float = 0.0, attn_drop: float = 0.0, drop_path: float = 0.0,
                 attention_type: AttentionType = "divided_space_time") -> None:
        super().__init__()
        self.attention_type = attention_type
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, qkv_bias, attn_drop, drop)
        if attention_type == "divided_space_time":
            self.temporal_norm1 = nn.LayerNorm(dim, eps=1e-6)
            self.temporal_attn = Attention(dim, num_heads, qkv_bias, attn_drop, drop)
            self.temporal_fc = nn.Linear(dim, dim)
        self.drop_path = SampleDropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=nn.GELU, drop=drop)

    def forward(self, state: TokenState) -> TokenState:
        layout, cls, patches = state.layout, state.cls, state.patches
        batch = layout.batch
        if self.attention_type == "divided_space_time":
            if patches.shape[0]:
                res = self.temporal_attn(self.temporal_norm1(patches), layout.temporal_sequences)
                patches = patches + self.temporal_fc(self.drop_path(res, layout.sample, batch))
            cls_rows = repeat(cls, "b d -> (b t) d", t=layout.frames)  # a CLS copy per frame
            plan = layout.frame_sequences
        else:  # joint: one sequence per sample; space-only: one per frame with its own CLS
            cls_rows = cls
            joint = self.attention_type == "joint_space_time"
            plan = layout.sample_sequences if joint else layout.frame_sequences
        res = self.attn(self.norm1(torch.cat([cls_rows, patches])), plan)
        cls_res, patch_res = res[: cls_rows.shape[0]], res[cls_rows.shape[0]:]
        if self.attention_type == "divided_space_time":
            cls_res = reduce(cls_res, "(b t) d -> b d", "mean", b=batch)  # average over all T frames
        cls = cls + self.drop_path(cls_res, state.cls_sample, batch)
        patches = patches + self.drop_path(patch_res, layout.sample, batch)
        cls = cls + self.drop_path(self.mlp(self.norm2(cls)), state.cls_sample, batch)
        patches = patches + self.drop_path(self.mlp(self.norm2(patches)), layout.sample, batch)
        return TokenState(cls, patches, layout)


class TimeSformer(nn.Module):
    """TimeSformer video classifier; input (B, C, T, H, W), any T and resolution at inference.

    Keyword arguments carry the official names and meanings. ``pos_embed`` / ``time_embed`` are
    resized by nearest interpolation when the clip's grid or frame count differ (as the official).
    ``temporal_windows``: the dense temporal step runs in 64-row windows of whole locations with a
    block-diagonal mask (:func:`~video_iared.models.tokens.run_windows`), as packed IA-RED² rows always
    do, instead of one T-long sequence per location (same results; which is faster depends on the GPU:
    ``benchmarks/gpu_speed.py`` times both).
    """

    def __init__(self, *, img_size: int = 224, patch_size: int = 16, in_chans: int = 3,
                 num_classes: int = 400, embed_dim: int = 768, depth: int = 12, num_heads: int = 12,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, drop_rate: float = 0.0,
                 attn_drop_rate: float = 0.0, drop_path_rate: float = 0.1, num_frames: int = 8,
                 attention_type: AttentionType = "divided_space_time", init_std: float = 0.02,
                 temporal_windows: bool = False) -> None:
        super().__init__()
        if attention_type not in ATTENTION_TYPES:
            raise ValueError(f"attention_type {attention_type!r} is not one of {ATTENTION_TYPES}")
        self.attention_type = attention_type
        self.num_classes = num_classes
        self.num_frames = num_frames
        self.patch_size = patch_size
        self.grid_size = img_size // patch_size
        self.num_features = self.embed_dim = embed_dim
        self.grad_checkpointing = False
        self.temporal_windows = temporal_windows

        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.grid_size**2 + 1, embed_dim))
        self.pos_drop = nn.Dropout(drop_rate)
        if attention_type != "space_only":
            self.time_embed = nn.Parameter(torch.zeros(1, num_frames, embed_dim))
            self.time_drop = nn.Dropout(drop_rate)
        rates = torch.linspace(0, drop_path_rate, depth).tolist()
        self.blocks = nn.ModuleList([
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias, drop_rate, attn_drop_rate, rate, attention_type)
            for rate in rates])
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self._init_weights(init_std)

    def _init_weights(self, std: float) -> None:
        """Truncated normal ``std``, LayerNorm (1, 0), ``temporal_fc`` zero (official recipe, std 0.02).

        0.02 was set for width 768: at width 96 each linear map shrinks its input ~3x more (gain
        0.02 * sqrt(96)), which keeps a tiny model trained from scratch at chance for long; the tiny
        configs use ~1/sqrt(width) (docs/results.md, The initialisation finding)."""
        trunc_normal_(self.pos_embed, std=std)
        trunc_normal_(self.cls_token, std=std)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                trunc_normal_(module.weight, std=std)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        for block in self.blocks:
            if hasattr(block, "temporal_fc"):
                nn.init.zeros_(block.temporal_fc.weight)
                nn.init.zeros_(block.temporal_fc.bias)

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        return {"pos_embed", "cls_token", "time_embed"}

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block's activations in the backward pass (memory for compute)."""
        self.grad_checkpointing = enable

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.head = nn.Linear(self.embed_dim, num_classes) if num_classes > 0 else nn.Identity()

    def embed(self, x: Tensor) -> TokenState:
        """(B, C, T, H, W) clip -> dense token state with position and time embeddings added."""
        x = self.patch_embed(x)                                     # (B, T, h, w, D)
        batch, frames, height, width, _ = x.shape
        pos = self.pos_embed
        if (height, width) != (self.grid_size, self.grid_size):
            pos = resample_abs_pos_embed(pos, [height, width], num_prefix_tokens=1, interpolation="nearest",
                                         antialias=False)
        num_cls = batch * frames if self.attention_type == "space_only" else batch  # space-only: per frame
        cls = self.pos_drop((self.cls_token[:, 0] + pos[:, 0]).expand(num_cls, -1))
        patches = self.pos_drop(rearrange(x, "b t h w d -> b (h w) t d") + pos[:, 1:, None])
        if self.attention_type != "space_only":
            time = self.time_embed
            if frames != time.shape[1]:
                time = resize_time_embed(time, frames)
            patches = self.time_drop(patches + time[:, None])
        layout = TokenLayout(batch, frames, height * width, x.device, windowed=self.temporal_windows)
        return TokenState(cls, rearrange(patches, "b n t d -> (b n t) d"), layout)

    def forward_blocks(self, state: TokenState, start: int = 0, end: int | None = None) -> TokenState:
        """Run blocks ``start:end`` on a (dense or packed) token state."""
        return run_blocks(self.blocks[start:end], state, self.grad_checkpointing)

    def pool(self, state: TokenState) -> Tensor:
        """Normed CLS feature (B, D); space-only averages its per-frame CLS tokens first."""
        cls = reduce(state.cls, "(b c) d -> b d", "mean", b=state.layout.batch)
        return self.norm(cls)

    def forward_features(self, x: Tensor) -> Tensor:
        return self.pool(self.forward_blocks(self.embed(x)))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.forward_features(x))
