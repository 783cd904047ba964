"""Pick a stage-2 checkpoint by a validation score over both variants: `python -m training.pick`.

    python -m training.pick --frames FRAMES_CKPT --swap-frames OTHER_FRAMES_CKPT [--swap-frames ...]
        VIDEO_CKPT [VIDEO_CKPT ...]

Each video checkpoint's G_V runs over its own G_F (``--frames``) and, unchanged, over the swap's G_F
(``--swap-frames``, e.g. a 1-ball G_F: the paper's Fig. 4). Given several swap G_Fs, every pair
(G_V, swap G_F) is scored, the own half measured once per G_V: the pair is picked together. On
``--videos`` generated and as many real videos per variant (evaluation seed ``--seed``: a tuning
seed, not a report seed) the score is, summed over the two variants, teleport rate + unexplained-
acceleration rate + |MSE / real MSE - 1| (lower is better): smooth motion at the real speed. Each
half also reports its slowest video's MSE over the real mean (``slowest_ratio``; a frozen video
shows below 0.5) and its balls' frame-to-frame speed jitter (``speed_jitter``, balls.motion),
outside the score. Only physics and Table 1 enter it; the two-sample test stays an independent
check of the pick. Prints a markdown table, best first.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from balls import metrics, motion
from balls.pixels import to_signed
from balls.sequences import generate
from training.evaluate import FRAMES, Source, from_checkpoints, mse_and_count, prior


def measure(source: Source, balls: int, seed: int, count: int) -> dict[str, float]:
    """The score's parts for one G_V over one G_F on ``count`` videos."""
    real = to_signed(generate(count, balls, length=FRAMES, seed=seed + 11))
    videos, _ = source.videos(prior(np.random.default_rng([seed, 7]), count, source.latent))
    moves, ours = motion.motion_report(videos, balls), mse_and_count(videos, balls)
    real_mse = float(metrics.consecutive_frame_mse(real).mean())
    return {
        "teleport_rate": moves["teleport_rate"],
        "unexplained_rate": moves["unexplained_rate"],
        "mse": ours["mse"],
        "mse_ratio": ours["mse"] / real_mse,
        "slowest_ratio": ours["lowest_mse"] / real_mse,  # a frozen video: below 0.5 (the floor)
        "speed_jitter": moves["speed_jitter"],  # outside the score: what a faster swap G_F amplifies
        "right_count": ours["right_count"],
    }


def score(parts: dict[str, float]) -> float:
    return parts["teleport_rate"] + parts["unexplained_rate"] + abs(parts["mse_ratio"] - 1)


def pick(frames: Path, swaps: list[Path], videos: list[Path], seed: int, count: int) -> list[dict[str, Any]]:
    """One row per (video checkpoint, swap G_F), best score first."""
    rows = []
    for video in videos:
        source = from_checkpoints(frames, video)
        own = measure(source, source.balls, seed, count)
        for swap in swaps:
            source = from_checkpoints(swap, video)
            parts = measure(source, source.balls, seed, count)
            rows.append({"checkpoint": str(video), "swap_frames": str(swap), "own": own, "swap": parts,
                         "score": score(own) + score(parts)})  # fmt: skip
    return sorted(rows, key=lambda r: r["score"])


def markdown(rows: list[dict[str, Any]]) -> str:
    def cell(p: dict[str, float]) -> str:
        return (f"{p['teleport_rate']:.1%} / {p['unexplained_rate']:.1%} / {p['mse_ratio']:.2f} / "
                f"{p['right_count']:.1%} / {p['slowest_ratio']:.2f}")  # fmt: skip

    lines = [
        "| checkpoint | own G_F: teleports / unexplained / MSE÷real / right count / slowest÷real | swap G_F "
        "| swap: same | score |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['checkpoint']} | {cell(r['own'])} | {r['swap_frames']} | {cell(r['swap'])} | {r['score']:.3f} |"
        for r in rows
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m training.pick", description=__doc__.split("\n\n")[0])
    p.add_argument("videos", nargs="+", type=Path, help="video checkpoints to compare")
    p.add_argument("--frames", type=Path, required=True, help="the G_F the checkpoints were trained over")
    p.add_argument("--swap-frames", type=Path, action="append", required=True,
                   help="the swap's G_F (e.g. trained on 1 ball); repeat it to score every pair")  # fmt: skip
    p.add_argument("--seed", type=int, default=1234, help="evaluation seed (a tuning seed; default 1234)")
    p.add_argument("--videos-per-figure", type=int, default=100, help="generated and real videos per variant")
    p.add_argument("--json", type=Path, help="also write the rows here")
    args = p.parse_args(argv)
    from training import checkpoint

    try:
        rows = pick(args.frames, args.swap_frames, args.videos, args.seed, args.videos_per_figure)
    except checkpoint.CheckpointError as exc:
        raise SystemExit(str(exc)) from None
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    print(markdown(rows))


if __name__ == "__main__":
    main()
