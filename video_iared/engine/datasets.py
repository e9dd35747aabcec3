"""Config -> datasets and loaders. The data layer never imports models, so the model's input
metadata (frames, sampling rate, crop, mean/std) arrives here as a plain :class:`InputSpec`."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

import torch
from torch.utils.data import DataLoader

from video_iared.config import Config, ConfigError
from video_iared.errors import UserError
from video_iared.data.files import mask_sidecar_path
from video_iared.data.image_clips import ImageClips
from video_iared.data.kinetics import VideoDataset, collate_items, load_dataset_info, read_list
from video_iared.models.registry import get_model_info

from .sampler import ResumableSampler

__all__ = ["InputSpec", "input_spec", "build_dataset", "build_loader", "loader_seed", "check_mask_sidecars",
           "check_list"]


@dataclass(frozen=True)
class InputSpec:
    """What the data pipeline must produce for a model: clip shape, frame sampling, crop scales and
    normalisation, as plain values."""

    num_frames: int
    sampling_rate: int
    crop_size: int
    train_jitter_scales: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]


def input_spec(cfg: Config) -> InputSpec:
    """The registered model's input metadata, with the model's own overrides (frames, image size)
    and then any ``data.*`` value that is set taking precedence."""
    info = get_model_info(cfg.model.name)
    data = cfg.data
    jitter = data.train_jitter_scales or list(info.train_jitter)
    if len(jitter) != 2 or jitter[0] > jitter[1]:
        raise ConfigError(f"data.train_jitter_scales must be [min, max], got {jitter}")
    return InputSpec(
        num_frames=data.num_frames or cfg.model.num_frames or info.num_frames,
        sampling_rate=data.sampling_rate or info.sampling_rate,
        crop_size=data.crop_size or cfg.model.img_size or info.crop_size,
        train_jitter_scales=(jitter[0], jitter[1]), mean=tuple(info.mean), std=tuple(info.std))


def check_mask_sidecars(dataset: VideoDataset, list_path: str) -> None:
    """Raise ``FileNotFoundError`` naming the first video of the list without a mask sidecar."""
    missing = [mask_sidecar_path(path) for path, _ in dataset.items
               if not os.path.exists(mask_sidecar_path(path))]
    if missing:
        raise FileNotFoundError(
            f"{list_path}: {len(missing)} of {len(dataset.items)} videos have no actor-mask sidecar, the "
            f"first {missing[0]}; the oracle rows (sweep --oracle) need an x.masks.npz (uint8 masks "
            f"(frames, H, W), nonzero = actor) beside every test video: write them, or sweep without "
            f"--oracle")


def build_dataset(cfg: Config, split: Literal["train", "val", "test"], spec: InputSpec, *,
                  with_masks: bool = False) -> VideoDataset:
    """The ``split`` list of ``cfg.data`` producing the clips ``spec`` describes (and the actor masks
    of datasets that have them when ``with_masks``: interpretability metrics, the sweep's oracle rows;
    for the test split every video must have its sidecar, checked here)."""
    data = cfg.data
    if not data.root:
        raise ConfigError("data.root is not set: point it at the folder holding the video lists")
    if data.format == "images":   # an ImageNet-layout folder, each image a one-frame clip
        return ImageClips(data.root, split, crop_size=spec.crop_size, with_masks=with_masks, flip=data.flip,
                          test_scale=data.test_scale, crop_scale=data.crop_scale, seed=cfg.run.seed)
    list_name = {"train": data.train_list, "val": data.val_list, "test": data.test_list}[split]
    list_path = os.path.join(data.root, list_name)
    views_with_masks = split == "test" and with_masks
    frames_root = data.frames_root if data.format == "frames" else ""
    if not frames_root:  # with a frames tree the videos may be gone; VideoDataset checks the mapping
        check_list(list_path, f"data.{split}_list", data.path_prefix or None)
    try:
        dataset = VideoDataset(
            list_path, split=split, num_frames=spec.num_frames,
            sampling_rate=spec.sampling_rate, crop_size=spec.crop_size,
            train_jitter_scales=spec.train_jitter_scales,
            test_scale=data.test_scale or round(spec.crop_size * 256 / 224),
            num_ensemble_views=data.num_ensemble_views, num_spatial_crops=data.num_spatial_crops,
            path_prefix=data.path_prefix or None, flip=data.flip, with_masks=with_masks, seed=cfg.run.seed,
            format=data.format, frames_root=frames_root or None, num_samples=data.num_samples,
            augment_on=data.augment_on, decode_threads=data.decode_threads)
    except (OSError, ValueError) as err:  # with frames_root: the list, or a path outside the frames' videos
        if not frames_root:
            raise
        raise ConfigError(f"data.{split}_list with data.frames_root={frames_root}: {err}") from None
    if views_with_masks:
        check_mask_sidecars(dataset, list_path)
    return dataset


def check_list(list_path: str, key: str, path_prefix: str | None = None, sample: int = 64) -> None:
    """Stop with one line on a list the loaders cannot use: missing, empty, a bad line, a bad
    ``classes.json`` beside it, or none of up to ``sample`` videos spread over it on disk (a wrong
    ``data.root`` or ``data.path_prefix``). A few missing videos are the loaders' to count."""
    if not os.path.isfile(list_path):
        raise UserError(f"{key}: no list at {list_path}; write it with data_prep/build_lists.py or set {key}")
    try:
        items = read_list(list_path, path_prefix=path_prefix)
        load_dataset_info(os.path.dirname(os.path.abspath(list_path)))
    except (ValueError, UnicodeDecodeError) as err:  # an empty list, a bad line, a bad classes.json
        raise UserError(f"{key}: {' '.join(str(err).split())}") from None
    picks = sorted({round(i * (len(items) - 1) / max(sample - 1, 1)) for i in range(sample)})
    paths = [items[i][0] for i in picks if i < len(items)]
    # a video, or its folder of extracted frames (a/x.mp4 -> a/x/)
    if not any(os.path.exists(path) or os.path.isdir(os.path.splitext(path)[0]) for path in paths):
        raise UserError(f"{key}: none of the {len(paths)} videos checked in {list_path} exists (the first: "
                        f"{paths[0]}); check data.root and data.path_prefix")


def loader_seed(seed: int, epoch: int) -> int:
    """Seed of the DataLoader's own generator for ``epoch``: worker seeds never consume the global RNG
    that drop path and token sampling use, so that stream is the same whether or not a run resumed."""
    return seed * 1_000_003 + epoch


def build_loader(dataset: VideoDataset, sampler: ResumableSampler, *, batch_size: int, num_workers: int,
                 drop_last: bool, pin_memory: bool, prefetch_factor: int = 2,
                 persistent_workers: bool = False) -> DataLoader:
    """A loader over ``sampler``'s indices (``batch_size`` items: videos, each ``num_samples`` clips);
    iterate it after ``sampler.set_epoch`` and ``loader.generator.manual_seed(loader_seed(seed, epoch))``."""
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                      drop_last=drop_last, pin_memory=pin_memory, collate_fn=collate_items,
                      prefetch_factor=prefetch_factor if num_workers else None,
                      persistent_workers=persistent_workers and num_workers > 0, generator=torch.Generator())
