"""Encode generated frames: GIF and MP4 (PyAV, in-process) and PNG (Pillow)."""

from __future__ import annotations

import io

import av
import numpy as np
from PIL import Image

MEDIA_TYPES = {"gif": "image/gif", "mp4": "video/mp4", "png": "image/png"}


def to_pixels(frames: np.ndarray, scale: int = 1) -> np.ndarray:
    """Frames in [-1, 1], (..., H, W) -> uint8 (..., H * scale, W * scale), nearest-neighbour upscaled."""
    px = np.clip(np.rint((frames + 1.0) * 127.5), 0, 255).astype(np.uint8)
    if scale > 1:
        px = px.repeat(scale, axis=-2).repeat(scale, axis=-1)
    return px


def encode_gif(frames: np.ndarray, fps: int, scale: int) -> bytes:
    """Video (T, H, W) in [-1, 1] -> looping grayscale GIF, lossless, one GIF frame per frame.

    PyAV (FFmpeg's GIF encoder) rather than Pillow: Pillow merges identical consecutive frames,
    so a video that rests for a moment would come back with fewer than T frames.
    """
    px = to_pixels(frames, scale)
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="gif") as container:
        stream = container.add_stream("gif", rate=fps)
        stream.width, stream.height = px.shape[-1], px.shape[-2]
        stream.pix_fmt = "gray"
        for f in px:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="gray")))
        container.mux(stream.encode())
    return buf.getvalue()


def encode_mp4(frames: np.ndarray, fps: int, scale: int) -> bytes:
    """Video (T, H, W) in [-1, 1] -> H.264 MP4 (yuv420p, near-lossless, one thread: same bytes every time)."""
    px = to_pixels(frames, scale)
    if px.shape[-1] % 2 or px.shape[-2] % 2:  # yuv420p needs even sides
        px = np.pad(px, ((0, 0), (0, px.shape[-2] % 2), (0, px.shape[-1] % 2)))
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = px.shape[-1], px.shape[-2]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "10", "preset": "veryfast", "threads": "1", "bf": "0"}
        for f in px:
            container.mux(
                stream.encode(av.VideoFrame.from_ndarray(np.repeat(f[:, :, None], 3, axis=2), format="rgb24"))
            )
        container.mux(stream.encode())
    return buf.getvalue()


def encode_png(frame: np.ndarray, scale: int) -> bytes:
    """One frame (H, W) in [-1, 1] -> grayscale PNG."""
    buf = io.BytesIO()
    Image.fromarray(to_pixels(frame, scale)).save(buf, format="PNG")
    return buf.getvalue()


def encode_video(frames: np.ndarray, fmt: str, fps: int, scale: int) -> bytes:
    if fmt == "gif":
        return encode_gif(frames, fps, scale)
    if fmt == "mp4":
        return encode_mp4(frames, fps, scale)
    raise ValueError(f"format must be 'gif' or 'mp4', not {fmt!r}")
