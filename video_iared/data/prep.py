"""Per-video work of the data_prep scripts: re-encoding to a smaller short side, storing frames as JPEG,
and checking that a video decodes in a child process that may hang or crash without taking the caller down.

Both are resumable by construction: a resized video appears under its final name only once complete
(with its mask sidecar written before it), and a check result is one journal line written after the
check. The scripts shard, parallelise and report; everything here works on one video.
"""
from __future__ import annotations

import json
import multiprocessing
import os
from dataclasses import dataclass

import numpy as np

from .files import mask_sidecar_path, save_masks, temporary_path
from .video import VideoDecodeError, VideoWriter, read_clip, read_mask_sidecar

__all__ = [
    "VIDEO_EXTENSIONS", "find_videos", "scaled_size", "resize_masks", "resize_video", "try_resize_video",
    "probe_video", "CheckResult", "check_video", "extract_frames", "try_extract_frames",
]

VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv", ".avi", ".mov", ".m4v")


def find_videos(root: str) -> list[str]:
    """Paths (relative to ``root``, sorted) of every video file below ``root``; hidden files (the
    writers' temporaries) are skipped. Sorted, so every shard of an array sees the same order."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [os.path.relpath(os.path.join(folder, name), root) for name in files
                  if not name.startswith(".") and name.lower().endswith(VIDEO_EXTENSIONS)]
    return sorted(found)


def scaled_size(height: int, width: int, short_side: int) -> tuple[int, int]:
    """(height, width) with the short side ``short_side`` and the aspect ratio kept, both even (x264's
    yuv420p needs even sides)."""
    if min(height, width) < 1 or short_side < 2:
        raise ValueError(f"cannot scale a {height}x{width} frame to short side {short_side}")
    scale = short_side / min(height, width)
    return max(2, round(height * scale / 2) * 2), max(2, round(width * scale / 2) * 2)


def resize_masks(masks: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 ``(T, H, W)`` -> ``(T, height, width)`` by nearest pixel centre (labels stay labels), by
    indexing, without the float copy of the whole video an interpolation would make."""
    rows = ((np.arange(height) + 0.5) * masks.shape[1] / height).astype(np.int64)
    cols = ((np.arange(width) + 0.5) * masks.shape[2] / width).astype(np.int64)
    return masks[:, rows[:, None], cols[None, :]]


