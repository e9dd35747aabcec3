"""Interpretability of IA-RED²: per-frame heatmaps (interpreters, raw attention, rollout, random), their
segmentation scores against masks (Chefer et al. 2021's protocol), and renders.

``heatmaps`` and ``rollout`` build maps, ``metrics`` scores them, ``render`` draws them,
``imagenet_seg`` reads the ImageNet-Segmentation benchmark and ``run`` ties them to a loaded model for
the ``video-iared interpret`` command.
"""
from .heatmaps import attention_maps, capture_attention, interpreter_maps, random_map, token_map
from .metrics import SegmentationMeter, average_precision, foreground, normalise_maps
from .rollout import cls_rollout, spatial_step, temporal_step, with_residual

__all__ = ["SegmentationMeter", "attention_maps", "average_precision", "capture_attention", "cls_rollout",
           "foreground", "interpreter_maps", "normalise_maps", "random_map", "spatial_step", "temporal_step",
           "token_map", "with_residual"]
