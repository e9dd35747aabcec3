"""Kinetics-format video datasets: ``path label`` lists, decord decoding, official transforms.

Lists follow the official TimeSformer/SlowFast format -- one ``path label`` per line, space separated,
integer labels -- or ``path,label`` CSV. Relative paths are resolved against ``path_prefix`` (the
official ``DATA.PATH_PREFIX``) or, by default, the list's own folder. A ``classes.json`` beside the
list (``{"classes": [name of id 0, ...], "flip_sensitive": false, ...}``) names the classes and tells
whether horizontal flips change the label (direction classes: synthetic set, Something-Something).

Splits (the official K400 recipe, 8 x 32 sampling):
- ``train``: a random window, short side jittered in ``train_jitter_scales``, random ``crop_size``
  crop, horizontal flip unless flip-sensitive.
- ``val``: one centred window, short side ``test_scale``, centre crop.
- ``test``: ``num_ensemble_views`` centred windows x ``num_spatial_crops`` crops along the long side
  at short side ``crop_size``.
Every split returns the same item, a dict (see :meth:`VideoDataset.__getitem__`). Training replaces an
unreadable video by a random other one and counts it; ``val`` and ``test`` never substitute: the item
keeps its place with label -1 and is counted, and the engine leaves it out.
Augmentation randomness is a function of (seed, epoch, index) only, so results do not depend on the
number of workers or GPUs, and a resumed run repeats the same clips.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from .failures import FailureLog, ListedItems
from .files import mask_sidecar_path
from .frames import frames_paths, read_frames_clip
from .sampling import clip_indices, temporal_view_positions
from .transforms import Box, crop_clip, crop_masks, cut_box, multi_view_crop_boxes, train_crop_box
from .video import DEFAULT_FAULT_TOLERANCE, DecodedClip, VideoDecodeError, read_clip, read_mask_sidecar

__all__ = ["DatasetInfo", "VideoDataset", "collate_items", "parse_list", "read_list", "load_dataset_info"]

Split = Literal["train", "val", "test"]


def parse_list(list_path: str) -> list[tuple[str, int]]:
    """``(path as written, label)`` of a ``path label`` (or ``path,label``) list; a bad line raises
    naming file and line number.

    Paths may contain spaces (the label is the last field). A first line ``path label`` / ``path,label``
    is taken as a header and skipped. Blank lines are ignored.
    """
    items = []
    with open(list_path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            line = line.strip()
            if not line:
                continue
            fields = line.rsplit(",", 1) if "," in line else line.rsplit(None, 1)
            if number == 1 and fields[-1].strip() == "label":
                continue
            try:
                path, label = fields[0].strip(), int(fields[1])
                if not path or label < 0:
                    raise ValueError
            except (ValueError, IndexError):
                raise ValueError(f"{list_path}:{number}: expected 'path label' or 'path,label' with a "
                                 f"label >= 0, got {line!r}") from None
            items.append((path, label))
    if not items:
        raise ValueError(f"{list_path}: no items")
    return items


def read_list(list_path: str, *, path_prefix: str | None = None) -> list[tuple[str, int]]:
    """:func:`parse_list` with the paths resolved against ``path_prefix`` (default: the list's folder)."""
    root = os.path.dirname(os.path.abspath(list_path)) if path_prefix is None else path_prefix
    return [(os.path.normpath(os.path.join(root, path)), label) for path, label in parse_list(list_path)]


@dataclass
class DatasetInfo:
    """What ``classes.json`` says about a dataset (empty when the file is absent)."""

    class_names: list[str] = field(default_factory=list)
    flip_sensitive: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def load_dataset_info(folder: str) -> DatasetInfo:
    path = os.path.join(folder, "classes.json")
    if not os.path.exists(path):
        return DatasetInfo()
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    names = data.pop("classes", [])
    if not isinstance(names, list):
        raise ValueError(f"{path}: 'classes' must be a list of names indexed by class id")
    return DatasetInfo(class_names=names, flip_sensitive=bool(data.pop("flip_sensitive", False)), extra=data)


def _load_masks(video_path: str, indices: np.ndarray, frame_size: tuple[int, int]) -> torch.Tensor:
    """Masks of the sampled frames at the video's frame size (sidecars may be stored smaller)."""
    masks = read_mask_sidecar(video_path)
    masks = torch.from_numpy(masks[np.clip(indices, 0, len(masks) - 1)])
    if tuple(masks.shape[1:]) != frame_size:
        masks = F.interpolate(masks[None].float(), size=frame_size, mode="nearest-exact")[0].to(torch.uint8)
    return masks


class VideoDataset(ListedItems, torch.utils.data.Dataset):
    """A Kinetics-format list as clips (see the module docstring for splits and items).

    Args:
        list_path: ``path label`` list; ``classes.json`` beside it is read when present.
        split: ``train`` | ``val`` | ``test``.
        num_frames, sampling_rate: frames per clip and their spacing at ``target_fps`` (official 8, 32).
        crop_size: output side (224).
        train_jitter_scales: inclusive range of the training short side (256, 320).
        test_scale: short side before the centre crop of ``val`` (256).
        num_ensemble_views, num_spatial_crops: ``test`` views per video (1 x 3).
        target_fps: frame rate at which ``sampling_rate`` is counted (30).
        path_prefix: root for relative list paths (default: the list's folder).
        flip: horizontal flip in training; ``None`` = on unless classes.json says ``flip_sensitive``.
        with_masks: return ``masks`` from ``x.masks.npz`` sidecars (``train``/``val``); ``None`` = when
            the first listed video has one. A missing sidecar then counts as a failed item.
        seed: base of the (seed, epoch, index) augmentation randomness.
        max_retries: replacement videos tried for an unreadable training item before giving up.
        decode_threads, fault_tol: decord's ``num_threads`` and corrupt-frame tolerance.
        format: ``video`` files, or ``frames``: the JPEG frame folders of :mod:`.frames` (the list's
            ``a/x.mp4`` is read from the folder ``a/x``).
        frames_root: with ``frames``, the tree ``data_prep/extract_frames.py`` wrote: listed videos are
            read from their folders there (the lists stay as built for the videos). Without it the list's
            paths (after ``path_prefix``) must name the frames tree.
        num_samples: training clips per decoded window (repeated sampling; K augmentations).
        augment_on: ``host`` (crop, resize, flip in the worker) or ``device``: the worker only cuts the
            box out and flips; :func:`.transforms.resize_crops` resizes on the device (training only).
    """

    def __init__(
        self,
        list_path: str,
        *,
        split: Split = "train",
        num_frames: int = 8,
        sampling_rate: int = 32,
        crop_size: int = 224,
        train_jitter_scales: tuple[int, int] = (256, 320),
        test_scale: int = 256,
        num_ensemble_views: int = 1,
        num_spatial_crops: int = 3,
        target_fps: float = 30.0,
        path_prefix: str | None = None,
        flip: bool | None = None,
        with_masks: bool | None = None,
        seed: int = 0,
        max_retries: int = 10,
        decode_threads: int = 1,
        fault_tol: float = DEFAULT_FAULT_TOLERANCE,
        format: Literal["video", "frames"] = "video",
        frames_root: str | None = None,
        num_samples: int = 1,
        augment_on: Literal["host", "device"] = "host",
    ):
        if split not in ("train", "val", "test"):
            raise ValueError(f"split must be train, val or test, got {split!r}")
        if format not in ("video", "frames"):
            raise ValueError(f"format must be video or frames, got {format!r}")
        if num_samples < 1 or augment_on not in ("host", "device"):
            raise ValueError(f"num_samples must be >= 1 and augment_on host or device, got {num_samples} "
                             f"and {augment_on!r}")
        self.items = read_list(list_path, path_prefix=path_prefix)
        if format == "frames" and frames_root:  # the listed videos, read from their frame folders
            self.items = list(zip(frames_paths([path for path, _ in self.items], frames_root), self.labels))
        self.info = load_dataset_info(os.path.dirname(os.path.abspath(list_path)))
        self.split = split
        self.num_frames, self.sampling_rate, self.target_fps = num_frames, sampling_rate, target_fps
        self.crop_size, self.test_scale = crop_size, test_scale
        self.train_jitter_scales = tuple(train_jitter_scales)
        self.num_ensemble_views, self.num_spatial_crops = num_ensemble_views, num_spatial_crops
        self.flip = (not self.info.flip_sensitive) if flip is None else flip
        if with_masks is None:
            with_masks = split != "test" and os.path.exists(mask_sidecar_path(self.items[0][0]))
        self.with_masks = with_masks
        self.seed, self.max_retries = seed, max_retries
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()  # seen by persistent workers too
        self.decode_threads, self.fault_tol = decode_threads, fault_tol
        self.format = format
        # repeated sampling and device augmentation are training options; evaluation items stay fixed
        self.num_samples = num_samples if split == "train" else 1
        self.augment_on = augment_on if split == "train" else "host"
        if self.augment_on == "device" and with_masks:
            raise ValueError("augment_on='device' resizes clips on the device, masks are resized on the "
                             "host: use augment_on='host' with masks")
        self.failure_log = FailureLog([path for path, _ in self.items])
        self._cache: tuple[tuple[int, int], tuple[DecodedClip, Any] | None] | None = None  # eval views

    # -- bookkeeping the engine uses -------------------------------------------------------------
    @property
    def num_views(self) -> int:
        return self.num_ensemble_views * self.num_spatial_crops if self.split == "test" else 1

    @property
    def epoch(self) -> int:
        return int(self._epoch[0])

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation stream of ``epoch`` (call before each epoch, like a sampler's; shared
        memory, so DataLoader workers that outlive an epoch see it)."""
        self._epoch[0] = epoch

    def __len__(self) -> int:
        return len(self.items) * self.num_views

    # -- items -----------------------------------------------------------------------------------
    def __getitem__(self, index: int) -> dict[str, Any]:
        """One item: ``clip`` uint8 ``(3, T, crop, crop)``, ``label``, ``video`` (the list index of the
        video the clip came from), ``view``, and ``masks`` ``(T, crop, crop)`` when ``with_masks``.

        ``train`` with ``num_samples`` K > 1: ``clip`` (and ``masks``) are lists of K augmented clips of
        one decoded window (:func:`collate_items` makes them K batch rows). ``augment_on="device"``:
        each clip is the uint8 crop ``(T, h, w, 3)`` before its resize (:func:`.transforms.resize_crops`
        finishes it on the device)."""
        if self.split == "train":
            return self._train_item(index)
        return self._eval_item(*divmod(index, self.num_views))

    def _train_item(self, index: int) -> dict[str, Any]:
        """Training may substitute: an unreadable video is counted and replaced by a random one (the
        official behaviour; the engine logs the count per epoch)."""
        rng = np.random.default_rng([self.seed, self.epoch, index])
        video = index
        for _ in range(self.max_retries + 1):
            path, label = self.items[video]
            try:
                decoded = self._decode(path, float(rng.random()))
                masks = _load_masks(path, decoded.indices, decoded.frames.shape[1:3]) if self.with_masks \
                    else None
                samples = [self._train_sample(decoded, masks, rng) for _ in range(self.num_samples)]
                break
            except VideoDecodeError as error:
                self.failure_log.record(video, error)
                video = int(rng.integers(len(self.items)))
        else:
            raise RuntimeError(
                f"{self.max_retries + 1} unreadable videos in a row starting at item {index} "
                f"({self.items[index][0]}); check the list with data_prep/check_videos.py")
        item: dict[str, Any] = {"label": label, "video": video, "view": 0}
        for key in samples[0]:
            item[key] = samples[0][key] if self.num_samples == 1 else [sample[key] for sample in samples]
        return item

    def _train_sample(self, decoded: DecodedClip, masks: torch.Tensor | None,
                      rng: np.random.Generator) -> dict[str, Any]:
        height, width = decoded.frames.shape[1:3]
        box = train_crop_box(height, width, crop_size=self.crop_size,
                             jitter_scales=self.train_jitter_scales, rng=rng)
        flip = self.flip and bool(rng.random() < 0.5)
        if self.augment_on == "device":
            return {"clip": cut_box(decoded.frames, box, flip=flip)}
        sample = {"clip": crop_clip(decoded.frames, box, size=self.crop_size, flip=flip)}
        if masks is not None:
            sample["masks"] = crop_masks(masks, box, size=self.crop_size, flip=flip)
        return sample

    def _eval_item(self, video: int, view: int) -> dict[str, Any]:
        """A ``val`` item (one centred view at ``test_scale``) or one ``test`` view. Evaluation never
        substitutes: a failed video gives a zero clip and label -1, which the engine excludes from every
        figure (``failures`` lists it). The spatial crops of one test window share one decode."""
        temporal, spatial = divmod(view, self.num_spatial_crops) if self.split == "test" else (0, 0)
        path, label = self.items[video]
        key = (video, temporal)
        if self._cache is None or self._cache[0] != key:
            position = temporal_view_positions(self.num_ensemble_views)[temporal] if self.split == "test" \
                else 0.5
            try:
                decoded = self._decode(path, position)
                masks = _load_masks(path, decoded.indices, decoded.frames.shape[1:3]) if self.with_masks \
                    else None
                self._cache = (key, (decoded, masks))
            except VideoDecodeError as error:
                self.failure_log.record(video, error)
                self._cache = (key, None)
        item: dict[str, Any] = {"label": label, "video": video, "view": view}
        if self._cache[1] is None:
            blank = torch.zeros(3, self.num_frames, self.crop_size, self.crop_size, dtype=torch.uint8)
            item.update(clip=blank, label=-1, **({"masks": blank[0]} if self.with_masks else {}))
            return item
        decoded, masks = self._cache[1]
        height, width = decoded.frames.shape[1:3]
        if self.split == "test":
            boxes = multi_view_crop_boxes(height, width, crop_size=self.crop_size, short_side=self.crop_size,
                                          num_crops=self.num_spatial_crops)
            box: Box = boxes[spatial]
        else:
            box = multi_view_crop_boxes(height, width, crop_size=self.crop_size, num_crops=1,
                                        short_side=self.test_scale)[0]
        item["clip"] = crop_clip(decoded.frames, box, size=self.crop_size)
        if self.with_masks:  # the view's actor masks through the same frames and box (the oracle rows)
            item["masks"] = crop_masks(masks, box, size=self.crop_size)
        return item

    def _decode(self, path: str, position: float) -> DecodedClip:
        def index_fn(num_video_frames: int, fps: float) -> np.ndarray:
            return clip_indices(num_video_frames, num_frames=self.num_frames,
                                sampling_rate=self.sampling_rate, position=position, video_fps=fps,
                                target_fps=self.target_fps)

        read = read_clip if self.format == "video" else read_frames_clip
        return read(path, index_fn, num_threads=self.decode_threads, fault_tol=self.fault_tol)


def collate_items(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Batch dataset items: an item of K clips (``num_samples``) gives K rows with its label, video and
    view repeated; clips of one shape are stacked ``(B, ...)``, crops of several shapes
    (``augment_on="device"``) stay a list for :func:`.transforms.resize_crops`."""
    rows: dict[str, list] = {}
    for item in items:
        count = len(item["clip"]) if isinstance(item["clip"], list) else 1
        for key, value in item.items():
            rows.setdefault(key, []).extend(value if isinstance(value, list) else [value] * count)
    batch: dict[str, Any] = {}
    for key, values in rows.items():
        if not isinstance(values[0], torch.Tensor):
            batch[key] = torch.tensor(values)
        elif all(v.shape == values[0].shape for v in values):
            batch[key] = torch.stack(values)
        else:
            batch[key] = values
    return batch
