#!/usr/bin/env python
"""Generate a synthetic motion-action dataset in the Kinetics layout: the motion set (default) or the clutter
set (--set clutter: a small ring-shaped actor among moving look-alikes over a panning background); or, with
--set images, the image clutter set in the ImageNet layout (video_iared/data/clutter_images.py: the class
is the shape of a near-white object among look-alikes; OUT_DIR/{train,val}/CLASS/00042.png and masks in
OUT_DIR/masks/{train,val}/CLASS/00042.png).

    OUT_DIR/videos/{train,val}/00042.mp4         h264 videos (PyAV)
    OUT_DIR/videos/{train,val}/00042.masks.npz   actor masks, uint8 (frames, H, W)
    OUT_DIR/{train,val,test}.csv                 'path label' lists (test = val, as on Kinetics)
    OUT_DIR/classes.json                         class names, "flip_sensitive" (true for --classes ordered),
                                                 "set", "dataset" and the generation arguments

Classes are motions (video_iared.data.synthetic.CLASSES). Resumable: finished videos are skipped, and
every file is written to a temporary name first. Parallel over processes.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from functools import partial
from typing import Callable

from video_iared.data.clutter import render_clutter_video
from video_iared.data.clutter_images import IMAGE_CLASSES, render_clutter_image
from video_iared.data.files import atomic_write_text, mask_sidecar_path, parallel_map, save_masks
from video_iared.data.synthetic import (CLASSES, FLIP_SENSITIVE_CLASSES, ORDERED_CLASSES, render_video,
                                        video_label)
from video_iared.data.video import write_video

CLASS_SETS = {"default": CLASSES, "ordered": ORDERED_CLASSES}
RENDERERS = {"motion": render_video, "clutter": render_clutter_video}
# --size and --distractors when not given: the clutter set's 32-px frames give a 7x7 grid of 4-px patches
SET_DEFAULTS = {"motion": {"size": 64, "distractors": 2}, "clutter": {"size": 32, "distractors": 4},
                "images": {"size": 32, "distractors": 4}}


def _make_image(job: tuple[str, int], *, out_dir: str, seed: int, size: int, distractors: int) -> None:
    """One image of the image clutter set and its mask (the mask first: an image present means both)."""
    from PIL import Image

    split, index = job
    image, mask, label = render_clutter_image(seed, split, index, size=size, num_distractors=distractors)
    name = os.path.join(IMAGE_CLASSES[label], f"{index:05d}.png")
    paths = {"masks": os.path.join(out_dir, "masks", split, name),
             "image": os.path.join(out_dir, split, name)}
    if os.path.exists(paths["image"]):
        return
    for kind, array in (("masks", mask * 255), ("image", image)):
        os.makedirs(os.path.dirname(paths[kind]), exist_ok=True)
        tmp = paths[kind] + ".tmp.png"
        Image.fromarray(array).save(tmp)
        os.replace(tmp, paths[kind])


def _make_one(job: tuple[str, int], *, render: Callable, out_dir: str, seed: int, size: int, frames: int,
              fps: float, distractors: int, classes: tuple[str, ...]) -> None:
    split, index = job
    path = os.path.join(out_dir, "videos", split, f"{index:05d}.mp4")
    if os.path.exists(path) and os.path.exists(mask_sidecar_path(path)):
        return
    video, masks, _ = render(seed, split, index, size=size, num_frames=frames, num_distractors=distractors,
                             classes=classes)
    save_masks(mask_sidecar_path(path), masks)  # the mask first: a video present means both are
    # one x264 thread: the bytes are then a function of (seed, split, index); with a thread per core 9 of
    # 2,880 videos differed between two generations, and the tiny backbone's training follows every bit
    write_video(path, video, fps=fps, crf=18, threads=1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir")
    parser.add_argument("--num-train", type=int, default=2400, help="training videos (default 2400)")
    parser.add_argument("--num-val", type=int, default=480, help="validation videos (default 480)")
    parser.add_argument("--set", choices=sorted([*RENDERERS, "images"]), default="motion",
                        help="motion: big actor, static distractors (default); clutter: small ring actor "
                        "among moving look-alikes over a panning background; images: the image clutter "
                        "set (ImageNet layout)")
    parser.add_argument("--size", type=int, help="frame side in pixels (default 64; clutter: 32)")
    parser.add_argument("--frames", type=int, default=32,
                        help="frames per video at --fps (default 32: one 8x4 clip covers the whole motion)")
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--distractors", type=int,
                        help="look-alike shapes per video (default 2, static; clutter: 4, moving)")
    parser.add_argument("--classes", choices=sorted(CLASS_SETS), default="default",
                        help="default: still / moving / changing size (learnable by the tiny model "
                        "within the demo); ordered: right / left / down / up / growing / shrinking")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="processes (default: all cores)")
    args = parser.parse_args(argv)
    for key, value in SET_DEFAULTS[args.set].items():
        if getattr(args, key) is None:
            setattr(args, key, value)

    splits = {"train": args.num_train, "val": args.num_val}
    if args.set == "images":
        make_image = partial(_make_image, out_dir=args.out_dir, seed=args.seed, size=args.size,
                             distractors=args.distractors)
        for _ in parallel_map(make_image, [(split, i) for split, n in splits.items() for i in range(n)],
                              workers=args.workers, desc="images"):
            pass
        info = {"classes": list(IMAGE_CLASSES), "set": "images", "dataset": "video_iared synthetic images",
                "size": args.size, "distractors": args.distractors, "seed": args.seed}
        atomic_write_text(os.path.join(args.out_dir, "classes.json"), json.dumps(info, indent=1) + "\n")
        print(f"{args.out_dir}: image clutter set, {args.num_train} train + {args.num_val} val images, "
              f"{len(IMAGE_CLASSES)} classes", file=sys.stderr)
        return
    for split in splits:
        os.makedirs(os.path.join(args.out_dir, "videos", split), exist_ok=True)
    jobs = [(split, i) for split, n in splits.items() for i in range(n)]
    classes = CLASS_SETS[args.classes]
    make = partial(_make_one, render=RENDERERS[args.set], out_dir=args.out_dir, seed=args.seed,
                   size=args.size, frames=args.frames, fps=args.fps, distractors=args.distractors,
                   classes=classes)
    for _ in parallel_map(make, jobs, workers=args.workers, desc=f"{args.set} videos"):
        pass
    for split, n in splits.items():
        lines = "".join(f"videos/{split}/{i:05d}.mp4 {video_label(i, len(classes))}\n" for i in range(n))
        atomic_write_text(os.path.join(args.out_dir, f"{split}.csv"), lines)
        if split == "val":
            atomic_write_text(os.path.join(args.out_dir, "test.csv"), lines)
    info = {"classes": list(classes), "flip_sensitive": bool(FLIP_SENSITIVE_CLASSES & set(classes)),
            "set": args.set, "dataset": f"video_iared synthetic {args.set}", "size": args.size,
            "frames": args.frames, "distractors": args.distractors, "fps": args.fps, "seed": args.seed}
    atomic_write_text(os.path.join(args.out_dir, "classes.json"), json.dumps(info, indent=1) + "\n")
    print(f"{args.out_dir}: {args.set} set, {args.num_train} train + {args.num_val} val videos, "
          f"{len(classes)} classes", file=sys.stderr)


if __name__ == "__main__":
    main()
