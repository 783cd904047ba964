"""The training data on disk and in batches: the .npy writer and reader, random windows and frames,
and batches simulated on the fly (numpy only).

The sequences themselves (simulator, renderer, "the sequences of data set seed s") are the core
package ``balls``; this module stores and samples them for training.

Run ``python -m training.data --help`` for the command line that writes a ``.npy`` data set.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from balls.pixels import to_signed
from balls.render import render
from balls.sequences import BLOCK, generate_block
from balls.simulator import initial_state, simulate


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
