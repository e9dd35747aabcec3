"""The clutter set: a pure function of (seed, split, index), a small ring actor with exact masks,
label-independent distractors and background, and make_synthetic.py --set clutter's Kinetics layout."""
import json
from collections import Counter

import numpy as np
import pytest

from data_prep import make_synthetic
from video_iared.data import read_clip
from video_iared.data.clutter import (ACTOR_SHAPE, DISTRACTOR_SHAPES, PAN, RADIUS, clutter_scene,
                                      draw_motions, pan_offsets, render_clutter_video, render_scene)
from video_iared.data.files import load_masks
from video_iared.data.synthetic import CLASSES, ORDERED_CLASSES, SHAPES, shape_alpha

SIZE = 32
NUM_VIDEOS = 30
YY, XX = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)


@pytest.fixture(scope="module")
def scenes():
    """30 scenes of the val split (10 per class) with their rendered frames and masks."""
    return [(scene, *render_scene(scene))
            for scene in (clutter_scene(0, "val", i) for i in range(NUM_VIDEOS))]


def sprite_cover(scene, f):
    """Pixels of frame ``f`` that any shape touches (alpha > 0)."""
    return np.any([s.alpha(f, YY, XX) > 0 for s in (*scene.distractors, scene.actor)], axis=0)


def test_render_is_a_pure_function_of_its_arguments():
    frames, masks, label = render_clutter_video(3, "train", 7)
    again = render_clutter_video(3, "train", 7)
    assert frames.shape == (32, SIZE, SIZE, 3) and frames.dtype == np.uint8
    assert masks.shape == (32, SIZE, SIZE) and masks.dtype == np.uint8
    assert np.array_equal(frames, again[0]) and np.array_equal(masks, again[1]) and label == again[2] == 1
    for other in (render_clutter_video(4, "train", 7), render_clutter_video(3, "val", 7),
                  render_clutter_video(3, "train", 10)):
        assert not np.array_equal(frames, other[0])


def test_every_shape_at_the_largest_radius_covers_under_10_percent():
    r = RADIUS[1] * SIZE
    areas = {shape: (shape_alpha(shape, YY, XX, SIZE / 2, SIZE / 2, r) >= 0.5).mean() for shape in SHAPES}
    assert max(areas.values()) <= 0.10, areas


def test_actor_is_a_small_ring_and_its_masks_are_exact(scenes):
    for scene, frames, masks in scenes:
        assert scene.actor.shape == ACTOR_SHAPE and scene.actor.motion == CLASSES[scene.label]
        assert len(scene.distractors) == 4 and {s.shape for s in scene.distractors} <= set(DISTRACTOR_SHAPES)
        area = masks.reshape(len(masks), -1).mean(1)
        assert (area > 0).all() and (area <= 0.10).all(), area
        for f in range(len(frames)):
            alpha = scene.actor.alpha(f, YY, XX)
            assert np.array_equal(masks[f], alpha >= 0.5)
            # the actor is drawn on top: fully covered pixels show its colour whatever lies below
            assert (frames[f][alpha == 1] == scene.actor.colour.astype(np.uint8)).all()


def test_labels_are_balanced(scenes):
    assert Counter(scene.label for scene, _, _ in scenes) == {0: 10, 1: 10, 2: 10}


def test_draw_motions_is_uniform_over_the_classes():
    rng = np.random.default_rng(0)
    counts = Counter(draw_motions(rng, 3000, CLASSES))
    assert set(counts) == set(CLASSES) and all(abs(n / 3000 - 1 / 3) < 0.03 for n in counts.values()), counts


def test_distractor_motions_do_not_depend_on_the_label():
    """Every label sees the same distribution of distractor motions (each about a third)."""
    per_label = {label: Counter() for label in range(len(CLASSES))}
    for i in range(150):
        scene = clutter_scene(0, "train", i)
        per_label[scene.label].update(s.motion for s in scene.distractors)
    for label, counts in per_label.items():
        shares = [counts[kind] / 200 for kind in CLASSES]
        assert all(abs(share - 1 / 3) < 0.12 for share in shares), (CLASSES[label], counts)


def test_background_does_not_depend_on_the_classes():
    plain, ordered = clutter_scene(0, "train", 4), clutter_scene(0, "train", 4, classes=ORDERED_CLASSES)
    assert plain.actor.motion != ordered.actor.motion
    assert np.array_equal(plain.background, ordered.background)


