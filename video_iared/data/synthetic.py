"""A synthetic action dataset whose classes are defined by motion, in the Kinetics layout.

Each video shows one *actor* (a random shape in a random colour) moving in one of the class's ways over
a static textured background with look-alike static *distractors* (the same shapes and sizes). The
actor covers a few percent of the frame, so most tokens carry nothing -- the redundancy IA-RED²
removes -- and its mask is known exactly, which the interpretability metrics compare against. Any
single frame is ambiguous: actor sizes and positions have the same distribution in every class, and a
distractor looks like the actor, so a single-frame model stays near chance; only the motion tells the
class. Sets with left/right classes (``ORDERED_CLASSES``) are flip-sensitive.

Every video is a pure function of (seed, split, index), so generation is resumable and parallel.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = [
    "CLASSES", "ORDERED_CLASSES", "FLIP_SENSITIVE_CLASSES", "SHAPES", "render_video", "video_label",
    # scene parts, shared with the clutter set (video_iared.data.clutter)
    "background", "random_colour", "shape_alpha", "smooth_texture", "trajectory",
]

# Default classes: whether and how the actor moves (in a random direction). They need motion but not
# its order or direction, which a tiny TimeSformer trained from scratch learns within the demo budget.
# Slow motion and size change look alike on a 4x4 token grid, and order-dependent classes are harder to
# learn from scratch (docs/results.md, The synthetic set). No class depends on left/right, so flips
# preserve labels.
CLASSES = ("still", "moving", "changing size")
# order-dependent motions, selectable with ``classes=`` for harder variants (flip-sensitive)
ORDERED_CLASSES = ("moving right", "moving left", "moving down", "moving up", "growing", "shrinking")
FLIP_SENSITIVE_CLASSES = frozenset({"moving right", "moving left"})
# share of the free span (frame side minus actor diameter) travelled over the whole video
TRAVEL = {"still": 0.0, "moving": 1.0, "moving slowly": 0.4, "moving fast": 1.0}
SHAPES = ("disc", "square", "diamond", "triangle", "cross", "ring")

SPLIT_SEED = {"train": 0, "val": 1, "test": 2}
# actor/distractor radius as a fraction of the frame side: the same range in every class, so a single
# frame's actor size says nothing about the class; growing/shrinking sweep the whole range
RADIUS = (0.1, 0.2)


def video_label(index: int, num_classes: int = len(CLASSES)) -> int:
    """Balanced labels: video ``index`` of a split belongs to class ``index % num_classes``."""
    return index % num_classes


def shape_alpha(shape: str, yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, r: float) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] of ``shape`` centred at (cy, cx) with radius ``r`` pixels."""
    dy, dx = yy - cy, xx - cx
    if shape == "disc":
        dist = np.hypot(dy, dx) - r
    elif shape == "square":
        dist = np.maximum(abs(dy), abs(dx)) - 0.8 * r
    elif shape == "diamond":
        dist = (abs(dy) + abs(dx)) / np.sqrt(2) - 0.75 * r
    elif shape == "triangle":  # pointing down
        dist = np.maximum(-dy - 0.8 * r, dy * 0.5 + abs(dx) * 0.866 - 0.4 * r)
    elif shape == "cross":
        arm = 0.35 * r
        dist = np.minimum(np.maximum(abs(dy) - r, abs(dx) - arm), np.maximum(abs(dx) - r, abs(dy) - arm))
    elif shape == "ring":
        dist = abs(np.hypot(dy, dx) - 0.7 * r) - 0.3 * r
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return np.clip(0.5 - dist, 0.0, 1.0)


def smooth_texture(rng: np.random.Generator, size: int, cells: int = 6) -> np.ndarray:
    """Smooth random colour texture, float (size, size, 3) around [0, 255]: a ``cells`` x ``cells`` grid
    of random colours, bilinearly upsampled."""
    coarse = rng.random((cells, cells, 3))
    # bilinear upsampling of a coarse grid: soft blobs about size / cells pixels wide
    grid = np.linspace(0, cells - 1, size)
    i0 = np.minimum(grid.astype(int), cells - 2)
    w = (grid - i0)[:, None]
    rows = coarse[i0] * (1 - w[..., None]) + coarse[i0 + 1] * w[..., None]  # size, cells, 3
    smooth = rows[:, i0] * (1 - w.T[..., None]) + rows[:, i0 + 1] * w.T[..., None]
    base = rng.uniform(60, 190, 3)
    return base + 70 * (smooth - 0.5)


