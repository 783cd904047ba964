"""Sample images: frame grids (stage 1), Fig. 3-style strips and animated GIFs (stage 2). numpy + Pillow, with the
project's one pixel conversion (``balls.pixels``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from balls.pixels import to_pixels, upscale


def tile(frames: np.ndarray, cols: int, gap: int = 1, scale: int = 2) -> np.ndarray:
    """(N, H, W) in [-1, 1] -> one uint8 image with ``cols`` frames per row, ``gap`` grey pixels apart."""
    frames = to_pixels(frames)
    n, h, w = frames.shape
    rows = -(-n // cols)
    canvas = np.full((rows * (h + gap) + gap, cols * (w + gap) + gap), 96, dtype=np.uint8)
    for i, f in enumerate(frames):
        r, c = divmod(i, cols)
        canvas[gap + r * (h + gap) : gap + r * (h + gap) + h, gap + c * (w + gap) : gap + c * (w + gap) + w] = f
    return upscale(canvas, scale)


def save_grid(frames: np.ndarray, path: Path, cols: int = 8) -> None:
    """Frames (N, H, W) as a grid PNG."""
    Image.fromarray(tile(frames, cols)).save(path)


def save_strip(videos: np.ndarray, path: Path) -> None:
    """Videos (B, T, H, W) as a strip PNG: one video per row, time left to right (the paper's Fig. 3)."""
    b, t, h, w = videos.shape
    Image.fromarray(tile(videos.reshape(b * t, h, w), cols=t)).save(path)


def save_gif(videos: np.ndarray, path: Path, cols: int = 3, fps: int = 10) -> None:
    """Videos (B, T, H, W) as one animated GIF that plays them side by side, ``cols`` per row."""
    frames = [Image.fromarray(tile(videos[:, t], cols, scale=3)) for t in range(videos.shape[1])]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=1000 // fps, loop=0)