def test_pan_offsets_move_in_a_straight_line_inside_the_texture():
    for seed in range(20):
        offsets = pan_offsets(np.random.default_rng(seed), 32, 24, (8.0, 24.0))
        assert offsets.dtype.kind == "i" and offsets.min() >= 0 and offsets.max() <= 24
        steps = np.diff(offsets, axis=0)
        assert np.abs(steps).max() <= 1  # under a pixel per frame: integer steps of 0 or 1
        assert all((s >= 0).all() or (s <= 0).all() for s in steps.T)  # one direction per axis
        assert 8 - 1.5 <= np.hypot(*(offsets[-1] - offsets[0])) <= 24 + 1.5


def test_background_pans_under_fresh_grain(scenes):
    for scene, frames, _ in scenes:
        (y0, x0), (y1, x1) = scene.offsets[0], scene.offsets[-1]
        assert PAN[0] * SIZE - 1.5 <= np.hypot(y1 - y0, x1 - x0) <= PAN[1] * SIZE + 1.5
        # the texture is translated exactly: aligned, the first and last backgrounds differ by grain only
        dy, dx = y1 - y0, x1 - x0
        first = scene.background[0][max(dy, 0):SIZE + min(dy, 0), max(dx, 0):SIZE + min(dx, 0)]
        last = scene.background[-1][max(-dy, 0):SIZE + min(-dy, 0), max(-dx, 0):SIZE + min(-dx, 0)]
        assert np.abs(first - last).mean() < 9  # |N(0, 6 sqrt 2)| averages 6.8
        # in the video, outside every shape: consecutive frames differ (grain), far frames more (pan)
        frames = frames.astype(float)
        free = ~(sprite_cover(scene, 0) | sprite_cover(scene, 1))
        near = np.abs(frames[1] - frames[0])[free].mean()
        free = ~(sprite_cover(scene, 0) | sprite_cover(scene, 31))
        far = np.abs(frames[31] - frames[0])[free].mean()
        assert near > 3 and far > near + 4, (near, far)


def test_make_synthetic_clutter_writes_the_kinetics_layout(tmp_path, capsys):
    make_synthetic.main([str(tmp_path), "--set", "clutter", "--num-train", "3", "--num-val", "2",
                         "--workers", "1"])
    assert "clutter set, 3 train + 2 val videos, 3 classes" in capsys.readouterr().err
    info = json.loads((tmp_path / "classes.json").read_text())
    assert info["set"] == "clutter" and info["dataset"] == "video_iared synthetic clutter"
    assert info["classes"] == list(CLASSES) and not info["flip_sensitive"]
    assert info["size"] == 32 and info["distractors"] == 4 and info["frames"] == 32
    train = "".join(f"videos/train/{i:05d}.mp4 {i % 3}\n" for i in range(3))
    assert (tmp_path / "train.csv").read_text() == train
    assert (tmp_path / "val.csv").read_text() == (tmp_path / "test.csv").read_text() == \
        "videos/val/00000.mp4 0\nvideos/val/00001.mp4 1\n"
    frames, masks, _ = render_clutter_video(0, "val", 1)
    assert np.array_equal(load_masks(str(tmp_path / "videos" / "val" / "00001.masks.npz")), masks)
    clip = read_clip(str(tmp_path / "videos" / "val" / "00001.mp4"), lambda n, fps: np.arange(n))
    assert clip.frames.shape == frames.shape
    # lossy (h264 smooths the grain and halves the chroma resolution), but this video and no other
    error = np.abs(clip.frames.astype(float) - frames).mean()
    assert error < np.abs(clip.frames.astype(float) - render_clutter_video(0, "val", 0)[0]).mean() / 3


def test_make_synthetic_defaults_stay_the_motion_set(tmp_path):
    make_synthetic.main([str(tmp_path), "--num-train", "1", "--num-val", "0", "--workers", "1"])
    info = json.loads((tmp_path / "classes.json").read_text())
    assert info["set"] == "motion" and info["size"] == 64 and info["distractors"] == 2
    assert load_masks(str(tmp_path / "videos" / "train" / "00000.masks.npz")).shape == (32, 64, 64)
