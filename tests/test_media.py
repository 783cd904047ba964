"""Encoding: pixels that keep the binarisation exact, lossless GIFs, MP4s, PNGs."""

import io

import av
import numpy as np
from PIL import Image

from balls import pixels
from inference import media
from tests.serving import decode_gif


def test_pixels_keep_the_binarisation_exact():
    x = np.array([-1.0, -0.5, -1e-3, -1e-9, 0.0, 1e-9, 1e-3, 0.5, 1.0, 1.5, -2.0], dtype=np.float32)
    px = pixels.to_pixels(x)
    assert px.tolist() == [0, 64, 127, 127, 127, 128, 128, 191, 255, 255, 0]
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(-1, 1, 10_000), rng.normal(0, 1e-6, 10_000)]).astype(np.float32)
    assert np.array_equal(pixels.to_signed(pixels.to_pixels(x)) > 0, x > 0)
    assert np.abs(pixels.to_signed(pixels.to_pixels(x)) - x).max() <= 1 / 127.5 + 1e-6


def test_gif_is_lossless_with_every_frame():
    px = np.zeros((30, 30, 30), dtype=np.uint8)
    px[10:] = np.arange(900, dtype=np.uint8).reshape(30, 30)  # 20 identical frames after 10 black ones
    data = media.encode_gif(px, fps=20, scale=3)
    frames = decode_gif(data)
    assert frames.shape == (30, 90, 90) and np.array_equal(frames, pixels.upscale(px, 3))
    assert Image.open(io.BytesIO(data)).info["duration"] == 50 and media.encode_gif(px, 20, 3) == data


def test_mp4_decodes_to_the_frames():
    px = (np.random.default_rng(1).random((30, 30, 30)) > 0.8).astype(np.uint8) * 255
    data = media.encode_mp4(px, fps=10, scale=4)
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.average_rate == 10
        frames = np.stack([f.to_ndarray(format="gray") for f in container.decode(video=0)])
    assert frames.shape == (30, 120, 120)
    assert np.abs(frames.astype(int) - pixels.upscale(px, 4)).mean() < 3
    assert media.encode_mp4(px, 10, 4) == data


def test_png_and_formats():
    px = np.arange(900, dtype=np.uint8).reshape(30, 30)
    img = Image.open(io.BytesIO(media.encode_png(px, 2)))
    assert img.size == (60, 60) and img.mode == "L" and np.array_equal(np.asarray(img)[::2, ::2], px)
    assert media.encode_video(px[None].repeat(2, 0), "gif", 10, 1)[:6] == b"GIF89a"
    try:
        media.encode_video(px[None], "avi", 10, 1)
    except ValueError as exc:
        assert "format" in str(exc)
    else:
        raise AssertionError("avi accepted")
