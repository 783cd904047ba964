"""Video metrics: the paper's Table 1 metric, ball counts and motion statistics (numpy + scipy only).

Part of the numpy core: the service, training and evaluation all use this one module. Videos are
float arrays in [-1, 1] of shape (T, H, W) (a single video) or (B, T, H, W); a channel axis of
size 1 is accepted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage
from scipy.optimize import linear_sum_assignment
from scipy.spatial import distance

from balls.pixels import to_signed
from balls.sequences import generate
from balls.simulator import BOX, RADIUS

# 4-connected components (scipy's default): on real 3-ball data this counts exactly 3 balls on 88%
# of frames, the figure the design notes give; 8-connectivity merges more near-touching balls (84%).
CONNECTIVITY = ndimage.generate_binary_structure(2, 1)


def frames_of(video: np.ndarray) -> np.ndarray:
    """Drop a channel axis of size 1: (..., T, 1, H, W) -> (..., T, H, W)."""
    video = np.asarray(video)
    if video.ndim >= 4 and video.shape[-3] == 1:
        video = video[..., 0, :, :]
    return video


def binarize(video: np.ndarray) -> np.ndarray:
    """Frames in [-1, 1] -> {0, 1}: a pixel is on when it is above 0 (intensity above 0.5)."""
    return (frames_of(video) > 0).astype(np.float32)


def consecutive_frame_mse(video: np.ndarray) -> np.ndarray | float:
    """The paper's Table 1 metric: binarise at 0, mean squared difference of consecutive frames,
    averaged over the T-1 pairs. A (T, H, W) video gives a float, (B, T, H, W) gives (B,)."""
    b = binarize(video)
    if b.ndim not in (3, 4) or b.shape[-3] < 2:
        raise ValueError(f"expected (T, H, W) or (B, T, H, W) with T >= 2, got shape {np.shape(video)}")
    value = ((b[..., 1:, :, :] - b[..., :-1, :, :]) ** 2).mean(axis=(-3, -2, -1))
    return float(value) if b.ndim == 3 else value


def summarize(values: np.ndarray) -> dict[str, float]:
    """Mean and (population) standard deviation over videos, as Table 1 reports them, and the
    extremes (a frozen video shows as a minimum near 0)."""
    values = np.asarray(values, dtype=np.float64)
    return {"mean": float(values.mean()), "std": float(values.std()), "n": int(values.size),
            "min": float(values.min()), "max": float(values.max())}  # fmt: skip


def count_balls(frames: np.ndarray) -> np.ndarray:
    """Connected components (4-connected) of each binarised frame: (..., H, W) -> (...) ints.
    Touching balls merge into one component, as they do to the eye."""
    b = frames_of(frames) > 0
    lead = b.shape[:-2]
    flat = b.reshape(-1, *b.shape[-2:])
    counts = np.array([ndimage.label(f, structure=CONNECTIVITY)[1] for f in flat], dtype=np.int64)
    return counts.reshape(lead)


def count_histogram(counts: np.ndarray, max_count: int = 6) -> dict[str, float]:
    """Fraction of frames with 0, 1, ..., max_count and more components."""
    counts = np.minimum(np.asarray(counts).ravel(), max_count)
    hist = np.bincount(counts, minlength=max_count + 1) / max(counts.size, 1)
    return {(f"{k}+" if k == max_count else str(k)): float(v) for k, v in enumerate(hist)}


def ball_centres(frame: np.ndarray) -> np.ndarray:
    """Centres (k, 2) as (x, y) in pixels of the components of one frame in [-1, 1], weighted by
    intensity inside each component (sub-pixel accurate on rendered balls)."""
    frame = np.asarray(frame, dtype=np.float64)
    labels, k = ndimage.label(frame > 0, structure=CONNECTIVITY)
    if k == 0:
        return np.zeros((0, 2))
    weights = (frame + 1.0) / 2.0
    rc = np.array(ndimage.center_of_mass(weights, labels, index=np.arange(1, k + 1)))  # (k, 2) row, col
    return rc[:, ::-1] + 0.5  # pixel k covers [k, k + 1): centre at k + 0.5


@dataclass
class MotionStats:
    """Motion of tracked ball centres in one or more videos (units: pixels, frames)."""

    mean_speed: float  # mean displacement of a tracked ball between consecutive frames
    direction_changes: int  # turns by more than ``turn_degrees`` between consecutive steps
    unexplained_changes: int  # ... of which no wall or other ball was near
    tracked_steps: int  # ball-steps on which a turn could be measured
    videos: int

    @property
    def unexplained_per_video(self) -> float:
        return self.unexplained_changes / max(self.videos, 1)

    def as_dict(self) -> dict[str, float]:
        d = asdict(self)
        d["unexplained_per_video"] = self.unexplained_per_video
        return d


def motion_stats(
    videos: np.ndarray,
    n_balls: int,
    turn_degrees: float = 30.0,
    min_step: float = 0.4,
    max_step: float = 4.0,
    margin: float = 1.5,
) -> MotionStats:
    """Track ball centres through (B, T, H, W) videos in [-1, 1] and count unexplained turns.

    A track continues over frames that show exactly ``n_balls`` components, matched between
    consecutive frames by the assignment of least total distance (a match longer than ``max_step``
    pixels breaks the track). On three consecutive tracked positions p0, p1, p2 with both steps at
    least ``min_step`` pixels long (shorter steps are too noisy to give a direction), a turn is an
    angle above ``turn_degrees``. A turn is explained when at p1 the ball is within one radius plus
    ``margin`` pixels of a wall, or within two radii plus ``margin`` of another ball. This is the
    paper's failure mode: "the ball changes its trajectory without hitting a wall first".
    """
    videos = frames_of(videos)
    if videos.ndim == 3:
        videos = videos[None]
    res = videos.shape[-1]
    radius_px = RADIUS / BOX * res
    cos_turn = np.cos(np.deg2rad(turn_degrees))
    speeds: list[float] = []
    turns = unexplained = steps = 0
    for video in videos:
        centres = [ball_centres(f) for f in video]
        prev_pos = prev_vel = None  # (n, 2) positions and velocities in a running track
        for c in centres:
            if len(c) != n_balls:
                prev_pos = prev_vel = None
                continue
            if prev_pos is None:
                prev_pos = c
                continue
            dist = np.linalg.norm(prev_pos[:, None] - c[None], axis=-1)
            rows, cols = linear_sum_assignment(dist)
            if dist[rows, cols].max() > max_step:
                prev_pos, prev_vel = c, None
                continue
            pos = c[cols]  # reorder to follow the previous frame's balls
            vel = pos - prev_pos
            speeds.extend(np.linalg.norm(vel, axis=1))
            if prev_vel is not None:
                n0 = np.linalg.norm(prev_vel, axis=1)
                n1 = np.linalg.norm(vel, axis=1)
                ok = (n0 >= min_step) & (n1 >= min_step)
                steps += int(ok.sum())
                cos = (prev_vel * vel).sum(axis=1) / np.maximum(n0 * n1, 1e-12)
                turned = ok & (cos < cos_turn)
                wall_gap = np.minimum(prev_pos, res - prev_pos).min(axis=1)  # p1 = prev_pos
                near_wall = wall_gap < radius_px + margin
                gaps = np.linalg.norm(prev_pos[:, None] - prev_pos[None], axis=-1)
                np.fill_diagonal(gaps, np.inf)
                near_ball = gaps.min(axis=1) < 2 * radius_px + margin
                turns += int(turned.sum())
                unexplained += int((turned & ~near_wall & ~near_ball).sum())
            prev_pos, prev_vel = pos, vel
    return MotionStats(
        mean_speed=float(np.mean(speeds)) if speeds else float("nan"),
        direction_changes=turns,
        unexplained_changes=unexplained,
        tracked_steps=steps,
        videos=len(videos),
    )


NEAR_IDENTICAL = 0.02  # two videos closer than this (binarised, per pixel and frame) look the same


def between_videos(videos: np.ndarray) -> dict[str, float]:
    """How different the videos of a set are from each other (mode collapse across z_v shows here,
    not in Table 1): over all pairs, the mean binarised squared distance between their frames at
    the same time step, and the fraction of pairs closer than NEAR_IDENTICAL."""
    flat = binarize(videos).reshape(len(videos), -1)
    pairs = distance.pdist(flat, "sqeuclidean") / flat.shape[1]  # every pair once
    return {"mean": float(pairs.mean()), "near_identical_fraction": float((pairs < NEAR_IDENTICAL).mean())}


def video_report(videos: np.ndarray, n_balls: int) -> dict:
    """Everything Table 1 reports about a set of (B, T, H, W) videos in [-1, 1]."""
    videos = frames_of(videos)
    counts = count_balls(videos)
    return {
        "consecutive_frame_mse": summarize(consecutive_frame_mse(videos)),
        "balls_per_frame": count_histogram(counts),
        "right_count_fraction": float((counts == n_balls).mean()),
        "motion": motion_stats(videos, n_balls).as_dict(),
        "between_videos": between_videos(videos),
    }


def mean_pair_distance(frames: np.ndarray, rng: np.random.Generator, pairs: int = 1000) -> float:
    """Mean binarised squared distance between two independent frames of (N, H, W): what the
    Table 1 row of 30 independent z through G_F measures (G_F's diversity)."""
    b = binarize(frames)
    i = rng.integers(0, len(b), size=pairs)
    j = rng.integers(0, len(b), size=pairs)
    keep = i != j
    return float(((b[i[keep]] - b[j[keep]]) ** 2).mean())


def real_data_table(balls: list[int], videos: int = 30, seed: int = 10) -> str:
    """Table 1's real-data rows as Markdown: ``videos`` 30-frame sequences per ball count."""
    lines = [
        "| balls | consecutive-frame MSE | right ball count | balls per frame | speed (px/frame) "
        "| turns / video | unexplained / video | independent-frame distance |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n in balls:
        report = video_report(to_signed(generate(videos, n, length=30, seed=seed)), n)
        frames = to_signed(generate(1000, n, seed=seed)).reshape(-1, 30, 30)
        pair = mean_pair_distance(frames, np.random.default_rng(seed), pairs=5000)
        mse, motion = report["consecutive_frame_mse"], report["motion"]
        hist = ", ".join(f"{k}: {v:.1%}" for k, v in report["balls_per_frame"].items() if v > 0)
        lines.append(
            f"| {n} | {mse['mean']:.4f} ± {mse['std']:.4f} | {report['right_count_fraction']:.1%} | {hist} "
            f"| {motion['mean_speed']:.2f} | {motion['direction_changes'] / videos:.1f} "
            f"| {motion['unexplained_per_video']:.2f} | {pair:.4f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m balls.metrics", description="Print Table 1's real-data rows (Markdown)."
    )
    parser.add_argument("--balls", type=int, nargs="+", default=[1, 3], help="ball counts (default: 1 3)")
    parser.add_argument("--videos", type=int, default=30, help="videos per row (default 30, as the paper)")
    parser.add_argument("--seed", type=int, default=10, help="data seed (default 10)")
    args = parser.parse_args(argv)
    print(real_data_table(args.balls, args.videos, args.seed))


if __name__ == "__main__":
    main()
