"""ImageNet-Segmentation (Guillaumin et al., IJCV 2014): the 4,276 annotated ImageNet validation images
on which Chefer et al. (2021) and IA-RED² (Pan et al. 2021) score heatmaps of DeiT/ViT.

The annotations ship as ``gtsegs_ijcv.mat``, a MATLAB v7.3 file, i.e. HDF5 (read with h5py):
``/value/img`` is an (n, 1) array of object references, each to a uint8 image stored column-major as
(3, W, H); ``/value/gt`` is an (n, 1) array of references, each to a (1, 1) cell whose reference leads
to the uint8 mask stored as (W, H), nonzero = object.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

__all__ = ["ImageNetSegmentation"]


class ImageNetSegmentation(torch.utils.data.Dataset):
    """Items ``{"clip": uint8 (3, S, S), "masks": uint8 (S, S)}``: image and mask resized to S × S
    (bilinear / nearest, no crop), as in Chefer et al.'s evaluation. The file opens lazily per worker."""

    def __init__(self, path: str | Path, *, size: int = 224) -> None:
        import h5py

        self.path, self.size = str(path), size
        if not Path(path).is_file():
            raise FileNotFoundError(f"no ImageNet-Segmentation file at {path} (gtsegs_ijcv.mat)")
        with h5py.File(self.path, "r") as f:
            if "value/img" not in f or "value/gt" not in f:
                raise ValueError(f"{path} has no /value/img and /value/gt: not gtsegs_ijcv.mat")
            self.length = len(f["value/img"])
        self._file = None

    def __len__(self) -> int:
        return self.length

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The original image (H, W, 3) and mask (H, W), uint8."""
        import h5py

        if self._file is None:
            self._file = h5py.File(self.path, "r")
        f = self._file
        image = np.asarray(f[f["value/img"][index, 0]]).transpose(2, 1, 0)
        mask = np.asarray(f[f[f["value/gt"][index, 0]][0, 0]]).transpose(1, 0)
        if image.shape[:2] != mask.shape:
            raise ValueError(f"{self.path} item {index}: image {image.shape[:2]} vs mask {mask.shape}")
        return image.astype(np.uint8), mask.astype(np.uint8)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        image, mask = self.read(index)
        size = [self.size, self.size]
        clip = TF.resize(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1), size,
                         interpolation=InterpolationMode.BILINEAR, antialias=True)
        masks = TF.resize(torch.from_numpy(np.ascontiguousarray(mask))[None], size,
                          interpolation=InterpolationMode.NEAREST_EXACT)[0]
        return {"clip": clip, "masks": masks}

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_file": None}  # h5py handles do not cross processes
