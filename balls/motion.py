"""Physics of tracked balls (numpy + scipy only): do the balls move like the simulator's?

Real balls move in straight lines at constant speed until they touch a wall or another ball; walls
and equal-mass elastic collisions keep the total squared speed sum_i |v_i|^2 of a video constant.
Five measures follow, per video and per set of videos:

- ``teleport_rate``: the share of tracked frame pairs in which some ball moves more than
  ``TELEPORT_PX`` pixels (a real ball moves at most 1.5 px per frame at 30 px);
- ``unexplained_rate``: the share of accelerations (second differences of a tracked centre over
  three frames) above ``ACCEL_PX`` px/frame^2 among those of balls that stay more than
  ``CLEAR_PX`` pixels clear of every wall and every other ball in all three frames (where the
  simulator's balls cannot touch anything, so cannot accelerate);
- ``speed_w1``: the 1-D Wasserstein distance between the per-ball speeds of a set and of real
  videos (px/frame);
- ``energy_spread``: the coefficient of variation (std / mean) of sum_i |v_i|^2 over a video's
  tracked frame pairs, averaged over videos (videos that hold still are left out: their mean is
  ~0; the speed distance shows them);
- ``speed_jitter``: the root mean square of log(|v_t+1| / |v_t|), a clear ball's change of speed
  from one frame to the next (where both steps exceed ``MOVING_PX``), pooled over a set. Unlike the
  energy spread it sees only frame-to-frame changes, not a slow drift; relative to the speed, so a
  wavering that stays under ``ACCEL_PX`` at one speed shows as it would at another (a G_F that moves
  a ball twice as fast along the same walk turns it into unexplained accelerations).

Tracking: the ball centres of ``metrics.ball_centres`` in frames that show exactly ``n_balls``
components; consecutive such frames are matched by the assignment of least total distance. Frames
with merged balls (2 components of 3 balls: 12% of real 3-ball frames) break the track. A pair that
teleports is counted, and its accelerations are not (its matching means nothing).

Calibration (``python -m balls.motion --calibrate``: 200 real videos of 30 frames per ball count,
seed 0, tracked centres against the simulator's true positions; 1 ball / 3 balls):
- centroid error of tracked balls: median 0.036 / 0.036 px, largest 0.117 / 0.167 px (sampling a
  rendered ball at pixel centres);
- longest real tracked step 1.67 / 1.57 px per frame (true speeds are at most 1.5): ``TELEPORT_PX``
  = 4 is 2.4x that;
- largest real acceleration of a clear ball 0.31 / 0.31 px/frame^2 -- tracking noise alone (the
  simulator's clear balls move on straight lines; four centroid errors add up in a second
  difference): ``ACCEL_PX`` = 0.5 is 1.6x that; so real videos score 0 teleports, 0 unexplained;
- real energy spread 0.15 / 0.12 (tracking noise on the speeds; collisions within a frame shorten
  that frame's displacement); real speed jitter 0.05 / 0.13 (the same noise, on slower balls with 3).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.stats import wasserstein_distance

from balls.metrics import ball_centres, frames_of
from balls.simulator import BOX, RADIUS

TELEPORT_PX = 4.0  # a tracked ball that moves farther than this in one frame teleported
ACCEL_PX = 0.5  # px/frame^2: an acceleration above this away from walls and balls is unexplained
CLEAR_PX = 2.0  # a ball this far from every wall and ball (edge to edge, px) cannot touch one in a frame
MOVING_PX = 0.2  # px/frame: speed_jitter compares steps longer than this (a still ball has no ratio)


@dataclass
class VideoMotion:
    """The tracked motion of one video: counts behind the rates, and the raw speeds and energies."""

    pairs: int = 0  # consecutive frames both showing n balls
    teleports: int = 0  # ... in which some ball moved more than TELEPORT_PX
    clear: int = 0  # accelerations of balls clear of walls and balls
    unexplained: int = 0  # ... above ACCEL_PX
    speeds: list[float] = field(default_factory=list)  # per ball and pair, px/frame
    energies: list[float] = field(default_factory=list)  # sum_i |v_i|^2 per pair without a teleport
    speed_ratios: list[float] = field(default_factory=list)  # log(|v_t+1| / |v_t|) of clear, moving balls

    @property
    def teleport_rate(self) -> float:
        return self.teleports / self.pairs if self.pairs else 0.0

    @property
    def unexplained_rate(self) -> float:
        return self.unexplained / self.clear if self.clear else 0.0

    @property
    def energy_spread(self) -> float | None:
        e = np.asarray(self.energies)
        if e.size < 2 or e.mean() < 1e-3:
            return None  # too few pairs, or holding still
        return float(e.std() / e.mean())


def clearance(pos: np.ndarray, res: int, radius_px: float) -> np.ndarray:
    """Edge-to-edge distance (px) of each ball (n, 2) to the nearest wall or other ball: (n,)."""
    walls = np.minimum(pos, res - pos).min(axis=1) - radius_px
    gaps = np.linalg.norm(pos[:, None] - pos[None], axis=-1) - 2 * radius_px
    np.fill_diagonal(gaps, np.inf)
    return np.minimum(walls, gaps.min(axis=1))


def track(video: np.ndarray, n_balls: int) -> list[np.ndarray | None]:
    """Ball centres (n, 2) per frame of a (T, H, W) video in [-1, 1], each frame's balls in the order
    of the previous frame's when both show ``n_balls`` (None for frames that do not)."""
    out: list[np.ndarray | None] = []
    prev = None
    for frame in frames_of(video):
        c = ball_centres(frame)
        if len(c) != n_balls:
            out.append(None)
            prev = None
            continue
        if prev is not None:
            cost = np.linalg.norm(prev[:, None] - c[None], axis=-1)
            rows, cols = linear_sum_assignment(cost)
            c = c[cols[np.argsort(rows)]]
        out.append(c)
        prev = c
    return out


