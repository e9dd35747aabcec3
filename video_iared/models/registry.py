"""TimeSformer and packed DeiT variants in timm's registry, each with the input metadata its recipe expects.

``timm.create_model("timesformer_base_patch16_224", num_frames=8)`` works after ``import video_iared``;
nothing is downloaded (load weights with :func:`video_iared.models.load_weights`). The data layer reads
:func:`get_model_info` (plain values) without instantiating or importing a model.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from timm.models import register_model

from torch import nn

from .deit import DeiT
from .timesformer import TimeSformer


@dataclass(frozen=True)
class ModelInfo:
    """Input a model was trained with (official Kinetics recipes): clip sampling, crop, normalisation."""

    num_frames: int                               # 1 for image models
    sampling_rate: int
    crop_size: int
    train_jitter: tuple[int, int]                 # short-side scale range for training crops
    mean: tuple[float, float, float] = (0.45, 0.45, 0.45)
    std: tuple[float, float, float] = (0.225, 0.225, 0.225)


_VIT_B = dict(patch_size=16, embed_dim=768, depth=12, num_heads=12, mlp_ratio=4.0, qkv_bias=True)
# CPU tests and demos: 32x32 frames, 4x4 patches of 8 pixels, dim 96, 4 heads, 8 frames every 4
_TINY = dict(img_size=32, patch_size=8, num_frames=8, embed_dim=96, depth=4, num_heads=4, mlp_ratio=4.0,
             qkv_bias=True, drop_path_rate=0.0)
_TINY_INFO = ModelInfo(8, 4, 32, (32, 40))
# ImageNet DeiT: 224 crops (test: short side 256, centre crop), ImageNet mean/std
_IMAGENET = ModelInfo(1, 1, 224, (224, 256), mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))

# name -> (metadata, model class, constructor defaults)
_VARIANTS: dict[str, tuple[ModelInfo, type[nn.Module], dict[str, Any]]] = {
    # TimeSformer_divST_8x32_224: 8 frames every 32, 224 crops (K400 78.0 % top-1)
    "timesformer_base_patch16_224": (ModelInfo(8, 32, 224, (256, 320)), TimeSformer,
                                     dict(img_size=224, num_frames=8, **_VIT_B)),
    # TimeSformer-HR, TimeSformer_divST_16x16_448
    "timesformer_hr_patch16_448": (ModelInfo(16, 16, 448, (448, 512)), TimeSformer,
                                   dict(img_size=448, num_frames=16, **_VIT_B)),
    # TimeSformer-L, TimeSformer_divST_96x4_224: ViT-B over 96 frames
    "timesformer_large_patch16_224": (ModelInfo(96, 4, 224, (256, 320)), TimeSformer,
                                      dict(img_size=224, num_frames=96, **_VIT_B)),
    "timesformer_tiny_patch8_32": (_TINY_INFO, TimeSformer, _TINY),
    # the demo's model: the tiny one at depth 6, whose early tokens say more of where the actor is
    # (docs/results.md, Earlier recipes)
    "timesformer_tiny6_patch8_32": (_TINY_INFO, TimeSformer, _TINY | dict(depth=6)),
    # the clutter benchmark's model: 28x28 crops of 32-pixel frames, 7x7 patches of 4 pixels, 8 frames
    # every 4, depth 6: many small tokens, so the actor covers a few of them
    "timesformer_tiny6_patch4_28": (ModelInfo(8, 4, 28, (28, 32)), TimeSformer,
                                    _TINY | dict(img_size=28, patch_size=4, depth=6)),
    # timm's deit_{tiny,small,base}_patch16_224 (same weights) on the packed token state
    "packed_deit_tiny_patch16_224": (_IMAGENET, DeiT, dict(embed_dim=192, depth=12, num_heads=3)),
    "packed_deit_small_patch16_224": (_IMAGENET, DeiT, dict(embed_dim=384, depth=12, num_heads=6)),
    "packed_deit_base_patch16_224": (_IMAGENET, DeiT, dict(embed_dim=768, depth=12, num_heads=12)),
    # the image clutter set's model: 32-pixel images, 8x8 patches of 4 pixels, the tiny width at depth 6
    "packed_deit_tiny6_patch4_32": (ModelInfo(1, 1, 32, (32, 32), mean=_IMAGENET.mean, std=_IMAGENET.std),
                                    DeiT, dict(img_size=32, patch_size=4, embed_dim=96, depth=6, num_heads=4,
                                               drop_path_rate=0.0)),
}


def get_model_info(name: str) -> ModelInfo:
    """Input metadata of a registered variant (a ``num_frames`` override changes only the model)."""
    try:
        return _VARIANTS[name][0]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known: {sorted(_VARIANTS)}") from None


def list_variants() -> list[str]:
    return sorted(_VARIANTS)


def model_defaults(name: str) -> dict[str, Any]:
    """Constructor keyword arguments of a registered variant."""
    get_model_info(name)
    return dict(_VARIANTS[name][2])


_TIMM_ONLY = ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir")


def _create(name: str, pretrained: bool, kwargs: dict[str, Any]) -> nn.Module:
    if pretrained:
        raise ValueError(f"{name}: no weights are downloaded; build it, then video_iared.models.load_weights("
                         "model, path) with an official .pyth, a timm/DeiT ImageNet file or our checkpoint")
    for key in _TIMM_ONLY:
        kwargs.pop(key, None)
    return _VARIANTS[name][1](**{**model_defaults(name), **kwargs})


@register_model
def timesformer_base_patch16_224(pretrained: bool = False, **kwargs: Any) -> TimeSformer:
    """TimeSformer (divided space-time), ViT-B/16, 8x32 clips at 224."""
    return _create("timesformer_base_patch16_224", pretrained, kwargs)


@register_model
def timesformer_hr_patch16_448(pretrained: bool = False, **kwargs: Any) -> TimeSformer:
    """TimeSformer-HR, ViT-B/16, 16x16 clips at 448."""
    return _create("timesformer_hr_patch16_448", pretrained, kwargs)


@register_model
def timesformer_large_patch16_224(pretrained: bool = False, **kwargs: Any) -> TimeSformer:
    """TimeSformer-L (the official "L": ViT-B/16 over 96x4 clips at 224)."""
    return _create("timesformer_large_patch16_224", pretrained, kwargs)


@register_model
def timesformer_tiny_patch8_32(pretrained: bool = False, **kwargs: Any) -> TimeSformer:
    """Tiny TimeSformer for CPU tests and demos: 32x32 frames, dim 96, depth 4, 4 heads, 8 frames."""
    return _create("timesformer_tiny_patch8_32", pretrained, kwargs)


@register_model
def timesformer_tiny6_patch8_32(pretrained: bool = False, **kwargs: Any) -> TimeSformer:
    """The tiny TimeSformer at depth 6 (the demo's model): its interpreters sit where tokens localise."""
    return _create("timesformer_tiny6_patch8_32", pretrained, kwargs)


@register_model
def timesformer_tiny6_patch4_28(pretrained: bool = False, **kwargs: Any) -> TimeSformer:
    """The tiny TimeSformer at depth 6 on 28x28 crops with 4-pixel patches (the clutter benchmark's model)."""
    return _create("timesformer_tiny6_patch4_28", pretrained, kwargs)


@register_model
def packed_deit_tiny_patch16_224(pretrained: bool = False, **kwargs: Any) -> DeiT:
    """DeiT-Ti/16 at 224 (timm's ``deit_tiny_patch16_224`` weights) on the packed token state."""
    return _create("packed_deit_tiny_patch16_224", pretrained, kwargs)


@register_model
def packed_deit_small_patch16_224(pretrained: bool = False, **kwargs: Any) -> DeiT:
    """DeiT-S/16 at 224 (timm's ``deit_small_patch16_224`` weights) on the packed token state."""
    return _create("packed_deit_small_patch16_224", pretrained, kwargs)


@register_model
def packed_deit_base_patch16_224(pretrained: bool = False, **kwargs: Any) -> DeiT:
    """DeiT-B/16 at 224 (timm's ``deit_base_patch16_224`` weights) on the packed token state."""
    return _create("packed_deit_base_patch16_224", pretrained, kwargs)


@register_model
def packed_deit_tiny6_patch4_32(pretrained: bool = False, **kwargs: Any) -> DeiT:
    """A tiny DeiT on 32x32 images with 4-pixel patches, depth 6 (the image clutter set's model)."""
    return _create("packed_deit_tiny6_patch4_32", pretrained, kwargs)
