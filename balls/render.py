"""Rendering ball centres into frames, as the paper's reference generator does (numpy only).

Pixel centres at ((k + 0.5) / res) * 10, intensity sum_balls exp(-(d^2 / r^2)^4) clipped to 1;
column index follows the first coordinate, row index the second.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from balls.simulator import BOX, RADIUS

RENDER_CHUNK = 256  # frames per rendering step: keeps the (chunk, n, res, res) buffer in cache


def _pixel_centres(res: int) -> np.ndarray:
    return (np.arange(res) + 0.5) / res * BOX


def render(
    positions: np.ndarray, res: int, radius: float = RADIUS, workers: int | None = None, as_uint8: bool = False
) -> np.ndarray:
    """Intensities in [0, 1], float32 (..., res, res), of ball centres (..., n, 2); with ``as_uint8``
    the stored form round(255 * intensity) as uint8, quantised chunk by chunk.

    Every pixel of every ball is evaluated, as in the reference, in float32, a cache-sized chunk of
    frames at a time, with the frame index innermost so that numpy's loops run long and vectorise,
    on ``workers`` threads (numpy releases the GIL; default: all cores, up to 4). Restricting each
    ball to a window around it was measured slower: the scatter back into the frame costs more
    than the exponentials it saves.
    """
    lead = positions.shape[:-2]
    n_balls = positions.shape[-2]
    flat = positions.reshape(-1, n_balls, 2)
    centres = _pixel_centres(res)
    coords = np.ascontiguousarray(flat.transpose(1, 2, 0))  # (n, 2, m): frame index last
    out = np.empty((flat.shape[0], res, res), dtype=np.uint8 if as_uint8 else np.float32)
    local = threading.local()
    one, scale = np.float32(1.0), np.float32(255.0)

    def work(start: int) -> None:
        stop = min(start + RENDER_CHUNK, flat.shape[0])
        if not hasattr(local, "u"):  # reusable buffers per thread: no page faults per chunk
            local.u = np.empty((n_balls, res, res, RENDER_CHUNK), dtype=np.float32)
            local.frame = np.empty((res, res, RENDER_CHUNK), dtype=np.float32)
        u = local.u[..., : stop - start]  # (n, rows, cols, c)
        frame = local.frame[..., : stop - start]  # (rows, cols, c)
        # squared distances per axis, in radii: (n, 2, res, c), axis 1 = x (columns), y (rows)
        d2 = np.square((centres[:, None] - coords[:, :, None, start:stop]) / radius).astype(np.float32)
        np.add(d2[:, 1, :, None], d2[:, 0, None, :], out=u)
        np.square(u, out=u)
        np.square(u, out=u)
        np.negative(u, out=u)
        np.exp(u, out=u)
        np.sum(u, axis=0, out=frame)
        np.minimum(frame, one, out=frame)
        if as_uint8:
            np.multiply(frame, scale, out=frame)
            np.rint(frame, out=frame)
            out[start:stop] = frame.astype(np.uint8).transpose(2, 0, 1)
        else:
            out[start:stop] = frame.transpose(2, 0, 1)

    starts = range(0, flat.shape[0], RENDER_CHUNK)
    workers = workers or min(os.cpu_count() or 1, 4)
    if workers == 1 or len(starts) == 1:
        for start in starts:
            work(start)
    else:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(work, starts))
    return out.reshape(*lead, res, res)


def render_dense(positions: np.ndarray, res: int, radius: float = RADIUS) -> np.ndarray:
    """The reference formula on every pixel, float64: the oracle ``render`` is tested against."""
    c = _pixel_centres(res)
    dx = c[None, :] - positions[..., 0, None, None]  # (..., n, 1, res): columns follow x
    dy = c[:, None] - positions[..., 1, None, None]  # (..., n, res, 1): rows follow y
    inten = np.exp(-(((dx**2 + dy**2) / radius**2) ** 4)).sum(axis=-3)
    return np.minimum(inten, 1.0)
