"""Decoding only the frames a clip needs, with decord random access.

The official loaders decode every frame of the clip window with PyAV (256 frames for 8 x 32 sampling)
and keep 8 of them; here the indices are computed first (:mod:`.sampling`) and only those frames are
decoded with ``VideoReader.get_batch``, which seeks to the nearest keyframe before each one.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

from .files import load_masks, mask_sidecar_path, temporary_path

if TYPE_CHECKING:
    import av

__all__ = [
    "FAILURE_KINDS", "DEFAULT_FAULT_TOLERANCE", "DecodedClip", "VideoDecodeError", "VideoWriter", "read_clip",
    "read_mask_sidecar", "write_video",
]

# share of corrupt frames that decord may silently replace by the last good frame before it raises;
# without it (decord's default, -1) a video whose frames mostly fail decodes as one frozen frame
DEFAULT_FAULT_TOLERANCE = 0.1


# what can go wrong with one item, in the order a loader meets it; stored as an index by FailureLog
FAILURE_KINDS = ("missing file", "empty file", "cannot open", "decoding failed", "bad mask sidecar")


class VideoDecodeError(RuntimeError):
    """A video (or its sidecar) that cannot be read: ``kind`` is one of :data:`FAILURE_KINDS`,
    ``detail`` the decoder's own message."""

    def __init__(self, path: str, kind: str, detail: str = ""):
        if kind not in FAILURE_KINDS:
            raise ValueError(f"unknown failure kind {kind!r}")
        self.path, self.kind, self.detail = path, kind, detail
        super().__init__(f"{path}: {self.reason}")

    @property
    def reason(self) -> str:
        return f"{self.kind}: {self.detail}" if self.detail else self.kind


@dataclass
class DecodedClip:
    """Frames of one clip as uint8 ``(T, H, W, 3)`` RGB, with the indices they were taken at."""

    frames: np.ndarray
    indices: np.ndarray
    num_video_frames: int
    fps: float


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    # decord prefixes its messages with "[time] file.cc:line: "; the reason is after the last ": "
    return (lines[-1] if lines else type(error).__name__)[-200:]


def read_clip(
    path: str,
    index_fn: Callable[[int, float], np.ndarray],
    *,
    num_threads: int = 1,
    fault_tol: float = DEFAULT_FAULT_TOLERANCE,
) -> DecodedClip:
    """Decode the frames ``index_fn(num_video_frames, fps)`` of the video at ``path``.

    The reader is opened here and dropped on return, so nothing unpicklable lives in a dataset and
    each DataLoader worker opens its own. Every failure is raised as :class:`VideoDecodeError`.
    """
    import decord  # imported lazily: decord initialises FFmpeg on import

    if not os.path.exists(path):
        raise VideoDecodeError(path, "missing file")
    if os.path.getsize(path) == 0:
        raise VideoDecodeError(path, "empty file")
    try:
        reader = decord.VideoReader(path, num_threads=num_threads, fault_tol=fault_tol)
    except (RuntimeError, decord.DECORDError) as error:
        raise VideoDecodeError(path, "cannot open", _first_line(error))
    num_video_frames = len(reader)
    if num_video_frames < 1:
        raise VideoDecodeError(path, "cannot open", "no video frames")
    fps = float(reader.get_avg_fps()) or 30.0
    indices = index_fn(num_video_frames, fps)
    try:
        frames = reader.get_batch(indices.tolist()).asnumpy()
    except (RuntimeError, decord.DECORDError) as error:
        raise VideoDecodeError(path, "decoding failed", _first_line(error))
    return DecodedClip(frames=frames, indices=indices, num_video_frames=num_video_frames, fps=fps)


def read_mask_sidecar(video_path: str) -> np.ndarray:
    """The uint8 ``(frames, H, W)`` masks of ``video_path``'s sidecar; one that cannot be read or has
    another shape raises :class:`VideoDecodeError` ("bad mask sidecar")."""
    path = mask_sidecar_path(video_path)
    try:
        masks = load_masks(path)
    except (OSError, KeyError, ValueError) as error:
        raise VideoDecodeError(path, "bad mask sidecar", f"{type(error).__name__}: {error}"[:200])
    if masks.ndim != 3 or len(masks) == 0:
        raise VideoDecodeError(path, "bad mask sidecar", f"masks of shape {masks.shape}, not (frames, H, W)")
    return masks.astype(np.uint8, copy=False)


class VideoWriter:
    """Streaming h264 mp4 writer (PyAV) that never leaves a half-written file: frames go to a
    temporary file in the same folder, renamed over ``path`` only by a successful :meth:`close`.

    ``gop`` is the keyframe interval (random access seeks back to the previous keyframe, so a short
    GOP makes decord's ``get_batch`` cheaper); ``crf`` the x264 quality (lower = better, 23 default).
    Odd frame sizes are encoded in yuv444p, which x264 allows and yuv420p does not. ``threads`` is
    x264's thread count (0 = one per core; 1 when many videos are encoded in parallel processes).
    """

    def __init__(self, path: str, *, width: int, height: int, fps: float = 30.0, gop: int | None = None,
                 crf: int = 23, pix_fmt: str | None = None, threads: int = 0):
        import av
        from fractions import Fraction

        self.path = path
        self._tmp = temporary_path(path)
        self._container = av.open(self._tmp, "w", format="mp4", options={"movflags": "+faststart"})
        rate = Fraction(fps).limit_denominator(1001)
        self._time_base = 1 / rate
        self._stream = self._container.add_stream("libx264", rate=rate,
                                                  options={"crf": str(crf), "preset": "veryfast"})
        self._stream.width, self._stream.height = width, height
        self._stream.pix_fmt = pix_fmt or ("yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p")
        self._stream.codec_context.thread_count = threads
        self._frames_written = 0
        if gop is not None:
            self._stream.codec_context.gop_size = gop
            self._stream.codec_context.options = {**self._stream.codec_context.options,
                                                  "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0"}

    def write(self, frame: np.ndarray) -> None:
        """Append one uint8 ``(H, W, 3)`` RGB frame."""
        import av

        self.write_frame(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24"))

    def write_frame(self, frame: "av.VideoFrame") -> None:
        """Append one decoded PyAV frame, rescaled (area filter) to the output size and pixel format."""
        stream = self._stream
        if (frame.width, frame.height, frame.format.name) != (stream.width, stream.height, stream.pix_fmt):
            frame = frame.reformat(width=stream.width, height=stream.height, format=stream.pix_fmt,
                                   interpolation="AREA")
        # timestamps are the writer's (constant rate, in frames), not the source's
        frame.pts, frame.time_base = self._frames_written, self._time_base
        self._frames_written += 1
        for packet in stream.encode(frame):
            self._container.mux(packet)

    def close(self) -> None:
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        self._container.close()
        if os.path.exists(self._tmp):
            os.remove(self._tmp)

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close() if exc_type is None else self.abort()


def write_video(path: str, frames: np.ndarray, *, fps: float = 30.0, gop: int | None = None, crf: int = 23,
                threads: int = 0) -> None:
    """Write uint8 ``(T, H, W, 3)`` RGB frames as an h264 mp4 (atomically, see :class:`VideoWriter`;
    ``threads=1`` makes the bytes reproducible, x264's frame threads do not)."""
    with VideoWriter(path, width=frames.shape[2], height=frames.shape[1], fps=fps, gop=gop, crf=crf,
                     threads=threads) as writer:
        for frame in frames:
            writer.write(frame)
