"""Data layer: Kinetics-format video lists, image folders, frame sampling and transforms.

Never imports :mod:`video_iared.models`; model input metadata (frames, sampling rate, crop, mean/std)
arrives as plain constructor arguments.
"""
from .failures import Failure, FailureLog
from .files import mask_sidecar_path
from .images import ImageFolderDataset
from .frames import read_frames_clip
from .kinetics import DatasetInfo, VideoDataset, collate_items, load_dataset_info, read_list
from .sampling import clip_indices, temporal_view_positions
from .transforms import normalize_on_device
from .video import FAILURE_KINDS, VideoDecodeError, read_clip

__all__ = [
    "FAILURE_KINDS", "DatasetInfo", "Failure", "FailureLog", "ImageFolderDataset", "VideoDataset",
    "VideoDecodeError",
    "clip_indices", "collate_items", "load_dataset_info", "mask_sidecar_path", "normalize_on_device",
    "read_clip",
    "read_frames_clip", "read_list", "temporal_view_positions",
]
