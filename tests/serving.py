"""Test helpers for a served model: a real `bentoml serve` (``inference.local_server``) and GIF decoding."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from inference.local_server import bentoml_serve

__all__ = ["bentoml_serve", "decode_gif"]


def decode_gif(data: bytes) -> np.ndarray:
    """All frames of a GIF as uint8 (T, H, W), with Pillow (the service encodes GIFs with FFmpeg)."""
    img = Image.open(io.BytesIO(data))
    frames = []
    for i in range(img.n_frames):
        img.seek(i)
        frames.append(np.asarray(img.convert("L")))
    return np.stack(frames)
