"""The bouncing-balls generator written the slow, obvious way: one sequence, one ball, one pair at a time.

This mirrors the published reference generator statement by statement (including its quirks: balls
that still overlap keep exchanging velocity components, and pairs are visited in the order
``for i, for j < i``). It is the oracle that tests hold the vectorised ``balls.simulator`` against and
the baseline of ``benchmarks/data_throughput.py``; nothing in training or serving uses it.
"""

from __future__ import annotations

import numpy as np

from balls.simulator import BOX, EPS, RADIUS, SPEED_NORM, START_LOW, START_SPAN, SUBSTEPS


def initial_state_loop(rng: np.random.Generator, n_balls: int, radius: float = RADIUS) -> tuple[np.ndarray, np.ndarray]:
    """One sequence's start: positions and velocities, (n, 2) each."""
    vel = rng.standard_normal((n_balls, 2))
    vel = vel / np.sqrt((vel**2).sum()) * SPEED_NORM
    while True:
        pos = START_LOW + rng.random((n_balls, 2)) * START_SPAN
        good = True
        for i in range(n_balls):
            for k in range(2):
                if pos[i, k] - radius < 0 or pos[i, k] + radius > BOX:
                    good = False
        for i in range(n_balls):
            for j in range(i):
                if np.sqrt(((pos[i] - pos[j]) ** 2).sum()) < 2 * radius:
                    good = False
        if good:
            return pos, vel


def simulate_loop(pos: np.ndarray, vel: np.ndarray, length: int, radius: float = RADIUS):
    """Returns (positions (T, n, 2), wall_bounces, collisions) for one sequence."""
    pos = pos.astype(np.float64).copy()
    vel = vel.astype(np.float64).copy()
    n_balls = pos.shape[0]
    out = np.zeros((length, n_balls, 2))
    walls = 0
    hits = 0
    for t in range(length):
        for i in range(n_balls):
            out[t, i] = pos[i]
        for _ in range(SUBSTEPS):
            for i in range(n_balls):
                pos[i] += EPS * vel[i]
            for i in range(n_balls):
                for k in range(2):
                    if pos[i, k] - radius < 0 and vel[i, k] < 0:
                        vel[i, k] = -vel[i, k]
                        walls += 1
                    if pos[i, k] + radius > BOX and vel[i, k] > 0:
                        vel[i, k] = -vel[i, k]
                        walls += 1
            for i in range(n_balls):
                for j in range(i):
                    w = pos[i] - pos[j]
                    dist = np.sqrt((w**2).sum())
                    if dist < 2 * radius:
                        w = w / dist
                        ui = (w * vel[i]).sum()
                        uj = (w * vel[j]).sum()
                        # equal masses: new u_j = u_i and new u_i = u_j
                        vel[i] += w * (uj - ui)
                        vel[j] += w * (ui - uj)
                        hits += 1
    return out, walls, hits


def render_loop(positions: np.ndarray, res: int, radius: float = RADIUS) -> np.ndarray:
    """Frames (T, res, res) in [0, 1] from centres (T, n, 2), one frame and one ball at a time."""
    centres = (np.arange(res) + 0.5) / res * BOX
    cols, rows = np.meshgrid(centres, centres)  # cols varies along axis 1, rows along axis 0
    frames = np.zeros((positions.shape[0], res, res))
    for t in range(positions.shape[0]):
        for i in range(positions.shape[1]):
            x, y = positions[t, i]
            frames[t] += np.exp(-((((cols - x) ** 2 + (rows - y) ** 2) / radius**2) ** 4))
        frames[t] = np.minimum(frames[t], 1.0)
    return frames


def generate_loop(
    rng: np.random.Generator, n_sequences: int, n_balls: int, length: int = 128, res: int = 30
) -> np.ndarray:
    """uint8 sequences (N, T, res, res), one at a time."""
    out = np.zeros((n_sequences, length, res, res), dtype=np.uint8)
    for s in range(n_sequences):
        pos, vel = initial_state_loop(rng, n_balls)
        positions, _, _ = simulate_loop(pos, vel, length)
        out[s] = np.rint(render_loop(positions, res) * 255.0).astype(np.uint8)
    return out
