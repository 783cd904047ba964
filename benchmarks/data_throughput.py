"""Sequences/s of the vectorised bouncing-balls generator vs the per-sequence loop version.

3 balls, 128 frames, 30x30, as the paper's data set. Prints medians over repeated runs and the
projected time to write the paper-size data set (100,000 sequences) from a measured slice.
Run: python benchmarks/data_throughput.py [--loop-sequences 40] [--blocks 3] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from balls import reference as ref
from balls.render import render
from balls.sequences import BLOCK, generate
from balls.simulator import initial_state, simulate
from training.data import write_dataset


def timed(fn, *args, **kwargs) -> float:
    t0 = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loop-sequences", type=int, default=40, help="sequences per loop-version run")
    parser.add_argument("--blocks", type=int, default=3, help=f"blocks of {BLOCK} sequences per vectorised run")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each; the median is reported")
    parser.add_argument("--write-sequences", type=int, default=5000, help="slice written to disk for the projection")
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args()

    n_vec = args.blocks * BLOCK
    loop_rates, vec_rates, render_share = [], [], []
    for r in range(args.repeats):
        rng = np.random.default_rng(r)
        loop_rates.append(args.loop_sequences / timed(ref.generate_loop, rng, args.loop_sequences, 3))
        vec_rates.append(n_vec / timed(generate, n_vec, 3, 128, 30, seed=r))
        pos, vel = initial_state(np.random.default_rng(r), BLOCK, 3)
        t_sim = timed(simulate, pos, vel, 128)
        traj = simulate(pos, vel, 128)
        t_render = timed(render, traj.positions, 30, as_uint8=True)
        render_share.append(t_render / (t_sim + t_render))

    with tempfile.TemporaryDirectory() as tmp:
        write_rate = write_dataset(os.path.join(tmp, "slice.npy"), args.write_sequences, 3, seed=10)

    loop, vec = statistics.median(loop_rates), statistics.median(vec_rates)
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "runs": args.repeats,
        "loop_sequences_per_s": round(loop, 1),
        "vectorised_sequences_per_s": round(vec, 1),
        "speedup": round(vec / loop, 1),
        "render_share_of_vectorised_time": round(statistics.median(render_share), 2),
        "write_sequences_per_s": round(write_rate, 1),
        "projected_minutes_for_100k": round(100_000 / write_rate / 60, 1),
    }
    print(f"loop version      : {loop:8.1f} sequences/s  (runs: {', '.join(f'{x:.1f}' for x in loop_rates)})")
    print(f"vectorised        : {vec:8.1f} sequences/s  (runs: {', '.join(f'{x:.1f}' for x in vec_rates)})")
    print(f"speed-up          : {vec / loop:8.1f}x  (goal 100x)")
    print(f"rendering share   : {result['render_share_of_vectorised_time']:.0%} of the vectorised time")
    print(
        f"write to .npy     : {write_rate:8.1f} sequences/s -> 100,000 sequences (11.5 GB) in "
        f"{result['projected_minutes_for_100k']} min"
    )
    print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
