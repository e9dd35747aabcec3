"""Videos stored as JPEG frames, subsampled in time: a folder per video, read like a video.

Layout (written by ``data_prep/extract_frames.py``): the video ``a/x.mp4`` becomes the folder ``a/x/``
holding ``meta.json`` and ``000000.jpg``, ``000001.jpg``, ... -- stored frame ``j`` is frame
``j * step`` of the video. ``meta.json`` holds the video's own frame count and rate, so the clip indices
are computed in the video's frames exactly as for the video, then snapped to the stored grid: a clip
read from the folder is the clip decoded from the video at the returned indices, up to JPEG coding.

Decoding is ``torchvision.io.decode_jpeg`` (libjpeg-turbo; a list of images in one call, nvJPEG on
CUDA), reading only the 8 files a clip needs; no keyframe seeks, unlike random access into h264.
"""
from __future__ import annotations

import json
import os
from typing import Callable

import numpy as np
import torch

from .files import atomic_write_text
from .video import DecodedClip, VideoDecodeError

__all__ = ["META_NAME", "SOURCE_NAME", "frames_folder", "frame_name", "snap_to_stored", "read_frames_meta",
           "read_frame_files", "decode_frames", "read_frames_clip", "record_source",
           "frames_paths"]

META_NAME = "meta.json"
SOURCE_NAME = "frames_source.json"  # at the root of a frames tree: the video tree it was extracted from


def frames_folder(video_path: str) -> str:
    """``root/a/x.mp4`` -> ``root/a/x`` (the lists keep naming videos; only the root changes)."""
    return os.path.splitext(video_path)[0]


def record_source(frames_root: str, videos_root: str) -> None:
    """Note in ``frames_root`` which video tree its folders mirror (so lists naming those videos can be
    read from it); a tree already extracted from another folder raises ``ValueError``."""
    path = os.path.join(frames_root, SOURCE_NAME)
    videos_root = os.path.abspath(videos_root)
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            recorded = json.load(f)["videos"]
        if recorded != videos_root:
            raise ValueError(f"{frames_root} holds frames of {recorded}, not {videos_root}: choose another "
                             "output folder")
        return
    atomic_write_text(path, json.dumps({"videos": videos_root}) + "\n")


def frames_paths(video_paths: list[str], frames_root: str) -> list[str]:
    """The frames-tree names (``frames_root/a/x.mp4``, read from the folder ``a/x``) of videos listed
    under the tree ``frames_root`` was extracted from; a video outside it raises ``ValueError``."""
    path = os.path.join(frames_root, SOURCE_NAME)
    try:
        with open(path, encoding="utf-8") as f:
            videos_root = json.load(f)["videos"]
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(f"{path}: cannot read it ({type(error).__name__}); is {frames_root} a tree written "
                         "by data_prep/extract_frames.py?") from None
    mapped = []
    for video in video_paths:
        relative = os.path.relpath(os.path.abspath(video), videos_root)
        if relative == os.pardir or relative.startswith(os.pardir + os.sep):
            raise ValueError(f"{video} is not under {videos_root}, the videos {frames_root} was extracted "
                             "from")
        mapped.append(os.path.join(frames_root, relative))
    return mapped


def frame_name(stored_index: int) -> str:
    return f"{stored_index:06d}.jpg"


def snap_to_stored(indices: np.ndarray, step: int, num_stored: int) -> np.ndarray:
    """Video frame indices -> the nearest stored ones (multiples of ``step``, at most the last stored),
    as stored indices."""
    return np.clip((indices + step // 2) // step, 0, num_stored - 1).astype(np.int64)


def read_frames_meta(folder: str) -> dict:
    """``meta.json`` of a frames folder: ``num_frames`` (of the video), ``fps``, ``step``, ``num_stored``."""
    if not os.path.isdir(folder):
        raise VideoDecodeError(folder, "missing file", "no frames folder (data_prep/extract_frames.py)")
    try:
        with open(os.path.join(folder, META_NAME), encoding="utf-8") as f:
            meta = json.load(f)
        keys = ("num_frames", "fps", "step", "num_stored")
        meta = {key: meta[key] for key in keys}
    except (OSError, ValueError, KeyError) as error:
        raise VideoDecodeError(folder, "cannot open", f"{META_NAME}: {type(error).__name__}: {error}"[:200])
    if meta["num_stored"] < 1 or meta["step"] < 1:
        raise VideoDecodeError(folder, "cannot open", f"{META_NAME}: no frames stored")
    return meta


def read_frame_files(folder: str, stored: np.ndarray) -> list[torch.Tensor]:
    """The encoded bytes of the stored frames ``stored`` (each file read once), as uint8 tensors."""
    data = {}
    for index in np.unique(stored).tolist():
        path = os.path.join(folder, frame_name(index))
        try:
            data[index] = torch.frombuffer(bytearray(open(path, "rb").read()), dtype=torch.uint8)
        except OSError as error:
            raise VideoDecodeError(folder, "decoding failed", f"frame {frame_name(index)}: "
                                   f"{type(error).__name__}")
        if data[index].numel() == 0:
            raise VideoDecodeError(folder, "decoding failed", f"frame {frame_name(index)}: empty file")
    return [data[index] for index in stored.tolist()]


def decode_frames(encoded: list[torch.Tensor], *, device: str | torch.device = "cpu",
                  folder: str = "") -> torch.Tensor:
    """JPEG bytes -> uint8 ``(T, H, W, 3)`` RGB on ``device`` (one batched call; nvJPEG on CUDA)."""
    from torchvision.io import ImageReadMode, decode_jpeg

    try:
        images = decode_jpeg(encoded, mode=ImageReadMode.RGB, device=device)
        return torch.stack(images).permute(0, 2, 3, 1)
    except RuntimeError as error:  # corrupt data, or frames of different sizes
        raise VideoDecodeError(folder, "decoding failed", str(error).splitlines()[0][:200])


def read_frames_clip(path: str, index_fn: Callable[[int, float], np.ndarray], **_: object) -> DecodedClip:
    """:func:`video.read_clip` for the frames folder of the video ``path``: the indices
    ``index_fn(num_video_frames, fps)`` snapped to the stored frames, returned as video frame indices
    (so masks and comparisons line up with the video). Failures raise :class:`VideoDecodeError`."""
    folder = frames_folder(path)
    meta = read_frames_meta(folder)
    stored = snap_to_stored(index_fn(meta["num_frames"], meta["fps"]), meta["step"], meta["num_stored"])
    frames = decode_frames(read_frame_files(folder, stored), folder=folder)
    return DecodedClip(frames=frames.numpy(), indices=stored * meta["step"],
                       num_video_frames=meta["num_frames"], fps=float(meta["fps"]))