def background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Smooth random colour texture plus fine grain, float (size, size, 3) in [0, 255]."""
    return np.clip(smooth_texture(rng, size) + rng.normal(0, 6, (size, size, 3)), 0, 255)


def random_colour(rng: np.random.Generator) -> np.ndarray:
    """A saturated colour: one channel high, one low, one random."""
    channels = rng.permutation(3)
    colour = np.empty(3)
    colour[channels] = rng.uniform(200, 255), rng.uniform(0, 50), rng.uniform(0, 255)
    return colour


def trajectory(
    kind: str, rng: np.random.Generator, num_frames: int, size: int, lo: float, hi: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Actor centre (y, x) and radius per frame for a motion ``kind`` (constant speed, same
    position/size distributions across kinds)."""
    t = np.linspace(0.0, 1.0, num_frames)
    if rng.random() < 0.5 and kind == "changing size":  # grows or shrinks
        t = t[::-1]
    if kind in TRAVEL:  # a straight line in a random direction, inside the frame
        r0 = rng.uniform(lo, hi)
        angle = rng.uniform(0, 2 * np.pi)
        span = TRAVEL[kind] * (size - 2 * r0)
        dy, dx = span * np.sin(angle) * (0.5 - t), span * np.cos(angle) * (0.5 - t)
        room_y = (size - 2 * r0 - span * abs(np.sin(angle))) / 2
        room_x = (size - 2 * r0 - span * abs(np.cos(angle))) / 2
        cy, cx = size / 2 + rng.uniform(-room_y, room_y), size / 2 + rng.uniform(-room_x, room_x)
        return cy + dy, cx + dx, np.full(num_frames, r0)
    if kind in ("changing size", "growing", "shrinking"):
        r = lo + (hi - lo) * (1 - t if kind == "shrinking" else t)
        cy, cx = rng.uniform(hi, size - hi), rng.uniform(hi, size - hi)
        return np.full(num_frames, cy), np.full(num_frames, cx), r
    r0 = rng.uniform(lo, hi)
    r = np.full(num_frames, r0)
    if kind == "circling":
        radius = 0.25 * size
        fits = size - 2 * (r0 + radius) > 0
        centre = rng.uniform(r0 + radius, size - r0 - radius, 2) if fits else (size / 2,) * 2
        angle = rng.uniform(0, 2 * np.pi) + 1.5 * np.pi * t
        return centre[0] + radius * np.sin(angle), centre[1] + radius * np.cos(angle), r
    along = r0 + (size - 2 * r0) * (1 - t if kind in ("moving left", "moving up") else t)
    if "diagonal" in kind:  # a diagonal shifted sideways by a random offset, kept inside the frame
        offset = rng.uniform(-0.15, 0.15) * size
        y = np.clip(along + offset, r0, size - r0)
        x = np.clip(along - offset, r0, size - r0)
        return (size - y if "rising" in kind else y), x, r
    across = np.full(num_frames, rng.uniform(r0, size - r0))
    if kind in ("moving horizontally", "moving right", "moving left"):
        return across, along, r
    if kind in ("moving vertically", "moving down", "moving up"):
        return along, across, r
    raise ValueError(f"unknown motion {kind!r}")


def render_video(
    seed: int,
    split: str,
    index: int,
    *,
    size: int = 64,
    num_frames: int = 32,
    num_distractors: int = 2,
    radius: tuple[float, float] = RADIUS,
    classes: Sequence[str] = CLASSES,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Frames uint8 ``(num_frames, size, size, 3)``, actor masks uint8 ``(num_frames, size, size)`` and the
    label of video ``index`` of ``split`` (an index into ``classes``, from :data:`CLASSES` and
    :data:`ORDERED_CLASSES`);
    a pure function of its arguments. ``radius``: actor/distractor radius range, fraction of ``size``."""
    rng = np.random.default_rng([seed, SPLIT_SEED[split], index])
    label = video_label(index, len(classes))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    frame0 = background(rng, size)
    shape = SHAPES[rng.integers(len(SHAPES))]
    lo, hi = radius[0] * size, radius[1] * size
    for _ in range(num_distractors):  # static look-alikes, drawn under the actor
        r = rng.uniform(lo, hi)
        alpha = shape_alpha(shape, yy, xx, rng.uniform(r, size - r), rng.uniform(r, size - r), r)[..., None]
        frame0 = frame0 * (1 - alpha) + random_colour(rng) * alpha
    colour = random_colour(rng)
    cy, cx, r = trajectory(classes[label], rng, num_frames, size, lo, hi)
    frames = np.empty((num_frames, size, size, 3), np.uint8)
    masks = np.empty((num_frames, size, size), np.uint8)
    for f in range(num_frames):
        alpha = shape_alpha(shape, yy, xx, cy[f], cx[f], r[f])
        frames[f] = np.clip(frame0 * (1 - alpha[..., None]) + colour * alpha[..., None], 0, 255)
        masks[f] = alpha >= 0.5
    return frames, masks, label
