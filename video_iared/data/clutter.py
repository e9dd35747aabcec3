"""The clutter set: a synthetic benchmark where the class can only be read from the actor's tokens.

The motion set (:mod:`video_iared.data.synthetic`) has a big actor over a static scene, so almost any
subset of tokens sees the motion that defines the class. Here a small actor (a near-white ring, at most
~4.5 % of the frame) moves in one of the class's ways among look-alike distractors (other shapes in
palette colours, the same sizes) that move too, with motion kinds drawn independently of the label,
over a textured background that pans at a random constant velocity under fresh grain. Tokens that miss
the actor see class-like motion that is pure noise, so a token-dropping model has to keep the actor's
tokens to read the class. The actor masks are exact, as in the motion set.

Every video is a pure function of (seed, split, index): the actor, the distractors and the background
draw from separate random streams, so neither the distractors nor the background depend on the label.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .synthetic import (CLASSES, SHAPES, SPLIT_SEED, random_colour, shape_alpha, smooth_texture, trajectory,
                        video_label)

__all__ = [
    "ACTOR_SHAPE", "ACTOR_COLOUR", "DISTRACTOR_SHAPES", "RADIUS", "PAN", "Sprite", "ClutterScene",
    "draw_motions",
    "draw_sprite", "pan_offsets", "panning_background", "clutter_scene", "render_scene",
    "render_clutter_video",
]

# the actor is a near-white ring: the palette of the distractors always has one channel at most 50, so
# the colour finds the actor at once, and a tiny model trained from scratch learns within the frontier's
# budget (a ring in a palette colour, told apart by its shape alone, stayed near chance)
ACTOR_SHAPE = "ring"
ACTOR_COLOUR = (235.0, 235.0, 235.0)
DISTRACTOR_SHAPES = tuple(shape for shape in SHAPES if shape != ACTOR_SHAPE)
# radius range, fraction of the frame side: the largest shape (a disc) at the largest radius covers
# pi * 0.12^2 = 4.5 % of the frame, the actor's ring 3.8 % (up to 4.5 % in pixels); changing size
# sweeps the range (1.5x)
RADIUS = (0.08, 0.12)
# background travel over the whole video, fraction of the frame side (0.26-0.77 px per frame at 32 frames
# of 32 px, a moving actor ~0.8): motion everywhere, at actor-like speeds, whatever the class
PAN = (0.25, 0.75)
# texture detail: about one random colour per 4x4-pixel token of a 32-pixel frame
TEXTURE_CELLS_PER_SIDE = 8
GRAIN = 6.0


@dataclass(frozen=True)
class Sprite:
    """One shape over a video: colour (3,), motion kind, and per-frame centre and radius in pixels."""

    shape: str
    colour: np.ndarray
    motion: str
    cy: np.ndarray
    cx: np.ndarray
    r: np.ndarray

    def alpha(self, f: int, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
        """Anti-aliased coverage in [0, 1] of frame ``f`` on the pixel grid (yy, xx)."""
        return shape_alpha(self.shape, yy, xx, self.cy[f], self.cx[f], self.r[f])


@dataclass(frozen=True)
class ClutterScene:
    """Everything a clutter video shows; :func:`render_scene` draws it."""

    label: int
    actor: Sprite
    distractors: tuple[Sprite, ...]  # drawn under the actor, in order
    background: np.ndarray  # float (frames, size, size, 3) in [0, 255]: panned texture plus fresh grain
    offsets: np.ndarray  # int (frames, 2): top-left (y, x) of each frame's window into the texture


def draw_motions(rng: np.random.Generator, num: int, classes: Sequence[str]) -> tuple[str, ...]:
    """``num`` motion kinds drawn uniformly from ``classes``; takes no label, so they cannot depend on it."""
    return tuple(classes[i] for i in rng.integers(len(classes), size=num))


def draw_sprite(rng: np.random.Generator, shape: str, motion: str, *, num_frames: int, size: int,
                lo: float, hi: float, colour: Sequence[float] | None = None) -> Sprite:
    """A ``shape`` moving as ``motion`` (radius in [lo, hi] pixels), in ``colour`` or a random palette
    colour."""
    colour = random_colour(rng) if colour is None else np.asarray(colour, dtype=float)
    cy, cx, r = trajectory(motion, rng, num_frames, size, lo, hi)
    return Sprite(shape, colour, motion, cy, cx, r)


def pan_offsets(rng: np.random.Generator, num_frames: int, margin: int, travel: tuple[float, float]
                ) -> np.ndarray:
    """Integer window positions (frames, 2) in [0, margin] along a straight line in a random direction,
    travelling a random distance in ``travel`` pixels (at most ``margin``) at constant speed."""
    distance = rng.uniform(*travel)
    angle = rng.uniform(0, 2 * np.pi)
    t = np.linspace(-0.5, 0.5, num_frames)[:, None]
    # rounding keeps every frame an exact copy of the texture: no resampling blur that marks the motion
    return np.rint(margin / 2 + distance * t * [np.sin(angle), np.cos(angle)]).astype(int)


def panning_background(rng: np.random.Generator, num_frames: int, size: int,
                       pan: tuple[float, float] = PAN) -> tuple[np.ndarray, np.ndarray]:
    """A textured background panning at constant velocity, with fresh grain every frame: float
    (frames, size, size, 3) in [0, 255], and the window offsets (frames, 2) into the texture."""
    margin = int(np.ceil(pan[1] * size))
    side = size + margin
    texture = smooth_texture(rng, side, cells=max(2, round(TEXTURE_CELLS_PER_SIDE * side / size)))
    offsets = pan_offsets(rng, num_frames, margin, (pan[0] * size, pan[1] * size))
    grain = rng.normal(0, GRAIN, (num_frames, size, size, 3))
    windows = np.stack([texture[y:y + size, x:x + size] for y, x in offsets])
    return np.clip(windows + grain, 0, 255), offsets


def clutter_scene(
    seed: int,
    split: str,
    index: int,
    *,
    size: int = 32,
    num_frames: int = 32,
    num_distractors: int = 4,
    radius: tuple[float, float] = RADIUS,
    classes: Sequence[str] = CLASSES,
) -> ClutterScene:
    """The scene of video ``index`` of ``split``; arguments as :func:`render_clutter_video`."""
    # separate streams: the distractors and the background are the same whatever the actor does
    actor_rng, distractor_rng, background_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence([seed, SPLIT_SEED[split], index]).spawn(3))
    label = video_label(index, len(classes))
    lo, hi = radius[0] * size, radius[1] * size
    frame = dict(num_frames=num_frames, size=size, lo=lo, hi=hi)
    actor = draw_sprite(actor_rng, ACTOR_SHAPE, classes[label], colour=ACTOR_COLOUR, **frame)
    motions = draw_motions(distractor_rng, num_distractors, classes)
    distractors = tuple(
        draw_sprite(distractor_rng, DISTRACTOR_SHAPES[distractor_rng.integers(len(DISTRACTOR_SHAPES))],
                    motion, **frame) for motion in motions)
    background, offsets = panning_background(background_rng, num_frames, size)
    return ClutterScene(label, actor, distractors, background, offsets)


def render_scene(scene: ClutterScene) -> tuple[np.ndarray, np.ndarray]:
    """Frames uint8 (frames, size, size, 3) and actor masks uint8 (frames, size, size), alpha >= 0.5."""
    num_frames, size = scene.background.shape[:2]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    frames = np.empty((num_frames, size, size, 3), np.uint8)
    masks = np.empty((num_frames, size, size), np.uint8)
    for f in range(num_frames):
        frame = scene.background[f]
        for sprite in scene.distractors:
            alpha = sprite.alpha(f, yy, xx)[..., None]
            frame = frame * (1 - alpha) + sprite.colour * alpha
        alpha = scene.actor.alpha(f, yy, xx)
        frames[f] = np.clip(frame * (1 - alpha[..., None]) + scene.actor.colour * alpha[..., None], 0, 255)
        masks[f] = alpha >= 0.5
    return frames, masks


def render_clutter_video(
    seed: int,
    split: str,
    index: int,
    *,
    size: int = 32,
    num_frames: int = 32,
    num_distractors: int = 4,
    radius: tuple[float, float] = RADIUS,
    classes: Sequence[str] = CLASSES,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Frames uint8 ``(num_frames, size, size, 3)``, actor masks uint8 ``(num_frames, size, size)`` and the
    label (``index % len(classes)``) of clutter video ``index`` of ``split``; a pure function of its
    arguments. ``radius``: actor/distractor radius range, fraction of ``size``."""
    scene = clutter_scene(seed, split, index, size=size, num_frames=num_frames,
                          num_distractors=num_distractors, radius=radius, classes=classes)
    frames, masks = render_scene(scene)
    return frames, masks, scene.label
