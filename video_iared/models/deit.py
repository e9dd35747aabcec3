"""DeiT / ViT (Touvron et al., ICML 2021; Dosovitskiy et al., ICLR 2021) on the packed token state:
the image backbone of IA-RED²'s DeiT experiments.

:class:`DeiT` *is* timm's ``VisionTransformer`` (same modules, initialisation and state-dict keys, so
``deit_small_patch16_224`` weights load strictly). Each timm block keeps its norms, MLP, layer scale
and drop path; only its attention is the project's :class:`~video_iared.models.layers.Attention`
(same ``qkv`` / ``proj`` parameters), so images run through the one attention over token sequences that
TimeSformer uses. An image is a one-frame clip: ``T = 1``, one CLS per sample, one attention sequence per
image (``TokenLayout.sample_sequences``), and :class:`~video_iared.models.iared.IARed` wraps it unchanged.

Block, on CLS rows (B, D) and present patch rows (M, D), one attention sequence per image::

    x = [CLS; patches];  x += ls1(attn(norm1(x)));  x += ls2(mlp(norm2(x)))
"""
from __future__ import annotations

from typing import Any

import torch
from einops import rearrange
from timm.models.vision_transformer import Block as TimmBlock
from timm.models.vision_transformer import VisionTransformer
from torch import Tensor

from .layers import Attention, SampleDropPath, run_blocks
from .tokens import TokenLayout, TokenState


class PackedBlock(TimmBlock):
    """timm's ViT ``Block`` whose forward runs on a :class:`TokenState` (the VisionTransformer's
    ``block_fn``); attention over the state's per-sample sequences, stochastic depth per sample."""

    def __init__(self, *, dim: int, num_heads: int, qkv_bias: bool = False, attn_drop: float = 0.0,
                 proj_drop: float = 0.0, drop_path: float = 0.0, **kwargs: Any) -> None:
        unsupported = [k for k in ("qk_norm", "scale_attn_norm") if kwargs.get(k)]
        if unsupported or not kwargs.get("proj_bias", True):
            raise ValueError(f"PackedBlock does not support {unsupported or ['proj_bias=False']}")
        super().__init__(dim=dim, num_heads=num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop,
                         proj_drop=proj_drop, drop_path=drop_path, **kwargs)
        self.attn = Attention(dim, num_heads, qkv_bias, attn_drop, proj_drop)
        self.drop_path1 = SampleDropPath(drop_path)
        self.drop_path2 = SampleDropPath(drop_path)

    def forward(self, state: TokenState) -> TokenState:  # type: ignore[override]
        layout, batch = state.layout, state.layout.batch
        x = torch.cat([state.cls, state.patches])                   # (B + M, D), CLS rows first
        sample = layout.sample_with_cls                         # (B + M,)
        x = x + self.drop_path1(self.ls1(self.attn(self.norm1(x), layout.sample_sequences)), sample, batch)
        x = x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))), sample, batch)
        return TokenState(x[:batch], x[batch:], layout)


class DeiT(VisionTransformer):
    """timm ``VisionTransformer`` with CLS-token pooling, run on the packed token state.

    Keyword arguments carry timm's names and meanings (``drop_rate`` is the classifier dropout).
    Input (B, C, H, W) images at ``img_size``; a one-frame clip (B, C, 1, H, W) is accepted too.
    """

    def __init__(self, *, img_size: int = 224, patch_size: int = 16, in_chans: int = 3,
                 num_classes: int = 1000, embed_dim: int = 384, depth: int = 12, num_heads: int = 6,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, drop_rate: float = 0.0,
                 attn_drop_rate: float = 0.0, drop_path_rate: float = 0.1) -> None:
        super().__init__(img_size=img_size, patch_size=patch_size, in_chans=in_chans, num_classes=num_classes,
                         global_pool="token", embed_dim=embed_dim, depth=depth, num_heads=num_heads,
                         mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop_rate=drop_rate,
                         attn_drop_rate=attn_drop_rate, drop_path_rate=drop_path_rate, block_fn=PackedBlock)
        self.attention_type = "image"
        self.num_frames = 1

    def embed(self, x: Tensor) -> TokenState:
        """(B, C, H, W) images (or (B, C, 1, H, W)) -> dense token state, position embeddings added."""
        if x.ndim == 5:
            x = rearrange(x, "b c 1 h w -> b c h w")
        x = self.norm_pre(self.patch_drop(self._pos_embed(self.patch_embed(x))))   # (B, 1 + N, D)
        batch, length, _ = x.shape
        layout = TokenLayout(batch, 1, length - 1, x.device)
        return TokenState(x[:, 0], rearrange(x[:, 1:], "b n d -> (b n) d"), layout)

    def forward_blocks(self, state: TokenState, start: int = 0, end: int | None = None) -> TokenState:
        """Run blocks ``start:end`` on a (dense or packed) token state."""
        return run_blocks(self.blocks[start:end], state, self.grad_checkpointing)

    def pool(self, state: TokenState) -> Tensor:
        """Normed CLS feature (B, D) (classifier dropout included)."""
        return self.head_drop(self.fc_norm(self.norm(state.cls)))

    def forward_features(self, x: Tensor) -> Tensor:  # type: ignore[override]
        """Normed CLS feature (B, D) (timm's returns every token; here they may be dropped)."""
        return self.pool(self.forward_blocks(self.embed(x)))

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:  # type: ignore[override]
        return x if pre_logits else self.head(x)

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        return self.head(self.forward_features(x))
