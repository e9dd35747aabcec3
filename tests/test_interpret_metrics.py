"""Chefer et al.'s segmentation protocol on cases computed by hand."""
import math

import pytest
import torch

from video_iared.interpret.segmentation import (SegmentationMeter, average_precision, foreground,
                                                normalize_maps)


def test_normalize_upsamples_bilinearly_and_rescales():
    maps = torch.tensor([[[0.0, 2.0]]])  # (1, 1, 2)
    # half-pixel centres: source x = -0.25, 0.25, 0.75, 1.25 -> 0, 0.5, 1.5, 2 -> /2
    assert torch.allclose(normalize_maps(maps, (1, 4)), torch.tensor([[[0.0, 0.25, 0.75, 1.0]]]))


def test_constant_map_has_no_foreground():
    normalized = normalize_maps(torch.full((1, 2, 2), 3.0), (2, 2))
    assert torch.equal(normalized, torch.zeros(1, 2, 2))
    assert not foreground(normalized).any()


def test_average_precision_hand_cases():
    scores = torch.tensor([0.0, 1 / 3, 2 / 3, 1.0])
    labels = torch.tensor([False, True, False, True])
    # ranked: pos, neg, pos, neg -> precision 1 at recall 1/2, 2/3 at recall 1
    assert average_precision(scores, labels) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    # a tie is one threshold: {1, 1} holds one positive -> precision 1/2 at recall 1/2
    assert average_precision(torch.tensor([1.0, 1.0, 0.0]), torch.tensor([1, 0, 1])) == pytest.approx(
        0.5 * 0.5 + 0.5 * 2 / 3)
    assert average_precision(scores, torch.zeros(4, dtype=torch.bool)) is None


def test_meter_accumulates_over_frames_and_skips_empty_masks_for_ap():
    maps = torch.tensor([[[0.0, 1.0], [2.0, 3.0]],   # normalised 0, 1/3, 2/3, 1; mean 1/2
                         [[1.0, 0.0], [0.0, 0.0]]])  # normalised 1, 0, 0, 0; mean 1/4
    masks = torch.tensor([[[0, 1], [0, 1]],
                          [[0, 0], [0, 0]]], dtype=torch.uint8)  # second mask empty
    meter = SegmentationMeter()
    meter.update(maps, masks)
    scores = meter.compute()
    # frame 1: predicted fg = bottom row, truth = right column -> 2 of 4 right; frame 2: 3 of 4 right
    assert scores["pixel_acc"] == pytest.approx(5 / 8)
    # background: inter 1 + 3, union 3 + 4; foreground: inter 1 + 0, union 3 + 1
    assert scores["miou"] == pytest.approx((4 / 7 + 1 / 4) / 2)
    # per class: background 4 of its 2 + 4 pixels right, foreground 1 of 2
    assert scores["mean_acc"] == pytest.approx((4 / 6 + 1 / 2) / 2)
    assert scores["map"] == pytest.approx(5 / 6)  # frame 1 only
    assert (scores["frames"], scores["ap_frames"]) == (2, 1)


def test_meter_with_only_empty_masks_reports_nan_map():
    meter = SegmentationMeter()
    meter.update(torch.rand(3, 2, 2), torch.zeros(3, 8, 8, dtype=torch.uint8))
    assert math.isnan(meter.compute()["map"])


def test_meter_rejects_mismatched_frames():
    with pytest.raises(ValueError, match="2 heatmaps for 3 masks"):
        SegmentationMeter().update(torch.rand(2, 2, 2), torch.zeros(3, 4, 4))