def accelerations(tracked: list[np.ndarray | None], res: int):
    """(t, centres at t (n, 2), clear (n,) bool, |second difference| (n,)) for every three tracked
    frames t-1, t, t+1 without a teleport between them; ``clear``: more than CLEAR_PX from every wall
    and ball in all three frames."""
    radius_px = RADIUS / BOX * res
    for t in range(1, len(tracked) - 1):
        p0, p1, p2 = tracked[t - 1], tracked[t], tracked[t + 1]
        if p0 is None or p1 is None or p2 is None:
            continue
        if max(np.linalg.norm(q - p, axis=1).max() for p, q in ((p0, p1), (p1, p2))) > TELEPORT_PX:
            continue  # a teleport: its matching means nothing
        clear = np.minimum.reduce([clearance(p, res, radius_px) for p in (p0, p1, p2)]) > CLEAR_PX
        yield t, p1, clear, np.linalg.norm(p2 - 2 * p1 + p0, axis=1)


def video_motion(video: np.ndarray, n_balls: int, tracked: list[np.ndarray | None] | None = None) -> VideoMotion:
    """The counts, speeds and energies of one (T, H, W) video in [-1, 1] (``tracked``: its ``track``)."""
    tracked = track(video, n_balls) if tracked is None else tracked
    m = VideoMotion()
    for a, b in zip(tracked[:-1], tracked[1:], strict=True):
        if a is None or b is None:
            continue
        step = np.linalg.norm(b - a, axis=1)
        m.pairs += 1
        m.speeds.extend(step.tolist())
        if step.max() > TELEPORT_PX:
            m.teleports += 1
        else:
            m.energies.append(float((step**2).sum()))
    for t, _, clear, accel in accelerations(tracked, video.shape[-1]):
        m.clear += int(clear.sum())
        m.unexplained += int((clear & (accel > ACCEL_PX)).sum())
        before, after = (np.linalg.norm(tracked[t + i] - tracked[t + i - 1], axis=1) for i in (0, 1))
        moving = clear & (before > MOVING_PX) & (after > MOVING_PX)
        m.speed_ratios.extend(np.log(after[moving] / before[moving]).tolist())
    return m


def motion_report(videos: np.ndarray, n_balls: int, real_speeds: np.ndarray | None = None) -> dict[str, float]:
    """The five measures over a set of (B, T, H, W) videos in [-1, 1] (rates pooled over the set);
    ``speed_w1`` needs the per-ball speeds of real videos (``speeds_of``), else it is left out."""
    return pooled([video_motion(v, n_balls) for v in frames_of(videos).reshape(-1, *videos.shape[-3:])], real_speeds)


