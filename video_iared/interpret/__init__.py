"""Interpretability of IA-RED²: per-frame heatmaps (the interpreters', and the explanations they are
compared with: raw attention, rollout, Grad-CAM, attention × gradient, transformer attribution), their
segmentation scores against masks (Chefer et al. 2021's protocol), and renders.

``heatmaps`` and ``explanations`` build maps (``rollout`` holds the token-mixing steps), ``segmentation``
scores them, ``render`` draws them, ``imagenet_seg`` reads the ImageNet-Segmentation benchmark and
``run`` ties them to a loaded model for the ``video-iared interpret`` command.
"""
from .explanations import EXPLANATIONS, explanation_maps, grad_cam, gradient_weighted
from .heatmaps import interpreter_maps, interpreter_scores, random_map, token_map
from .segmentation import SegmentationMeter, average_precision, foreground, normalize_maps
from .rollout import cls_rollout, spatial_step, temporal_step, with_residual

__all__ = ["EXPLANATIONS", "SegmentationMeter", "average_precision", "cls_rollout", "explanation_maps",
           "foreground", "grad_cam", "gradient_weighted", "interpreter_maps", "interpreter_scores",
           "normalize_maps", "random_map", "spatial_step", "temporal_step", "token_map", "with_residual"]
