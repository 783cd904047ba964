"""Encode video pixels (uint8, ``balls.pixels``): GIF and MP4 (PyAV, in-process) and PNG (Pillow)."""

from __future__ import annotations

import io

import av
import numpy as np
from PIL import Image

from balls.pixels import upscale

MEDIA_TYPES = {"gif": "image/gif", "mp4": "video/mp4", "png": "image/png"}


def encode_gif(pixels: np.ndarray, fps: int, scale: int) -> bytes:
    """Video pixels uint8 (T, H, W) -> looping grayscale GIF, lossless, one GIF frame per frame.

    PyAV (FFmpeg's GIF encoder) rather than Pillow: Pillow merges identical consecutive frames,
    so a video that rests for a moment would come back with fewer than T frames.
    """
    px = upscale(pixels, scale)
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="gif") as container:
        stream = container.add_stream("gif", rate=fps)
        stream.width, stream.height = px.shape[-1], px.shape[-2]
        stream.pix_fmt = "gray"
        for f in px:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="gray")))
        container.mux(stream.encode())
    return buf.getvalue()


def encode_mp4(pixels: np.ndarray, fps: int, scale: int) -> bytes:
    """Video pixels uint8 (T, H, W) -> H.264 MP4 (yuv420p, near-lossless, one thread: same bytes every time)."""
    px = upscale(pixels, scale)
    if px.shape[-1] % 2 or px.shape[-2] % 2:  # yuv420p needs even sides
        px = np.pad(px, ((0, 0), (0, px.shape[-2] % 2), (0, px.shape[-1] % 2)))
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = px.shape[-1], px.shape[-2]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "10", "preset": "veryfast", "threads": "1", "bf": "0"}
        for f in px:  # gray frames: FFmpeg converts gray -> yuv420p faster than from RGB (benchmarks/encoding.py)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="gray")))
        container.mux(stream.encode())
    return buf.getvalue()


def encode_png(pixels: np.ndarray, scale: int) -> bytes:
    """One frame's pixels uint8 (H, W) -> grayscale PNG."""
    buf = io.BytesIO()
    Image.fromarray(upscale(pixels, scale)).save(buf, format="PNG")
    return buf.getvalue()


def encode_video(pixels: np.ndarray, fmt: str, fps: int, scale: int) -> bytes:
    if fmt == "gif":
        return encode_gif(pixels, fps, scale)
    if fmt == "mp4":
        return encode_mp4(pixels, fps, scale)
    raise ValueError(f"format must be 'gif' or 'mp4', not {fmt!r}")