def pooled(per_video: list[VideoMotion], real_speeds: np.ndarray | None = None) -> dict[str, float]:
    """``motion_report`` of videos already measured one by one."""
    pairs = sum(m.pairs for m in per_video)
    clear = sum(m.clear for m in per_video)
    spreads = [s for m in per_video if (s := m.energy_spread) is not None]
    speeds = np.concatenate([m.speeds for m in per_video]) if pairs else np.zeros(0)
    ratios = np.asarray([r for m in per_video for r in m.speed_ratios])
    report = {
        "teleport_rate": sum(m.teleports for m in per_video) / pairs if pairs else 0.0,
        "unexplained_rate": sum(m.unexplained for m in per_video) / clear if clear else 0.0,
        "energy_spread": float(np.mean(spreads)) if spreads else float("nan"),
        "speed_jitter": float(np.sqrt(np.mean(ratios**2))) if ratios.size else float("nan"),
        "mean_speed": float(speeds.mean()) if speeds.size else float("nan"),
        "tracked_pairs": pairs,
        "clear_accelerations": clear,
        "videos_holding_still": sum(1 for m in per_video if m.energies and np.mean(m.energies) < 1e-3),
    }
    if real_speeds is not None:
        report["speed_w1"] = float(wasserstein_distance(speeds, real_speeds)) if speeds.size else float("nan")
    return report


def speeds_of(videos: np.ndarray, n_balls: int) -> np.ndarray:
    """Per-ball speeds (px/frame) of every tracked pair of a set of videos: the reference of speed_w1."""
    return np.concatenate([video_motion(v, n_balls).speeds for v in frames_of(videos)] or [np.zeros(0)])


def per_video(videos: np.ndarray, n_balls: int) -> list[dict]:
    """Teleport and unexplained rates of each video (what the service reports beside the MSE), and
    its tracked centres: per frame a list of (x, y) px in ``track``'s order, empty where the frame
    does not show ``n_balls`` balls (the gallery draws the paths from them)."""
    out = []
    for v in frames_of(videos):
        tracked = track(v, n_balls)
        m = video_motion(v, n_balls, tracked)
        centres = [[] if c is None else np.round(c, 2).tolist() for c in tracked]
        out.append({"teleport_rate": m.teleport_rate, "unexplained_rate": m.unexplained_rate, "tracked_pairs": m.pairs,
                    "centres": centres})  # fmt: skip
    return out


def calibrate(videos: int = 200, n_balls: int = 3, seed: int = 0, length: int = 30, res: int = 30) -> dict[str, float]:
    """The figures behind the thresholds, from real videos with the simulator's true positions."""
    from balls.pixels import to_signed
    from balls.render import render
    from balls.simulator import initial_state, simulate

    pos, vel = initial_state(np.random.default_rng(seed), videos, n_balls)
    truth = simulate(pos, vel, length).positions / BOX * res  # (N, T, n, 2) in px
    frames = to_signed(render(truth / res * BOX, res, as_uint8=True))
    errors, steps, accels, per_video = [], [], [], []
    for video, true in zip(frames, truth, strict=True):
        tracked = track(video, n_balls)
        for c, t in zip(tracked, true, strict=True):
            if c is not None:
                cost = np.linalg.norm(c[:, None] - t[None], axis=-1)
                rows, cols = linear_sum_assignment(cost)
                errors.extend(cost[rows, cols])
        per_video.append(video_motion(video, n_balls, tracked))
        steps.extend(per_video[-1].speeds)
        for _, _, clear, accel in accelerations(tracked, res):
            accels.extend(accel[clear])
    report = pooled(per_video)
    return {
        "centroid_error_median_px": float(np.median(errors)),
        "centroid_error_max_px": float(np.max(errors)),
        "longest_step_px": float(np.max(steps)),
        "largest_clear_acceleration_px": float(np.max(accels)) if accels else 0.0,
        "energy_spread": report["energy_spread"],
        "speed_jitter": report["speed_jitter"],
        "teleport_rate": report["teleport_rate"],
        "unexplained_rate": report["unexplained_rate"],
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m balls.motion", description="Calibrate the physics thresholds")
    p.add_argument("--calibrate", action="store_true", required=True)
    p.add_argument("--videos", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    for n in (1, 3):
        figures = calibrate(args.videos, n, args.seed)
        print(f"{n} ball(s): " + ", ".join(f"{k} {v:.3f}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
