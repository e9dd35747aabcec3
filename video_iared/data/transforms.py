"""Spatial transforms for clips, masks and images, written as crop *boxes* in source pixels.

The official recipe resizes the whole frame (train: short side jittered in [256, 320]; single-view
test: 256; multi-view test: the crop size) and then crops. Here the box that crop covers is computed in
the source frame's pixels first, so only the cropped region is resized -- the same geometry (up to
sub-pixel rounding) at a fraction of the cost, and masks follow the clip exactly because both go
through the same box. Clips stay uint8 until :func:`normalize_on_device`, after the host-to-device copy.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

__all__ = [
    "Box", "scaled_crop_box", "train_crop_box", "multi_view_crop_boxes", "random_resized_crop_box",
    "crop_clip", "crop_masks", "cut_box", "resize_crops", "clips_to_device",
    "normalize_on_device",
]

Box = tuple[int, int, int, int]  # top, left, height, width in source pixels


def scaled_crop_box(
    height: int, width: int, *, short_side: float, crop_size: int, top: float, left: float
) -> Box:
    """Box of the ``crop_size`` square crop of the frame resized to ``short_side``.

    ``top``/``left`` in [0, 1] place the box within the frame's slack (0.5 = centred). A box larger
    than the frame (``short_side < crop_size``) is clamped to the frame's short side.
    """
    side = min(round(crop_size * min(height, width) / short_side), height, width)
    return round((height - side) * top), round((width - side) * left), side, side


def train_crop_box(
    height: int, width: int, *, crop_size: int, jitter_scales: tuple[int, int], rng: np.random.Generator
) -> Box:
    """Official training crop: short side uniform in ``jitter_scales`` (inclusive), random position."""
    short_side = int(rng.integers(jitter_scales[0], jitter_scales[1] + 1))
    top, left = rng.random(2)
    return scaled_crop_box(height, width, short_side=short_side, crop_size=crop_size, top=top, left=left)


def multi_view_crop_boxes(height: int, width: int, *, crop_size: int, num_crops: int,
                          short_side: int) -> list[Box]:
    """``num_crops`` boxes spread along the long side: left/centre/right, or top/centre/bottom in
    portrait (official multi-view test: short side = crop size, 3 crops). One crop is centred."""
    positions = [0.5] if num_crops == 1 else np.linspace(0.0, 1.0, num_crops).tolist()
    portrait = height > width
    return [
        scaled_crop_box(height, width, short_side=short_side, crop_size=crop_size,
                        top=p if portrait else 0.5, left=0.5 if portrait else p)
        for p in positions
    ]


def random_resized_crop_box(
    height: int,
    width: int,
    *,
    rng: np.random.Generator,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> Box:
    """Inception-style crop used by DeiT (torchvision's RandomResizedCrop semantics, 10 tries, then a
    centre crop of the clamped aspect ratio)."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w = round(math.sqrt(target_area * aspect))
        h = round(math.sqrt(target_area / aspect))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
    aspect = width / height
    if aspect < ratio[0]:
        w, h = width, round(width / ratio[0])
    elif aspect > ratio[1]:
        h, w = height, round(height * ratio[1])
    else:
        h, w = height, width
    return (height - h) // 2, (width - w) // 2, h, w


def crop_clip(frames: np.ndarray | torch.Tensor, box: Box, *, size: int, flip: bool = False) -> torch.Tensor:
    """uint8 frames ``(T, H, W, 3)`` -> uint8 clip ``(3, T, size, size)``: crop, resize (bilinear,
    antialiased), optional horizontal flip."""
    top, left, h, w = box
    clip = torch.as_tensor(frames)[:, top:top + h, left:left + w].permute(0, 3, 1, 2)  # T C h w
    if (h, w) != (size, size):
        clip = TF.resize(clip, [size, size], interpolation=InterpolationMode.BILINEAR, antialias=True)
    if flip:
        clip = clip.flip(-1)
    return clip.permute(1, 0, 2, 3).contiguous()  # C T H W