def resize_video(src: str, dst: str, *, short_side: int = 320, gop: int | None = None, crf: int = 23,
                 threads: int = 1) -> tuple[int, int]:
    """Re-encode ``src`` to an h264 mp4 ``dst`` whose short side is ``short_side`` (every frame, at the
    source's average rate; audio dropped: the loaders never read it); returns (height, width).

    A mask sidecar of ``src`` is resized along (nearest) to ``dst``'s sidecar, written first, so a
    ``dst`` present means both are complete. Unreadable sources raise :class:`VideoDecodeError`.
    """
    import av

    try:
        container = av.open(src)
    except (OSError, av.FFmpegError) as error:
        raise VideoDecodeError(src, "cannot open", str(error)[:200])
    with container:
        if not container.streams.video:
            raise VideoDecodeError(src, "cannot open", "no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        height, width = scaled_size(stream.codec_context.height, stream.codec_context.width, short_side)
        source_sidecar = mask_sidecar_path(src)
        if os.path.exists(source_sidecar):
            save_masks(mask_sidecar_path(dst), resize_masks(read_mask_sidecar(src), height, width))
        fps = float(stream.average_rate or stream.guessed_rate or 30)
        try:
            with VideoWriter(dst, width=width, height=height, fps=fps, gop=gop, crf=crf,
                             threads=threads) as writer:
                for frame in container.decode(stream):
                    writer.write_frame(frame)
        except av.FFmpegError as error:
            if os.path.exists(source_sidecar):  # no video, so no sidecar either
                os.remove(mask_sidecar_path(dst))
            raise VideoDecodeError(src, "decoding failed", str(error)[:200])
    return height, width


def try_resize_video(paths: tuple[str, str], *, short_side: int, gop: int | None,
                     crf: int) -> tuple[str, str | None]:
    """:func:`resize_video` of ``paths = (src, dst)`` in one x264 thread (for a process pool); returns
    ``(src, None)``, or ``(src, why it could not be read)`` (the run goes on with the other videos)."""
    try:
        resize_video(*paths, short_side=short_side, gop=gop, crf=crf, threads=1)
    except VideoDecodeError as error:
        return paths[0], error.reason
    return paths[0], None


def probe_video(path: str) -> None:
    """Decode the first, middle and last frames of ``path`` (and load its mask sidecar if any) with the
    training decoder; raises :class:`VideoDecodeError` naming what failed."""
    read_clip(path, lambda n, fps: np.unique([0, n // 2, n - 1]))
    if os.path.exists(mask_sidecar_path(path)):
        read_mask_sidecar(path)


def _probe_in_child(path: str, connection) -> None:
    try:
        probe_video(path)
        connection.send(None)
    except VideoDecodeError as error:
        connection.send(error.reason)
    except Exception as error:  # noqa: BLE001 - anything the decoder throws is a verdict on the video
        connection.send(f"{type(error).__name__}: {error}"[:200])


@dataclass(frozen=True)
class CheckResult:
    """Verdict of :func:`check_video` on one video."""

    path: str
    reason: str | None  # None: the video is fine

    @property
    def ok(self) -> bool:
        return self.reason is None


def check_video(path: str, *, timeout: float = 60.0) -> CheckResult:
    """:func:`probe_video` in a child process: a decoder that hangs past ``timeout`` seconds is killed,
    one that crashes (segfault, abort) is reported with its signal; neither stops the caller.

    Children are forked from a ``forkserver`` (started once, single-threaded, with this module and
    decord imported), which is cheap (~10 ms) and safe from threads, unlike forking the caller itself.
    """
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__, "decord"])  # imported once by the server, not per child
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_probe_in_child, args=(path, sender), daemon=True)
    child.start()
    sender.close()
    try:
        reason = receiver.recv() if receiver.poll(timeout) else f"decoder hung: killed after {timeout:g} s"
    except EOFError:  # the child died before it answered
        child.join(5)
        code = child.exitcode
        how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        reason = f"decoder crashed ({how})"
    finally:
        if child.is_alive():
            child.kill()
        child.join()
        receiver.close()
    return CheckResult(path, None if reason is None else " ".join(str(reason).split()))


def extract_frames(src: str, dst: str, *, step: int = 4, quality: int = 85, chunk: int = 32) -> int:
    """Store every ``step``-th frame of the video ``src`` as JPEG (``quality``) in the frames folder of
    ``dst`` (``a/x.mp4`` -> ``a/x/``, see :mod:`.frames`), decoded by the training decoder (decord) so the
    frames are the ones a video clip would hold; returns the number stored.

    The folder is written under a temporary name and renamed when complete (its mask sidecar, copied
    as is, first), so a present folder is a finished one. Unreadable sources raise
    :class:`VideoDecodeError` and leave nothing behind.
    """
    import shutil

    import decord
    import torch
    from torchvision.io import encode_jpeg

    from .frames import META_NAME, frame_name, frames_folder

    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    folder = frames_folder(dst)
    first = read_clip(src, lambda n, fps: np.zeros(1, np.int64))  # the loader's own checks and messages
    os.makedirs(os.path.dirname(os.path.abspath(folder)), exist_ok=True)
    tmp = temporary_path(folder)
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        reader = decord.VideoReader(src, num_threads=1)
        wanted = list(range(0, first.num_video_frames, step))
        for start in range(0, len(wanted), chunk):
            try:
                frames = reader.get_batch(wanted[start:start + chunk]).asnumpy()
            except (RuntimeError, decord.DECORDError) as error:
                raise VideoDecodeError(src, "decoding failed", str(error).splitlines()[-1][-200:])
            images = encode_jpeg(list(torch.from_numpy(frames).permute(0, 3, 1, 2)), quality=quality)
            for offset, data in enumerate(images):
                with open(os.path.join(tmp, frame_name(start + offset)), "wb") as f:
                    f.write(data.numpy().tobytes())
        meta = {"num_frames": first.num_video_frames, "fps": first.fps, "step": step,
                "num_stored": len(wanted), "quality": quality, "source": os.path.basename(src)}
        with open(os.path.join(tmp, META_NAME), "w", encoding="utf-8") as f:
            json.dump(meta, f)
        if os.path.exists(mask_sidecar_path(src)):
            shutil.copyfile(mask_sidecar_path(src), mask_sidecar_path(dst))
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return len(wanted)


def try_extract_frames(paths: tuple[str, str], *, step: int, quality: int) -> tuple[str, str | None]:
    """:func:`extract_frames` of ``paths = (src, dst)`` for a process pool; returns ``(src, None)`` or
    ``(src, why it could not be read)``."""
    try:
        extract_frames(*paths, step=step, quality=quality)
    except VideoDecodeError as error:
        return paths[0], error.reason
    return paths[0], None
