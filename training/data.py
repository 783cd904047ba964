"""Bouncing-balls data: simulator, renderer, on-disk data set and readers (numpy only).

A vectorised re-implementation of the generator the paper uses (Sutskever's RTRBM bouncing balls,
the paper's ref. [17]). Physics and rendering follow that generator step for step; the loops over
sequences are replaced by array operations over a batch of sequences.

- box 10x10, ball radius 1.2, equal masses;
- start: positions uniform in [2, 10) per axis, redrawn until no ball crosses a wall and no two
  balls overlap; velocities ``randn(n, 2)`` scaled so the whole (n, 2) matrix has norm 0.5;
- each frame records the positions, then advances 2 sub-steps of 0.5: move, reflect off walls,
  swap the velocity components along the line of centres of every overlapping pair (equal masses);
- rendering: pixel centres at ((k + 0.5) / res) * 10, intensity sum_balls exp(-(d^2 / r^2)^4)
  clipped to 1; column index follows the first coordinate, row index the second.

Randomness is organised in fixed blocks of ``BLOCK`` sequences, block ``b`` drawing from
``default_rng([seed, b])``: the same seed gives the same bytes whatever the chunking, and any
block can be produced on its own.

Run ``python -m training.data --help`` for the command line that writes a ``.npy`` data set.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BOX = 10.0  # side of the square box, in the generator's units
RADIUS = 1.2  # ball radius
SPEED_NORM = 0.5  # Frobenius norm of the (n, 2) initial velocity matrix
SUBSTEPS = 2  # physics sub-steps per recorded frame ...
EPS = 0.5  # ... each of this length: int(1 / eps) in the reference
START_LOW = 2.0  # initial positions are START_LOW + rand * START_SPAN per axis
START_SPAN = 8.0
BLOCK = 1000  # sequences per random-number block (fixes the bytes a seed gives)

RENDER_CHUNK = 256  # frames per rendering step: keeps the (chunk, n, res, res) buffer in cache


@dataclass
class Trajectories:
    """Ball centres of a batch of simulated sequences, with the events that shaped them."""

    positions: np.ndarray  # (N, T, n, 2) float64, centres at each recorded frame
    velocities: np.ndarray  # (N, T, n, 2) float64, velocities (per sub-step) at each recorded frame
    wall_bounces: np.ndarray  # (N,) int, velocity components turned around by a wall
    collisions: np.ndarray  # (N,) int, pair updates between overlapping balls


def initial_state(
    rng: np.random.Generator, n_sequences: int, n_balls: int, radius: float = RADIUS
) -> tuple[np.ndarray, np.ndarray]:
    """Draw start positions and velocities, (N, n, 2) each, as the reference generator does."""
    vel = rng.standard_normal((n_sequences, n_balls, 2))
    norms = np.sqrt((vel**2).sum(axis=(1, 2), keepdims=True))
    vel = vel / norms * SPEED_NORM

    pos = np.empty((n_sequences, n_balls, 2))
    todo = np.arange(n_sequences)
    pairs = np.triu_indices(n_balls, k=1)
    for _ in range(10_000):
        if todo.size == 0:
            return pos, vel
        cand = START_LOW + rng.random((todo.size, n_balls, 2)) * START_SPAN
        inside = ((cand - radius >= 0) & (cand + radius <= BOX)).all(axis=(1, 2))
        dist = np.linalg.norm(cand[:, pairs[0]] - cand[:, pairs[1]], axis=-1)  # (M, P)
        apart = (dist >= 2 * radius).all(axis=1)
        ok = inside & apart
        pos[todo[ok]] = cand[ok]
        todo = todo[~ok]
    raise ValueError(f"cannot place {n_balls} balls of radius {radius} in the box without overlap")


def simulate(pos: np.ndarray, vel: np.ndarray, length: int, radius: float = RADIUS) -> Trajectories:
    """Advance (N, n, 2) start states for ``length`` frames; returns the recorded centres.

    Pairs are resolved in the reference's order (for i, for j < i), one array operation over all
    sequences per pair: when three balls touch at once, the result depends on that order.
    """
    pos = pos.astype(np.float64, copy=True)
    vel = vel.astype(np.float64, copy=True)
    n_seq, n_balls, _ = pos.shape
    out = np.empty((n_seq, length, n_balls, 2))
    out_vel = np.empty_like(out)
    walls = np.zeros(n_seq, dtype=np.int64)
    hits = np.zeros(n_seq, dtype=np.int64)
    pairs = [(i, j) for i in range(n_balls) for j in range(i)]
    for t in range(length):
        out[:, t] = pos
        out_vel[:, t] = vel
        for _ in range(SUBSTEPS):
            pos += EPS * vel
            # walls: the velocity component points back inside while the ball crosses a wall
            new_vel = np.where(pos - radius < 0, np.abs(vel), vel)
            new_vel = np.where(pos + radius > BOX, -np.abs(new_vel), new_vel)
            walls += (new_vel != vel).sum(axis=(1, 2))
            vel = new_vel
            for i, j in pairs:
                w = pos[:, i] - pos[:, j]  # (N, 2)
                dist = np.sqrt((w**2).sum(axis=1))
                touch = dist < 2 * radius
                if not touch.any():
                    continue
                w = w[touch] / dist[touch, None]
                vi, vj = vel[touch, i], vel[touch, j]
                ui = (w * vi).sum(axis=1, keepdims=True)
                uj = (w * vj).sum(axis=1, keepdims=True)
                # equal masses: the components along the line of centres are exchanged
                vel[touch, i] = vi + w * (uj - ui)
                vel[touch, j] = vj + w * (ui - uj)
                hits += touch
    return Trajectories(out, out_vel, walls, hits)


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


def to_uint8(intensity: np.ndarray) -> np.ndarray:
    """Store intensities in [0, 1] as round(255 * intensity)."""
    return np.rint(intensity * 255.0).astype(np.uint8)


def to_signed(frames: np.ndarray) -> np.ndarray:
    """uint8 frames -> float32 in [-1, 1], the range the networks train on (x * 2 - 1)."""
    return frames.astype(np.float32) * np.float32(2.0 / 255.0) - np.float32(1.0)


def block_rng(seed: int, block: int) -> np.random.Generator:
    return np.random.default_rng([seed, block])


def generate_block(seed: int, block: int, n_balls: int, length: int, res: int) -> np.ndarray:
    """Sequences ``block * BLOCK`` .. ``(block + 1) * BLOCK - 1`` of a data set: uint8 (BLOCK, T, res, res)."""
    rng = block_rng(seed, block)
    pos, vel = initial_state(rng, BLOCK, n_balls)
    traj = simulate(pos, vel, length)
    return render(traj.positions, res, as_uint8=True)


def generate(n_sequences: int, n_balls: int, length: int = 128, res: int = 30, seed: int = 0) -> np.ndarray:
    """The first ``n_sequences`` sequences of the data set named by (seed, n_balls, length, res), in memory."""
    out = np.empty((n_sequences, length, res, res), dtype=np.uint8)
    for start in range(0, n_sequences, BLOCK):
        stop = min(start + BLOCK, n_sequences)
        out[start:stop] = generate_block(seed, start // BLOCK, n_balls, length, res)[: stop - start]
    return out


def real_video(seed: int, n_balls: int, length: int = 30, res: int = 30) -> np.ndarray:
    """The real video for seed s, wherever the project shows real beside generated videos (gallery,
    docs/samples): the first ``length`` frames of sequence 0 of data set ``seed``, uint8 (T, res, res)."""
    return generate(1, n_balls, length=length, res=res, seed=seed)[0]


def write_dataset(
    path: str | os.PathLike,
    n_sequences: int,
    n_balls: int,
    length: int = 128,
    res: int = 30,
    seed: int = 0,
    progress: bool = False,
) -> float:
    """Write ``generate(...)`` into a memory-mapped ``.npy`` block by block; returns sequences/s.

    Memory stays at one block whatever the size. The file appears under its name only when complete
    (written as ``<name>.partial`` and renamed), so an interrupted run never leaves a truncated set.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    arr = np.lib.format.open_memmap(partial, mode="w+", dtype=np.uint8, shape=(n_sequences, length, res, res))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n_sequences, unit="seq", desc=f"writing {path.name}")
    t0 = time.perf_counter()
    try:
        for start in range(0, n_sequences, BLOCK):
            stop = min(start + BLOCK, n_sequences)
            arr[start:stop] = generate_block(seed, start // BLOCK, n_balls, length, res)[: stop - start]
            if bar is not None:
                bar.update(stop - start)
        arr.flush()
    finally:
        if bar is not None:
            bar.close()
        del arr
    elapsed = time.perf_counter() - t0
    os.replace(partial, path)
    return n_sequences / max(elapsed, 1e-9)


def open_dataset(path: str | os.PathLike) -> np.ndarray:
    """Memory-map a data set written by ``write_dataset``: uint8 (sequences, length, res, res)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data set {path} does not exist (write one with `python -m training.data`)")
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise ValueError(f"data set {path} is not a readable .npy file: {exc}") from exc
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[2] != arr.shape[3]:
        raise ValueError(
            f"data set {path} has dtype {arr.dtype} and shape {arr.shape}; expected uint8 (sequences, length, res, res)"
        )
    return arr


def sample_windows(data: np.ndarray, rng: np.random.Generator, batch: int, length: int = 30) -> np.ndarray:
    """Random ``length``-frame windows of random sequences: float32 (batch, length, res, res) in [-1, 1]."""
    n_seq, seq_len = data.shape[:2]
    if length > seq_len:
        raise ValueError(f"window of {length} frames asked of sequences of {seq_len}")
    seqs = np.sort(rng.integers(0, n_seq, size=batch))  # sorted: friendlier to a memory map
    starts = rng.integers(0, seq_len - length + 1, size=batch)
    return to_signed(np.stack([data[s, t : t + length] for s, t in zip(seqs, starts, strict=True)]))


def sample_frames(data: np.ndarray, rng: np.random.Generator, batch: int) -> np.ndarray:
    """Random single frames of random sequences: float32 (batch, res, res) in [-1, 1]."""
    n_seq, seq_len = data.shape[:2]
    seqs = np.sort(rng.integers(0, n_seq, size=batch))
    times = rng.integers(0, seq_len, size=batch)
    return to_signed(data[seqs, times])


def stream(
    kind: str, batch: int, n_balls: int, res: int = 30, length: int = 30, seq_len: int = 128, seed: int = 0
) -> Iterator[np.ndarray]:
    """Endless float32 batches of ``simulate_batch``. Arguments are checked when called, not at first batch."""
    if kind not in ("windows", "frames"):
        raise ValueError(f"kind must be 'windows' or 'frames', not {kind!r}")
    span = length if kind == "windows" else 1
    if batch < 1 or n_balls < 1 or res < 1 or span > seq_len:
        raise ValueError(
            f"need batch, n_balls, res >= 1 and length <= seq_len; got {batch}, {n_balls}, {res}, {span} > {seq_len}"
        )
    return _stream(kind, batch, n_balls, res, length, seq_len, seed)


def simulate_batch(
    rng: np.random.Generator, kind: str, batch: int, n_balls: int, res: int = 30, length: int = 30, seq_len: int = 128
) -> np.ndarray:
    """One batch simulated from ``rng``, distributed like ``sample_windows``/``sample_frames`` of a
    data set of ``seq_len``-frame sequences: a window (or frame) starts at a uniform time. Only the
    frames returned are rendered. kind="windows": (batch, length, res, res); "frames": (batch, res, res).
    """
    span = length if kind == "windows" else 1
    pos, vel = initial_state(rng, batch, n_balls)
    starts = rng.integers(0, seq_len - span + 1, size=batch)
    traj = simulate(pos, vel, int(starts.max()) + span).positions  # (B, T, n, 2)
    take = starts[:, None] + np.arange(span)  # (B, span)
    centres = np.take_along_axis(traj, take[:, :, None, None], axis=1)
    frames = to_signed(render(centres, res, as_uint8=True))
    return frames if kind == "windows" else frames[:, 0]


def _stream(
    kind: str, batch: int, n_balls: int, res: int, length: int, seq_len: int, seed: int
) -> Iterator[np.ndarray]:
    rng = np.random.default_rng([seed, 0x5EED])
    while True:
        yield simulate_batch(rng, kind, batch, n_balls, res, length, seq_len)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m training.data",
        description="Write a bouncing-balls data set: uint8 .npy of shape (sequences, length, res, res), "
        "value = round(255 * intensity).",
    )
    parser.add_argument("--balls", type=int, default=3, help="balls per sequence (default 3)")
    parser.add_argument("--sequences", type=int, default=100_000, help="number of sequences (default 100000)")
    parser.add_argument("--length", type=int, default=128, help="frames per sequence (default 128)")
    parser.add_argument("--res", type=int, default=30, help="frame side in pixels (default 30)")
    parser.add_argument("--seed", type=int, default=10, help="random seed (default 10, the paper's)")
    parser.add_argument("--out", required=True, help="output .npy path")
    args = parser.parse_args(argv)
    for name in ("balls", "sequences", "length", "res"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.seed < 0:
        parser.error("--seed must be non-negative")
    rate = write_dataset(args.out, args.sequences, args.balls, args.length, args.res, args.seed, progress=True)
    size_gb = args.sequences * args.length * args.res**2 / 1e9
    print(f"wrote {args.out}: {args.sequences} sequences, {size_gb:.2f} GB, {rate:.0f} sequences/s")


if __name__ == "__main__":
    main()
