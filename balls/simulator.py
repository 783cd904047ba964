"""The bouncing-balls world: physics of the paper's data (numpy only).

A vectorised re-implementation of the generator the paper uses (Sutskever's RTRBM bouncing balls,
the paper's ref. [17]). Physics follows that generator step for step; the loops over sequences are
replaced by array operations over a batch of sequences.

- box 10x10, ball radius 1.2, equal masses;
- start: positions uniform in [2, 10) per axis, redrawn until no ball crosses a wall and no two
  balls overlap; velocities ``randn(n, 2)`` scaled so the whole (n, 2) matrix has norm 0.5;
- each frame records the positions, then advances 2 sub-steps of 0.5: move, reflect off walls,
  swap the velocity components along the line of centres of every overlapping pair (equal masses).

Rendering is ``balls.render``; the sequences of a data set and the real video for a seed are
``balls.sequences``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BOX = 10.0  # side of the square box, in the generator's units
RADIUS = 1.2  # ball radius
SPEED_NORM = 0.5  # Frobenius norm of the (n, 2) initial velocity matrix
SUBSTEPS = 2  # physics sub-steps per recorded frame ...
EPS = 0.5  # ... each of this length: int(1 / eps) in the reference
START_LOW = 2.0  # initial positions are START_LOW + rand * START_SPAN per axis
START_SPAN = 8.0


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
