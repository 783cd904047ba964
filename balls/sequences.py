"""The sequences of a bouncing-balls data set, and the real video for a seed (numpy only).

Randomness is organised in fixed blocks of ``BLOCK`` sequences, block ``b`` drawing from
``default_rng([seed, b])``: the same seed gives the same bytes whatever the chunking, and any
block can be produced on its own.
"""

from __future__ import annotations

import numpy as np

from balls.render import render
from balls.simulator import initial_state, simulate

BLOCK = 1000  # sequences per random-number block (fixes the bytes a seed gives)


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