def cut_box(frames: np.ndarray | torch.Tensor, box: Box, *, flip: bool = False) -> torch.Tensor:
    """uint8 frames ``(T, H, W, 3)`` -> the box's pixels ``(T, h, w, 3)``, flipped when ``flip``: the
    host's share of a device augmentation (a copy of the box, no arithmetic); :func:`resize_crops`
    does the rest."""
    top, left, h, w = box
    crop = torch.as_tensor(frames)[:, top:top + h, left:left + w]
    return crop.flip(2) if flip else crop.contiguous()


def resize_crops(crops: torch.Tensor | Sequence[torch.Tensor], *, size: int) -> torch.Tensor:
    """:func:`cut_box` crops (a list of uint8 ``(T, h, w, 3)``, on any device) -> uint8 clips
    ``(B, 3, T, size, size)`` on their device: the resize of :func:`crop_clip` (bilinear, antialiased)
    run where the crops are, so host workers only decode. Already-final clips pass through."""
    if isinstance(crops, torch.Tensor) and crops.shape[-1] == crops.shape[-2] == size:
        return crops  # (B, 3, T, size, size) from a host-augmenting loader
    clips = []
    for crop in crops:
        clip = crop.permute(0, 3, 1, 2)  # T C h w
        if tuple(clip.shape[-2:]) != (size, size):
            clip = TF.resize(clip, [size, size], interpolation=InterpolationMode.BILINEAR, antialias=True)
        clips.append(clip.permute(1, 0, 2, 3))  # C T H W
    return torch.stack(clips)


def crop_masks(masks: np.ndarray | torch.Tensor, box: Box, *, size: int, flip: bool = False) -> torch.Tensor:
    """uint8 masks ``(T, H, W)`` -> ``(T, size, size)`` through the same box as :func:`crop_clip`
    (nearest neighbour, so labels stay labels)."""
    top, left, h, w = box
    masks = torch.as_tensor(masks)[:, top:top + h, left:left + w]
    if (h, w) != (size, size):
        masks = TF.resize(masks, [size, size], interpolation=InterpolationMode.NEAREST_EXACT)
    if flip:
        masks = masks.flip(-1)
    return masks.contiguous()


def normalize_on_device(
    x: torch.Tensor, mean: Sequence[float], std: Sequence[float], *, channel_dim: int = -4
) -> torch.Tensor:
    """uint8 (or float in [0, 255]) -> float ``(x / 255 - mean) / std`` over ``channel_dim`` (-4 for
    clips ``(..., C, T, H, W)``, -3 for images ``(..., C, H, W)``). Call it after ``.to(device)``: 4x
    fewer bytes cross the bus and the host workers never touch floats."""
    if x.shape[channel_dim] != len(mean) or len(mean) != len(std):
        raise ValueError(f"{len(mean)} means / {len(std)} stds for dim {channel_dim} of shape "
                         f"{tuple(x.shape)}")
    dtype = x.dtype if x.is_floating_point() else torch.float32
    shape = [len(mean)] + [1] * (-channel_dim - 1)
    mean_t = torch.tensor(mean, dtype=dtype, device=x.device).view(shape)
    std_t = torch.tensor(std, dtype=dtype, device=x.device).view(shape)
    return (x.to(dtype) / 255.0 - mean_t) / std_t


def clips_to_device(clip: torch.Tensor | Sequence[torch.Tensor], device: torch.device | str, *, size: int,
                    mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """A loader's uint8 clips (``(B, 3, T, size, size)``, or the crops of ``augment_on="device"``) ->
    normalised float clips on ``device``: copied as uint8 (``non_blocking`` from pinned memory), then
    resized (crops only) and normalised there."""
    if isinstance(clip, torch.Tensor):
        clip = clip.to(device, non_blocking=True)
    else:
        clip = [crop.to(device, non_blocking=True) for crop in clip]
    return normalize_on_device(resize_crops(clip, size=size), mean, std)
