"""ImageFolder-style image dataset for the DeiT experiments, on the clips' transform code.

``root/CLASS/IMAGE`` with class ids in sorted name order (torchvision's ImageFolder convention).
Optional masks mirror the tree: ``mask_root/CLASS/IMAGE_STEM.png``, nonzero = foreground (e.g. the
ImageNet-Segmentation annotations for the interpretability metrics); they go through the same crop box.
Transforms (DeiT): train = random resized crop (scale 0.08-1) + horizontal flip; eval = short side
``crop_size / crop_pct`` (256 for 224), centre crop. Images stay uint8 until
:func:`.transforms.normalize_on_device` (``channel_dim=-3``); randomness is a function of
(seed, epoch, index), as for videos.
"""
from __future__ import annotations

import os
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image

from .transforms import crop_clip, crop_masks, random_resized_crop_box, scaled_crop_box

__all__ = ["IMAGE_EXTENSIONS", "ImageFolderDataset", "find_images"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def find_images(root: str) -> tuple[list[str], list[tuple[str, int]]]:
    """Class names (sorted) and ``(path relative to root, class id)`` of a ``root/CLASS/IMAGE`` tree."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{root}: no such folder (expected root/CLASS/IMAGE)")
    classes = sorted(name for name in os.listdir(root)
                     if os.path.isdir(os.path.join(root, name)) and not name.startswith("."))
    items = [(os.path.join(name, file), label)
             for label, name in enumerate(classes)
             for file in sorted(os.listdir(os.path.join(root, name)))
             if file.lower().endswith(IMAGE_EXTENSIONS) and not file.startswith(".")]
    if not items:
        raise FileNotFoundError(f"{root}: no images ({', '.join(IMAGE_EXTENSIONS)}) in root/CLASS/ folders")
    return classes, items


class ImageFolderDataset(torch.utils.data.Dataset):
    """Images of a ``root/CLASS/IMAGE`` tree as ``{"image": uint8 (3, S, S), "label", "index"}``, plus
    ``"mask"`` uint8 ``(S, S)`` when ``mask_root`` is given.

    Args:
        root: image tree.
        split: ``train`` (random resized crop + flip) or ``val`` (resize + centre crop).
        crop_size: output side (224).
        crop_pct: eval crop share of the resized short side (DeiT: 0.875).
        scale: area range of the training crop.
        flip: horizontal flip in training.
        mask_root: tree of ``.png`` masks mirroring ``root`` (missing mask = error naming the file).
        seed: base of the (seed, epoch, index) augmentation randomness.
    """

    def __init__(self, root: str, *, split: Literal["train", "val"] = "train", crop_size: int = 224,
                 crop_pct: float = 0.875, scale: tuple[float, float] = (0.08, 1.0), flip: bool = True,
                 mask_root: str | None = None, seed: int = 0):
        if split not in ("train", "val"):
            raise ValueError(f"split must be train or val, got {split!r}")
        self.root, self.mask_root = root, mask_root
        self.class_names, self.items = find_images(root)
        self.split, self.crop_size, self.crop_pct = split, crop_size, crop_pct
        self.scale, self.flip = scale, flip
        self.seed = seed
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()  # seen by persistent workers too

    @property
    def epoch(self) -> int:
        return int(self._epoch[0])

    def set_epoch(self, epoch: int) -> None:
        self._epoch[0] = epoch

    def __len__(self) -> int:
        return len(self.items)

    @staticmethod
    def _read(path: str, mode: Literal["RGB", "L"]) -> torch.Tensor:
        """uint8 ``(H, W, 3)`` for RGB, ``(H, W)`` for L (grey)."""
        try:
            with Image.open(path) as image:
                return torch.from_numpy(np.asarray(image.convert(mode)).copy())
        except OSError as error:
            raise RuntimeError(f"{path}: cannot read the image ({error}); remove it or replace it") from None

    def __getitem__(self, index: int) -> dict[str, Any]:
        relative, label = self.items[index]
        image = self._read(os.path.join(self.root, relative), "RGB")
        height, width = image.shape[:2]
        if self.split == "train":
            rng = np.random.default_rng([self.seed, self.epoch, index])
            box = random_resized_crop_box(height, width, rng=rng, scale=self.scale)
            flip = self.flip and bool(rng.random() < 0.5)
        else:
            box = scaled_crop_box(height, width, short_side=self.crop_size / self.crop_pct,
                                  crop_size=self.crop_size, top=0.5, left=0.5)
            flip = False
        item: dict[str, Any] = {
            "image": crop_clip(image[None], box, size=self.crop_size, flip=flip)[:, 0],
            "label": label,
            "index": index,
        }
        if self.mask_root is not None:
            mask_path = os.path.join(self.mask_root, os.path.splitext(relative)[0] + ".png")
            if not os.path.exists(mask_path):
                raise FileNotFoundError(
                    f"{mask_path}: no mask for {relative} (masks mirror the image tree as .png)")
            mask = self._read(mask_path, "L")
            if mask.shape != image.shape[:2]:
                raise ValueError(
                    f"{mask_path}: mask {tuple(mask.shape)} differs from its image {tuple(image.shape[:2])}")
            foreground = (mask > 0).to(torch.uint8)[None]
            item["mask"] = crop_masks(foreground, box, size=self.crop_size, flip=flip)[0]
        return item
