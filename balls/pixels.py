"""The one pixel conversion of the project (numpy only).

Three forms of a frame: intensities in [0, 1] (the renderer), stored pixels uint8 (data sets, GIF/MP4/PNG
files) and signed floats in [-1, 1] (what the networks train on and emit). The binarisation of the
paper's metric (x > 0) is pixel >= 128 in the stored form, and every conversion here keeps it exact.
"""

from __future__ import annotations

import numpy as np


def to_uint8(intensity: np.ndarray) -> np.ndarray:
    """Store intensities in [0, 1] as round(255 * intensity)."""
    return np.rint(intensity * 255.0).astype(np.uint8)


def to_signed(frames: np.ndarray) -> np.ndarray:
    """uint8 frames -> float32 in [-1, 1], the range the networks train on (x * 2 - 1)."""
    return frames.astype(np.float32) * np.float32(2.0 / 255.0) - np.float32(1.0)


def to_pixels(frames: np.ndarray) -> np.ndarray:
    """Frames in [-1, 1] -> uint8 round(127.5 * (x + 1)), with the binarisation kept exact:
    pixel >= 128 exactly where x > 0, so the paper's metric computed on decoded pixels (via
    ``to_signed``) equals the metric of the generated frames."""
    px = np.clip(np.rint((frames + 1.0) * 127.5), 0, 255)
    px = np.where(frames > 0, np.maximum(px, 128), np.minimum(px, 127))
    return px.astype(np.uint8)


def upscale(pixels: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour upscaling of (..., H, W) by an integer factor."""
    return pixels.repeat(scale, axis=-2).repeat(scale, axis=-1) if scale > 1 else pixels
