#!/usr/bin/env python
"""Training clips/s of three Kinetics loaders on the same generated 320p h264 videos (8 x 32 sampling,
short-side jitter [256, 320], random 224 crop, flip; uint8 out):

- ``ours``: ``video_iared.data.VideoDataset`` -- indices first, decord ``get_batch`` of the 8 frames.
- ``pyav_full``: the official approach (SlowFast/TimeSformer ``decoder.decode``): PyAV decodes the whole
  256-frame window from the preceding keyframe, converts every frame to RGB, keeps 8.
- ``pytorchvideo``: ``pytorchvideo.data.Kinetics(decoder="decord")``: decord decodes every frame of the
  window (``get_batch`` of all of them, float32), then 8 are kept.

Each runs with one process (no DataLoader workers, one decode thread; pytorchvideo's decord uses its
default, all cores) and with --workers DataLoader workers, on videos with a keyframe every 250 frames
(x264's default) and every --short-gop frames. Measurements are interleaved over --rounds and the median
is reported, as clips/s and as ratios to ``ours``. Videos are generated once into --video-dir.

    python benchmarks/loader_speed.py            # default: 4 videos per GOP, 2 min 21 s on 2 cores
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from functools import partial

import numpy as np
import torch

from video_iared.data import VideoDataset, clip_indices
from video_iared.data.files import atomic_write_text, parallel_map
from video_iared.data.transforms import crop_clip, train_crop_box
from video_iared.data.video import VideoWriter

NUM_FRAMES, SAMPLING_RATE, CROP, JITTER = 8, 32, 224, (256, 320)
METHODS = ("ours", "pyav_full", "pytorchvideo")


def natural_video(path: str, *, seed: int, gop: int, seconds: float = 10.0, fps: float = 30.0,
                  height: int = 320, width: int = 568) -> None:
    """A camera panning over a 1/f-noise "landscape" (the spectrum of natural images) with a few
    moving blobs, mild sensor noise and lighting drift: content that h264 codes like real footage."""
    rng = np.random.default_rng(seed)
    frames = int(seconds * fps)
    ch, cw = height + 160, width + 320
    fy, fx = np.fft.fftfreq(ch)[:, None], np.fft.fftfreq(cw)[None, :]
    spectrum = 1.0 / np.maximum(np.hypot(fy, fx), 1.0 / max(ch, cw)) ** 1.1
    canvas = np.stack([np.real(np.fft.ifft2(spectrum * np.exp(2j * np.pi * rng.random((ch, cw)))))
                       for _ in range(3)], -1)
    canvas = (canvas - canvas.mean()) / canvas.std()
    canvas = np.clip(110 + 12 * canvas + 50 * canvas.mean(-1, keepdims=True), 0, 255).astype(np.float32)
    path_y = 80 + 70 * np.sin(np.linspace(0, rng.uniform(1, 3), frames) + rng.uniform(0, 6))
    path_x = np.linspace(0, 320 * rng.uniform(0.5, 1.0), frames)
    blobs = rng.uniform([0, 0, 8, -3, -3], [height, width, 30, 3, 3], (4, 5))  # y, x, radius, vy, vx
    noise = rng.normal(0, 3, (7, height, width, 3)).astype(np.float32)  # sensor noise, cycled
    with VideoWriter(path, width=width, height=height, fps=fps, gop=gop, threads=1) as writer:
        for t in range(frames):
            y0, x0 = int(path_y[t]), int(path_x[t])
            light = np.float32(1 + 0.1 * np.sin(t / 40))
            frame = canvas[y0:y0 + height, x0:x0 + width] * light + noise[t % 7]
            for by, bx, r, vy, vx in blobs:
                cy, cx, r = int((by + vy * t) % height), int((bx + vx * t) % width), int(r)
                top, left = max(cy - r, 0), max(cx - r, 0)
                bottom, right = min(cy + r, height), min(cx + r, width)
                yy, xx = np.ogrid[top:bottom, left:right]
                patch = frame[top:bottom, left:right]
                inside = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
                patch[inside] = patch[inside] * 0.4 + 140
            writer.write(np.clip(frame, 0, 255).astype(np.uint8))


def _make_video(job: tuple[str, int, int]) -> None:
    path, seed, gop = job
    if not os.path.exists(path):
        natural_video(path, seed=seed, gop=gop)


def make_videos(video_dir: str, num_videos: int, gops: tuple[int, ...], workers: int) -> dict[int, str]:
    """``{gop: list path}``: ``num_videos`` 10 s videos per GOP (the same content for every GOP)."""
    lists = {}
    jobs = []
    for gop in gops:
        folder = os.path.join(video_dir, f"gop{gop}")
        os.makedirs(folder, exist_ok=True)
        names = [f"{i:03d}.mp4" for i in range(num_videos)]
        jobs += [(os.path.join(folder, name), i, gop) for i, name in enumerate(names)]
        lists[gop] = os.path.join(folder, "list.csv")
        atomic_write_text(lists[gop], "".join(f"{name} 0\n" for name in names))
    for _ in parallel_map(_make_video, jobs, workers=workers, desc="generating videos"):
        pass
    return lists


def _crop_like_ours(frames: torch.Tensor | np.ndarray, rng: np.random.Generator) -> torch.Tensor:
    """(T, H, W, 3) -> uint8 (3, T, 224, 224), the training transform every method shares."""
    height, width = frames.shape[1:3]
    box = train_crop_box(height, width, crop_size=CROP, jitter_scales=JITTER, rng=rng)
    return crop_clip(frames, box, size=CROP, flip=bool(rng.random() < 0.5))


class PyAVFullWindow(torch.utils.data.Dataset):
    """The official decoding path: seek to the keyframe before the window, decode and convert every
    frame of the 256-frame window to RGB, keep 8."""

    def __init__(self, list_path: str):
        folder = os.path.dirname(list_path)
        self.paths = [os.path.join(folder, line.split()[0]) for line in open(list_path)]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        import av

        rng = np.random.default_rng([0, 0, index])
        with av.open(self.paths[index]) as container:
            stream = container.streams.video[0]
            fps = float(stream.average_rate)
            wanted = clip_indices(stream.frames, num_frames=NUM_FRAMES, sampling_rate=SAMPLING_RATE,
                                  position=float(rng.random()), video_fps=fps)
            start_pts = int(wanted[0] / fps / stream.time_base)
            container.seek(start_pts, stream=stream, backward=True, any_frame=False)
            window = {}
            for frame in container.decode(stream):
                number = round(float(frame.pts * stream.time_base) * fps)
                if number > wanted[-1]:
                    break
                if number >= wanted[0]:
                    window[number] = frame.to_rgb().to_ndarray()
        frames = np.stack([window[min(window, key=lambda n: abs(n - i))] for i in wanted])
        return _crop_like_ours(frames, rng)


def _pytorchvideo_transform(sample: dict, rng: np.random.Generator) -> torch.Tensor:
    video = sample["video"]  # float32 (C, T_window, H, W)
    keep = torch.linspace(0, video.shape[1] - 1, NUM_FRAMES).long()
    return _crop_like_ours(video[:, keep].permute(1, 2, 3, 0).to(torch.uint8), rng)


def make_dataset(method: str, list_path: str) -> torch.utils.data.Dataset:
    if method == "ours":
        return VideoDataset(list_path, split="train", num_frames=NUM_FRAMES, sampling_rate=SAMPLING_RATE,
                            crop_size=CROP, train_jitter_scales=JITTER, with_masks=False)
    if method == "pyav_full":
        return PyAVFullWindow(list_path)
    from pytorchvideo.data import Kinetics, make_clip_sampler

    return Kinetics(data_path=list_path, video_path_prefix=os.path.dirname(list_path), decoder="decord",
                    clip_sampler=make_clip_sampler("random", NUM_FRAMES * SAMPLING_RATE / 30.0),
                    video_sampler=partial(torch.utils.data.RandomSampler, replacement=True,
                                          num_samples=10**6),
                    decode_audio=False,
                    transform=partial(_pytorchvideo_transform, rng=np.random.default_rng(0)))


def _limit_threads(_: int = 0) -> None:
    torch.set_num_threads(1)


def clips_per_second(method: str, list_path: str, *, clips: int, seconds: float, workers: int) -> float:
    """Steady-state rate over ``clips`` clips or ``seconds`` (whichever ends first, at least 2 clips).
    The clock starts once every worker has delivered a clip, so start-up and the first prefetched
    clips are excluded."""
    import decord

    # decord's output type is process-wide: pytorchvideo needs torch tensors (it sets that on import),
    # our loader decord's native arrays
    decord.bridge.set_bridge("torch" if method == "pytorchvideo" else "native")
    dataset = make_dataset(method, list_path)
    warmup = max(workers, 1)
    if workers == 0:
        iterator = iter(dataset) if isinstance(dataset, torch.utils.data.IterableDataset) else \
            (dataset[i % len(dataset)] for i in range(clips + warmup))
    else:
        if not isinstance(dataset, torch.utils.data.IterableDataset):
            dataset = torch.utils.data.Subset(dataset, [i % len(dataset) for i in range(clips + warmup)])
        iterator = iter(torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=workers,
                                                    prefetch_factor=1, worker_init_fn=_limit_threads))
    for _ in range(warmup):
        next(iterator)
    start = time.perf_counter()
    done = 0
    while done < clips and (done < 2 or time.perf_counter() - start < seconds):
        next(iterator)
        done += 1
    return done / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video-dir", default="benchmark_videos", help="generated videos (reused)")
    parser.add_argument("--videos", type=int, default=4, help="videos per GOP (default 4)")
    parser.add_argument("--clips", type=int, default=12, help="most clips timed per measurement (default 12)")
    parser.add_argument("--seconds", type=float, default=3.0, help="most seconds per measurement (default 3)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved repeats, median kept (default 2)")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the parallel runs")
    parser.add_argument("--short-gop", type=int, default=16)
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    args = parser.parse_args(argv)
    _limit_threads()

    gops = (250, args.short_gop)
    lists = make_videos(args.video_dir, args.videos, gops, workers=os.cpu_count() or 1)
    settings = [(gop, workers) for gop in gops for workers in (0, args.workers)]
    rates: dict[tuple[int, int, str], list[float]] = {}
    for round_ in range(args.rounds):
        for gop, workers in settings:
            for method in args.methods:
                rate = clips_per_second(method, lists[gop], clips=args.clips, seconds=args.seconds,
                                        workers=workers)
                rates.setdefault((gop, workers, method), []).append(rate)
                print(f"round {round_}: gop {gop}, workers {workers}, {method}: {rate:.2f} clips/s",
                      file=sys.stderr)

    print(f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads 1; "
          f"{args.videos} videos per GOP (320x568, 10 s, 30 fps), up to {args.clips} clips or "
          f"{args.seconds:g} s x {args.rounds} rounds")
    header = "| GOP | workers | " + " | ".join(f"{m} clips/s" for m in args.methods) + " | " + \
        " | ".join(f"ours / {m}" for m in args.methods if m != "ours") + " |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for gop, workers in settings:
        median = {m: statistics.median(rates[(gop, workers, m)]) for m in args.methods}
        ratios = [f"{median['ours'] / median[m]:.1f}x"
                  for m in args.methods if m != "ours" and "ours" in median]
        print(f"| {gop} | {workers} | " + " | ".join(f"{median[m]:.2f}" for m in args.methods) + " | "
              + " | ".join(ratios) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
