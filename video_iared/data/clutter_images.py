"""The image clutter set: the clutter set's idea for images (DeiT, ImageNet-Segmentation-style scoring).

One small near-white object, whose shape is the class, among look-alike distractors of every shape in
palette colours and of the same sizes, over a smooth random texture with grain. Only the object's tokens
say the class: a distractor of the class's shape is there as often as in any other class, and the
object's position and size are drawn independently of the label. The object's mask is exact (alpha
≥ 0.5), so maps are scored against where the class is.

Every image is a pure function of (seed, split, index): object, distractors and background draw from
separate random streams, so neither the distractors nor the background depend on the label. Written
in the ImageNet layout by ``data_prep/make_synthetic.py --set images``::

    OUT_DIR/{train,val}/CLASS/00042.png        RGB images
    OUT_DIR/masks/{train,val}/CLASS/00042.png  object masks (255 = object), mirroring the image tree
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .clutter import ACTOR_COLOUR, GRAIN, TEXTURE_CELLS_PER_SIDE
from .synthetic import SHAPES, SPLIT_SEED, random_colour, shape_alpha, smooth_texture, video_label

__all__ = ["IMAGE_CLASSES", "IMAGE_RADIUS", "render_clutter_image"]

# three shapes that stay distinct at a 4-pixel patch grid on 32-pixel images
IMAGE_CLASSES = ("disc", "square", "triangle")
# object radius, fraction of the image side: the largest disc covers pi * 0.14^2 = 6 % of the image
IMAGE_RADIUS = (0.09, 0.14)


def _place(rng: np.random.Generator, size: int, radius: tuple[float, float]) -> tuple[float, float, float]:
    """A centre (y, x) and radius in pixels, the shape wholly inside the image."""
    r = rng.uniform(radius[0], radius[1]) * size
    cy, cx = rng.uniform(r, size - r, 2)
    return float(cy), float(cx), float(r)


def render_clutter_image(seed: int, split: str, index: int, *, size: int = 32, num_distractors: int = 4,
                         radius: tuple[float, float] = IMAGE_RADIUS,
                         classes: Sequence[str] = IMAGE_CLASSES) -> tuple[np.ndarray, np.ndarray, int]:
    """Image uint8 (size, size, 3), object mask uint8 (size, size) (1 = object) and the label
    (``index % len(classes)``) of image ``index`` of ``split``; ``radius`` as a fraction of ``size``."""
    object_rng, distractor_rng, background_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence([seed, SPLIT_SEED[split], index]).spawn(3))
    label = video_label(index, len(classes))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    texture = smooth_texture(background_rng, size, cells=TEXTURE_CELLS_PER_SIDE)
    image = np.clip(texture + background_rng.normal(0, GRAIN, (size, size, 3)), 0, 255)
    for _ in range(num_distractors):   # every shape, the class's own included, in palette colours
        shape = SHAPES[distractor_rng.integers(len(SHAPES))]
        colour = random_colour(distractor_rng)
        alpha = shape_alpha(shape, yy, xx, *_place(distractor_rng, size, radius))[..., None]
        image = image * (1 - alpha) + colour * alpha
    alpha = shape_alpha(classes[label], yy, xx, *_place(object_rng, size, radius))
    image = image * (1 - alpha[..., None]) + np.asarray(ACTOR_COLOUR) * alpha[..., None]
    return np.clip(image, 0, 255).astype(np.uint8), (alpha >= 0.5).astype(np.uint8), label
