"""Pictures of heatmaps: an overlay animation (MP4 or GIF) and a PNG grid of frames with a legend.

Maps are shown as the metrics see them (:func:`~video_iared.interpret.segmentation.normalize_maps`:
bilinear upsampling, min-max per frame). Tokens an IA-RED² group has dropped are hatched grey, their
heat still visible.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from video_iared.data.video import write_video

from .segmentation import normalize_maps

__all__ = ["resize_frames", "overlay", "mark_dropped", "panel_strip", "write_animation", "save_grid"]

COLORMAP = "jet"
HEADER = 14  # pixels of title above each panel


def resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """uint8 (T, H, W, 3) -> (T, size, size·W/H, 3), bilinear (display only)."""
    height, width = frames.shape[1:3]
    out = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
    out = F.interpolate(out, size=(size, round(size * width / height)), mode="bilinear", align_corners=False)
    return out.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def overlay(frames: np.ndarray, maps: torch.Tensor, *, alpha: float = 0.5) -> np.ndarray:
    """Blend (T, h, w) patch maps, coloured with :data:`COLORMAP`, over uint8 frames (T, H, W, 3)."""
    heat = normalize_maps(maps, frames.shape[1:3]).numpy()
    colour = matplotlib.colormaps[COLORMAP](heat)[..., :3] * 255.0
    return (alpha * colour + (1 - alpha) * frames).round().astype(np.uint8)


def mark_dropped(frames: np.ndarray, dropped: torch.Tensor, *, level: int = 128,
                 period: int = 4) -> np.ndarray:
    """Hatch the pixels of dropped patches (T, h, w) bool on frames (T, H, W, 3): grey diagonal lines,
    one pixel in ``period``, so the heat under a dropped token stays readable between them."""
    size = frames.shape[1:3]
    pixels = F.interpolate(dropped[:, None].float(), size=size, mode="nearest")[:, 0].bool().numpy()
    rows, cols = np.indices(size)
    out = frames.copy()
    out[pixels & ((rows + cols) % period == 0)] = level
    return out


def panel_strip(panels: Mapping[str, np.ndarray]) -> np.ndarray:
    """Titled panels {title: (T, H, W, 3)} side by side -> (T, HEADER + H, sum W, 3) uint8."""
    strip = np.concatenate(list(panels.values()), axis=2)
    frames, height, _, _ = strip.shape
    header = Image.new("RGB", (strip.shape[2], HEADER), "white")
    draw = ImageDraw.Draw(header)
    left = 0
    for title, panel in panels.items():
        draw.text((left + 2, 1), title, fill="black")
        left += panel.shape[2]
    header_px = np.broadcast_to(np.asarray(header), (frames, HEADER, strip.shape[2], 3))
    return np.concatenate([header_px, strip], axis=1)


def write_animation(frames: np.ndarray, path: str | Path, *, fps: float = 4.0) -> Path:
    """Write uint8 (T, H, W, 3) frames as ``.mp4`` (H.264, :func:`~video_iared.data.video.write_video`) or
    ``.gif`` (Pillow), by suffix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gif":
        images = [Image.fromarray(frame) for frame in frames]
        images[0].save(path, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
        return path
    if path.suffix != ".mp4":
        raise ValueError(f"animation must be .mp4 or .gif, got {path.name}")
    height, width = frames.shape[1:3]
    # even sizes keep yuv420p, which every player decodes
    even = np.pad(frames, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)), mode="edge")
    write_video(str(path), even, fps=fps, crf=18)
    return path


def save_grid(path: str | Path, frames: np.ndarray, rows: Mapping[str, torch.Tensor], *,
              dropped: Mapping[str, torch.Tensor] | None = None, title: str = "",
              frame_labels: Sequence[str] | None = None) -> Path:
    """PNG: the input frames, then one row per map {name: (T, h, w)}, overlaid on the frames.

    ``dropped`` {row name: (T, h, w) bool} hatches those tokens in that row. A colour bar (low → high,
    per-frame min-max) and a hatched swatch ("dropped") form the legend.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    dropped = dropped or {}
    num_frames = frames.shape[0]
    rendered = {"input": frames}
    for name, maps in rows.items():
        image = overlay(frames, maps)
        rendered[name] = mark_dropped(image, dropped[name]) if name in dropped else image
    fig, axes = plt.subplots(len(rendered), num_frames, squeeze=False,
                             figsize=(1.3 * num_frames + 1.4, 1.3 * len(rendered) + 0.6))
    for r, (name, images) in enumerate(rendered.items()):
        for t in range(num_frames):
            ax = axes[r, t]
            ax.imshow(images[t])
            ax.set_xticks([])
            ax.set_yticks([])
            if t == 0:
                ax.set_ylabel(name, fontsize=7)
            if r == 0:
                ax.set_title(frame_labels[t] if frame_labels else f"t={t}", fontsize=7)
    mappable = plt.cm.ScalarMappable(cmap=COLORMAP, norm=matplotlib.colors.Normalize(0, 1))
    bar = fig.colorbar(mappable, ax=axes, fraction=0.02, pad=0.02)
    bar.set_ticks([0, 1], labels=["low", "high"])
    bar.ax.tick_params(labelsize=7)
    if dropped:
        handle = Patch(facecolor="white", edgecolor="0.5", hatch="///", label="dropped token")
        fig.legend(handles=[handle], loc="lower left", fontsize=7,
                   frameon=False)
    if title:
        fig.suptitle(title, fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)
    return path
