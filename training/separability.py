"""Which measured features tell generated videos from real ones: `python -m training.separability`.

    python -m training.separability --models models --variant 3balls [--videos 600] [--seed 99] [--json OUT]
    python -m training.separability --frames FRAMES_CKPT --video VIDEO_CKPT [--balls N]

The two-sample test (training.c2st) says *whether* a classifier tells the videos apart; this says
*by what*. Each video is reduced to a few named physical and pixel features (below); a gradient-
boosted classifier is cross-validated (5 folds) on each feature alone and on all of them together.
A feature whose accuracy alone is near 1 is a giveaway; near 0.5 it carries nothing. Real videos
come from the simulator (seed ``--seed``), generated ones from the model's prior. A diagnostic for
the motion work, never a training signal. numpy, scipy and scikit-learn only: exported models run
in ONNX Runtime without torch.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np

from balls import metrics, motion
from balls.pixels import to_signed
from balls.sequences import generate
from training.evaluate import FRAMES, Source, add_source_flags, prior, source_from_flags, write_json

FAINT = (0.01, 0.3)  # a pixel change this small is an intensity flicker, not an edge moving


def _steps(tracked: list[np.ndarray | None]) -> tuple[np.ndarray, np.ndarray]:
    """Per-ball speeds (S, n) and turning angles (S, n) over every three consecutive tracked frames."""
    speeds, turns = [], []
    for a, b, c in zip(tracked[:-2], tracked[1:-1], tracked[2:], strict=True):
        if a is None or b is None or c is None:
            continue
        v1, v2 = b - a, c - b
        n1, n2 = np.linalg.norm(v1, axis=1), np.linalg.norm(v2, axis=1)
        speeds.append(n1)
        turns.append(np.arccos(np.clip((v1 * v2).sum(axis=1) / (n1 * n2 + 1e-6), -1.0, 1.0)))
    if not speeds:
        return np.zeros((1, 0)), np.zeros((1, 0))
    return np.array(speeds), np.array(turns)


def _flat(x: np.ndarray) -> float:
    return float(x.mean()) if x.size else 0.0


# name -> (what it is, function of (video (T, H, W) in [-1, 1], balls, (speeds, turns) of _steps, VideoMotion))
FEATURES: dict[str, tuple[str, Callable]] = {
    "speed_mean": ("mean tracked speed of a ball (px/frame)", lambda v, n, st, m: _flat(st[0])),
    "speed_change": (
        "std over time of each ball's speed, averaged over balls (px/frame; real: changes only at contacts)",
        lambda v, n, st, m: _flat(st[0].std(axis=0)),
    ),
    "energy_spread": (
        "std / mean over time of the balls' summed squared speed (real: ~constant)",
        lambda v, n, st, m: m.energy_spread or 0.0,
    ),
    "unexplained_rate": (
        "accelerations away from walls and balls (balls.motion)",
        lambda v, n, st, m: m.unexplained_rate,
    ),
    "teleport_rate": ("frame pairs in which a ball jumps (balls.motion)", lambda v, n, st, m: m.teleport_rate),
    "turn_mean": ("mean turning angle between consecutive steps (rad)", lambda v, n, st, m: _flat(st[1])),
    "wrong_count": (
        "frames not showing the data's number of balls",
        lambda v, n, st, m: float((metrics.count_balls(v) != n).mean()),
    ),
    "area_change": (
        "std over time of the lit-pixel count (px; balls growing and shrinking)",
        lambda v, n, st, m: float((v > 0).sum(axis=(1, 2)).std()),
    ),
    "changed_pixels_cv": (
        "std / mean over time of the binarised pixels changing per frame (bursts and holds)",
        lambda v, n, st, m: _cv((v[1:] > 0) != (v[:-1] > 0)),
    ),
    "faint_changes": (
        f"share of pixels changing by {FAINT[0]}-{FAINT[1]} between frames (intensity flicker)",
        lambda v, n, st, m: _faint(np.abs(np.diff(v, axis=0))),
    ),
}


def _faint(change: np.ndarray) -> float:
    return float(((change > FAINT[0]) & (change < FAINT[1])).mean())


def _cv(changed: np.ndarray) -> float:
    per_frame = changed.sum(axis=(1, 2)).astype(np.float64)
    return float(per_frame.std() / per_frame.mean()) if per_frame.mean() > 0 else 0.0


def features(videos: np.ndarray, balls: int) -> np.ndarray:
    """(B, T, H, W) videos in [-1, 1] -> (B, len(FEATURES)) features."""
    rows = []
    for v in metrics.frames_of(videos):
        tracked = motion.track(v, balls)
        m, steps = motion.video_motion(v, balls, tracked), _steps(tracked)
        rows.append([f(v, balls, steps, m) for _, f in FEATURES.values()])
    return np.nan_to_num(np.array(rows, dtype=np.float64))


def separability(real: np.ndarray, fake: np.ndarray, balls: int, seed: int = 0) -> dict:
    """Cross-validated accuracy (5 folds) of telling ``fake`` from ``real`` by each feature and by all."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    x = np.concatenate([features(real, balls), features(fake, balls)])
    y = np.r_[np.zeros(len(real)), np.ones(len(fake))]
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)

    def acc(cols: list[int], rounds: int) -> float:
        model = HistGradientBoostingClassifier(max_iter=rounds, random_state=seed)
        return float(cross_val_score(model, x[:, cols], y, cv=folds).mean())

    rows = {}
    for i, (name, (what, _)) in enumerate(FEATURES.items()):
        rows[name] = {
            "what": what,
            "real": float(x[: len(real), i].mean()),
            "generated": float(x[len(real) :, i].mean()),
            "accuracy": acc([i], 50),
        }
    return {"videos": [len(real), len(fake)], "features": rows, "all": acc(list(range(x.shape[1])), 200)}


def measure(source: Source, balls: int, seed: int, count: int) -> dict:
    real = to_signed(generate(count, balls, length=FRAMES, seed=seed + 31))
    fake, _ = source.videos(prior(np.random.default_rng([seed, 9]), count, source.latent))
    return {"seed": seed, "balls": balls, **source.provenance, **separability(real, fake, balls, seed)}


def markdown(result: dict) -> str:
    lines = [
        f"Separability, {result['videos'][0]} real and {result['videos'][1]} generated videos, "
        f"{result['balls']} ball(s), seed {result['seed']}: 5-fold accuracy of a classifier on each feature",
        "",
        "| feature | real | generated | accuracy alone |",
        "|---|---|---|---|",
    ]
    for name, row in sorted(result["features"].items(), key=lambda kv: -kv[1]["accuracy"]):
        lines.append(f"| {name}: {row['what']} | {row['real']:.3f} | {row['generated']:.3f} | {row['accuracy']:.3f} |")
    lines.append(f"| **all together** | | | **{result['all']:.3f}** |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m training.separability", description=__doc__.split("\n\n")[0])
    add_source_flags(p, video="... and the video checkpoint (G_V) over it")
    p.add_argument("--videos", type=int, default=600, help="real and generated videos each (default 600)")
    p.add_argument("--seed", type=int, default=99, help="seed of the real videos, the noise and the folds (default 99)")
    p.add_argument("--json", type=Path, help="also write the result as JSON here")
    args = p.parse_args(argv)
    if args.videos < 10:
        p.error("--videos must be at least 10 (5 folds)")
    source = source_from_flags(p, args, need_video=True)
    result = measure(source, args.balls or source.balls, args.seed, args.videos)
    if args.json is not None:
        write_json(args.json, result)
    print(markdown(result))


if __name__ == "__main__":
    main()
