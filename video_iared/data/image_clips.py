"""An ImageNet-layout image folder as one-frame clips, for the engine that trains and evaluates videos.

The engine reads its datasets through what :class:`~video_iared.data.kinetics.VideoDataset` offers
(``items``, ``labels``, ``info``, ``failure_log``, ``num_views`` ...) and batches items ``{"clip": uint8
(3, T, S, S), "label", "video", "view"[, "masks" (T, S, S)]}``. :class:`ImageClips` gives the same for
an image tree read by :class:`~video_iared.data.images.ImageFolderDataset` (DeiT's transforms), each
image a clip of one frame, so ``train``, ``evaluate``, ``sweep``, ``calibrate`` and ``interpret`` run a
DeiT (``data.format=images``) with no image branch of their own.

Layout under ``data.root``: ``train/CLASS/IMAGE`` and ``val/CLASS/IMAGE`` (the test split is ``val``, as
on ImageNet); masks, where a dataset has them, mirror it in ``masks/{train,val}/CLASS/IMAGE_STEM.png``.
"""
from __future__ import annotations

import os
from typing import Any, Literal, Sequence

import torch

from .failures import FailureLog, ListedItems
from .images import ImageFolderDataset
from .kinetics import DatasetInfo

__all__ = ["image_split_folder", "ImageClips"]


def image_split_folder(root: str, split: str, *, masks: bool = False) -> str:
    """The folder of ``split`` (train | val | test = val) under ``root``, or of its masks."""
    folder = "train" if split == "train" else "val"
    return os.path.join(root, "masks", folder) if masks else os.path.join(root, folder)


class ImageClips(ListedItems, torch.utils.data.Dataset):
    """Images of ``root/{train,val}/CLASS/IMAGE`` as one-frame clips (see the module docstring)."""

    num_ensemble_views = 1
    num_spatial_crops = 1
    num_views = 1

    def __init__(self, root: str, split: Literal["train", "val", "test"], *, crop_size: int,
                 with_masks: bool = False, flip: bool | None = None, test_scale: int | None = None,
                 crop_scale: Sequence[float] = (), seed: int = 0) -> None:
        """``test_scale``: the evaluation's short side before the centre crop (default ``crop / 0.875``,
        DeiT's); ``crop_scale``: the training crop's area range (default DeiT's (0.08, 1))."""
        mask_root = image_split_folder(root, split, masks=True) if with_masks else None
        if mask_root is not None and not os.path.isdir(mask_root):
            raise FileNotFoundError(f"{mask_root}: no masks for the {split} images (masks mirror the image "
                                    "tree as root/masks/{train,val}/CLASS/IMAGE_STEM.png)")
        folder = image_split_folder(root, split)
        self.split, self.with_masks = split, with_masks
        self.images = ImageFolderDataset(folder, split="train" if split == "train" else "val",
                                         crop_size=crop_size, flip=True if flip is None else flip,
                                         crop_pct=crop_size / test_scale if test_scale else 0.875,
                                         scale=tuple(crop_scale) if crop_scale else (0.08, 1.0),
                                         mask_root=mask_root, seed=seed)
        self.items = [(os.path.join(folder, path), label) for path, label in self.images.items]
        self.info = DatasetInfo(class_names=list(self.images.class_names))
        self.failure_log = FailureLog([path for path, _ in self.items])

    def set_epoch(self, epoch: int) -> None:
        self.images.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.images[index]
        out = {"clip": item["image"][:, None], "label": item["label"], "video": index, "view": 0}
        if "mask" in item:
            out["masks"] = item["mask"][None]                         # (1, S, S): one frame
        return out
