"""How evenly G_F turns a step in z into a change on screen: `python -m training.gain`.

    python -m training.gain --frames FRAMES_CKPT [--video VIDEO_CKPT] [--count 200] [--seed 99] [--json OUT]
    python -m training.gain --models models --variant 3balls

G_F's gain at z along a direction d is |G_F(z + d) - G_F(z)| / |d| (pixels in [-1, 1], L2 over the
frame; the quantity Jacobian clamping bounds). Real balls keep their speed between contacts, so the
pixels a real video changes per frame vary little within a video; a G_V can only give that if G_F
answers a steady walk in z with a steady change on screen. Reported:

- ``points``: the gain at prior samples along random directions of norm ``--eps``: median, 5-95%,
  and its spread over points (std / mean);
- ``paths`` (with a G_V): along each generated video's own path z_F,1..T, the pixel step
  |x_t - x_t-1|, the z step |z_t - z_t-1|, their ratio (the gain along the path) and the gain along
  random directions at the same points; each as its spread within a video (std / mean over the
  frames), averaged over videos, beside the real videos' pixel-step spread; and the spread of the
  videos' speeds (each video's mean pixel step, std / mean over the videos) beside the real one's:
  where it is wide, the slowest videos look frozen;
- ``spectrum``: the singular values of G_F's Jacobian dG_F/dz at prior samples (central differences
  along each axis of z, step ``JACOBIAN_STEP``): their medians over points, the participation ratio
  (sum s^2)^2 / sum s^4 (how many directions carry the gain), and, over the 2·balls largest (a
  frame of b balls moves in 2b ways), their spread (std / mean) and the ratio of the largest to the
  2b-th; the next one, divided by the largest, shows what is left outside them. Where the 2b gains
  are uneven, a walk at an even pace in z moves some balls faster than others;
- ``walks``: straight walks at an even pace from the spectrum's points, each along a random mix of
  the 2·balls steepest directions there, its steps sized so that the tracked balls move at the real
  videos' mean speed (one walk sized by the frame's change, then scaled once); the balls are
  tracked (``balls.motion``) and their speed jitter (frame-to-frame change of each ball's speed) and
  unexplained accelerations reported beside the real videos'. A straight, even walk involves no
  G_V: where its balls still waver, the wavering is G_F's own (docs/training-log.md #22), and a
  swap G_F that moves its ball faster along the same walk turns it into unexplained accelerations.
  It ranks G_Fs; it is no stand-in for a G_V trained over them (#22: a G_F that walked a little
  steadier did not give a steadier G_V). On the trained G_Fs a straight walk reaches only about half
  the real speed even when scaled up (its steep directions turn away along it: a G_V has to curve
  to keep the balls moving), and at half speed tracking noise alone reads as jitter 0.18 with 3
  balls and 0.11 with 1 (real videos interpolated to half their speed).

A diagnostic for stage 1 (is this G_F navigable at an even pace?), never a training signal. numpy
only on an exported variant: the models run in ONNX Runtime.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from balls import motion
from balls.pixels import to_signed
from balls.sequences import generate
from training.evaluate import FRAMES, Source, add_source_flags, prior, source_from_flags, write_json


def directions(rng: np.random.Generator, count: int, latent: int, norm: float) -> np.ndarray:
    """``count`` random directions in z, each of length ``norm``: (count, latent)."""
    d = rng.standard_normal((count, latent))
    return (d * (norm / np.linalg.norm(d, axis=1, keepdims=True))).astype(np.float32)


def gains(source: Source, z: np.ndarray, d: np.ndarray, at: np.ndarray | None = None) -> np.ndarray:
    """|G_F(z + d) - G_F(z)| / |d| per row of z (N, latent): (N,). ``at``: G_F(z) where it is drawn
    already (a video's own frames), so that it is not drawn twice."""
    change = source.frames(z + d) - (source.frames(z) if at is None else at)
    return np.linalg.norm(change.reshape(len(z), -1), axis=1) / np.linalg.norm(d, axis=1)


def spread(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """std / mean along ``axis`` (0 where the mean is 0)."""
    mean = x.mean(axis=axis)
    return np.divide(x.std(axis=axis), mean, out=np.zeros_like(mean), where=mean > 0)


def pixel_steps(videos: np.ndarray) -> np.ndarray:
    """|x_t - x_t-1| per frame pair, L2 over the frame: (N, T-1)."""
    n, t = videos.shape[:2]
    return np.linalg.norm(np.diff(videos, axis=1).reshape(n, t - 1, -1), axis=2)


SPECTRUM_POINTS = 100  # each costs 2·latent frames
JACOBIAN_STEP = 0.02  # central differences: small against G_F's curvature, large against float32's noise


def jacobians(source: Source, z: np.ndarray, step: float = JACOBIAN_STEP) -> np.ndarray:
    """dG_F/dz at each row of z (N, latent) by central differences: (N, pixels, latent)."""
    n, latent = z.shape
    axes = np.eye(latent, dtype=np.float32) * step
    moved = np.concatenate([z[:, None] + axes[None], z[:, None] - axes[None]], axis=1)  # (N, 2L, latent)
    drawn = source.frames(moved.reshape(-1, latent)).reshape(n, 2, latent, -1)
    return ((drawn[:, 0] - drawn[:, 1]) / (2 * step)).transpose(0, 2, 1)


def spectrum_points(source: Source, seed: int, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The spectrum's prior points z (N, latent) and the SVD of G_F's Jacobian there: its singular
    values s (N, latent), sorted, and right singular vectors vt (N, latent, latent), rows the directions."""
    z = prior(np.random.default_rng([seed, 3]), count, source.latent)
    _, s, vt = np.linalg.svd(jacobians(source, z), full_matrices=False)
    return z, s, vt


def spectrum(s: np.ndarray, balls: int) -> dict:
    k = min(2 * balls, s.shape[1])
    energy = s**2
    participation = energy.sum(axis=1) ** 2 / np.maximum((energy**2).sum(axis=1), 1e-30)
    top = s[:, :k]
    rest = s[:, k] / np.maximum(s[:, 0], 1e-30) if k < s.shape[1] else np.zeros(len(s))
    return {
        "singular_values": np.median(s[:, : k + 2], axis=0).round(4).tolist(),
        "participation": float(np.median(participation)),
        "ball_directions": k,
        "ball_gain_spread": float(np.median(spread(top))),
        "ball_gain_ratio": float(np.median(top[:, 0] / np.maximum(top[:, -1], 1e-30))),
        "rest_over_largest": float(np.median(rest)),
    }


def straight_walks(source: Source, balls: int, seed: int, z: np.ndarray, s: np.ndarray, vt: np.ndarray) -> dict:
    """Straight walks at an even pace from each row of z (N, latent), along a random mix of the
    2·balls steepest directions there (``spectrum_points``' s, vt); the balls' motion beside real videos'."""
    rng = np.random.default_rng([seed, 4])
    n, latent = z.shape
    k = min(2 * balls, latent)
    mix = rng.standard_normal((n, k))
    mix /= np.linalg.norm(mix, axis=1, keepdims=True)
    direction = np.einsum("nk,nkl->nl", mix, vt[:, :k])  # unit length: vt's rows are orthonormal
    gain = np.linalg.norm(mix * s[:, :k], axis=1)  # |J direction|
    real = to_signed(generate(n, balls, length=FRAMES, seed=seed + 41))
    theirs = motion.motion_report(real, balls)
    t = np.arange(FRAMES, dtype=np.float32)[None, :, None]

    def walk(step: np.ndarray) -> dict:
        path = (z[:, None] + t * (step[:, None] * direction)[:, None]).astype(np.float32)
        return motion.motion_report(source.frames(path.reshape(-1, latent)).reshape(n, FRAMES, *real.shape[2:]), balls)

    step = np.median(pixel_steps(real)) / np.maximum(gain, 1e-6)  # first a real frame's change per step,
    ours = walk(step)
    if ours["mean_speed"] > 0:  # then the steps that give the tracked balls the real mean speed
        ours = walk(step * theirs["mean_speed"] / ours["mean_speed"])  # (slow balls: tracking noise reads as jitter)
    return {
        "speed_jitter": ours["speed_jitter"],
        "speed_jitter_real": theirs["speed_jitter"],
        "unexplained_rate": ours["unexplained_rate"],
        "teleport_rate": ours["teleport_rate"],
        "mean_speed": ours["mean_speed"],
        "mean_speed_real": theirs["mean_speed"],
    }


def point_gains(source: Source, seed: int, count: int, eps: float) -> dict:
    rng = np.random.default_rng([seed, 1])
    g = gains(source, prior(rng, count, source.latent), directions(rng, count, source.latent, eps))
    p5, median, p95 = np.percentile(g, [5, 50, 95])
    return {"median": float(median), "p5": float(p5), "p95": float(p95), "spread": float(spread(g))}


def path_gains(source: Source, balls: int, seed: int, count: int, eps: float) -> dict:
    rng = np.random.default_rng([seed, 2])
    videos, zf = source.videos(prior(rng, count, source.latent))  # (N, T, H, W), (N, T, latent)
    n, t, latent = zf.shape
    pixel = pixel_steps(videos)  # (N, T-1)
    z_step = np.linalg.norm(np.diff(zf, axis=1), axis=2)  # (N, T-1)
    along = np.divide(pixel, z_step, out=np.zeros_like(pixel), where=z_step > 0)
    points = zf[:, 1:].reshape(-1, latent)
    drawn = videos[:, 1:].reshape(len(points), *videos.shape[2:])  # G_F at those points, from the videos
    random = gains(source, points, directions(rng, len(points), latent, eps), drawn).reshape(n, t - 1)
    real = pixel_steps(to_signed(generate(count, balls, length=FRAMES, seed=seed + 31)))
    return {
        "pixel_step_spread": float(spread(pixel).mean()),
        "pixel_step_spread_real": float(spread(real).mean()),
        "video_speed_spread": float(spread(pixel.mean(axis=1))),
        "video_speed_spread_real": float(spread(real.mean(axis=1))),
        "z_step_spread": float(spread(z_step).mean()),
        "path_gain_median": float(np.median(along)),
        "path_gain_spread": float(spread(along).mean()),
        "random_gain_median": float(np.median(random)),
        "random_gain_spread": float(spread(random).mean()),
    }


def measure(source: Source, balls: int, seed: int, count: int, eps: float) -> dict:
    result = {"seed": seed, "count": count, "eps": eps, **source.provenance}
    result["points"] = point_gains(source, seed, count, eps)
    z, s, vt = spectrum_points(source, seed, min(count, SPECTRUM_POINTS))  # one SVD for both
    result["spectrum"] = spectrum(s, balls)
    result["walks"] = straight_walks(source, balls, seed, z, s, vt)
    if source.videos is not None:
        result["paths"] = path_gains(source, balls, seed, count, eps)
    return result


def markdown(result: dict) -> str:
    p = result["points"]
    lines = [
        f"G_F's gain |G(z + d) - G(z)| / |d|, |d| = {result['eps']}, {result['count']} points, seed {result['seed']}:",
        f"median {p['median']:.2f}, 5-95% {p['p5']:.2f}-{p['p95']:.2f}, spread over points {p['spread']:.0%}",
    ]
    if "spectrum" in result:
        q = result["spectrum"]
        values = ", ".join(f"{v:.1f}" for v in q["singular_values"])
        lines += [
            f"Jacobian spectrum (medians over points): {values}; participation ratio {q['participation']:.1f}",
            f"  the {q['ball_directions']} largest: spread {q['ball_gain_spread']:.0%}, largest / smallest "
            f"{q['ball_gain_ratio']:.1f}; the next / the largest {q['rest_over_largest']:.3f}",
        ]
    if "walks" in result:
        q = result["walks"]
        lines.append(
            f"Straight walks at an even pace along its steepest directions: speed jitter {q['speed_jitter']:.3f} "
            f"(real {q['speed_jitter_real']:.3f}), unexplained accelerations {q['unexplained_rate']:.1%}, "
            f"teleports {q['teleport_rate']:.1%}, mean speed {q['mean_speed']:.2f} px/frame (real "
            f"{q['mean_speed_real']:.2f})"
        )
    if "paths" in result:
        q = result["paths"]
        lines += [
            "Along the G_V's paths (spread = std / mean within a video, averaged over videos):",
            f"  pixel step spread {q['pixel_step_spread']:.0%} (real {q['pixel_step_spread_real']:.0%}); "
            f"z step spread {q['z_step_spread']:.0%}",
            f"  spread of the videos' speeds {q['video_speed_spread']:.0%} (real {q['video_speed_spread_real']:.0%})",
            f"  gain along the path: median {q['path_gain_median']:.1f}, spread {q['path_gain_spread']:.0%}; "
            f"along random directions: median {q['random_gain_median']:.1f}, spread {q['random_gain_spread']:.0%}",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m training.gain", description=__doc__.split("\n\n")[0])
    add_source_flags(p, video="... and, for the path figures, a video checkpoint (G_V) over it")
    p.add_argument("--count", type=int, default=200, help="points and videos (default 200)")
    p.add_argument("--eps", type=float, default=0.5, help="length of the random steps d in z (default 0.5)")
    p.add_argument("--seed", type=int, default=99, help="seed of z, directions and real videos (default 99)")
    p.add_argument("--json", type=Path, help="also write the result as JSON here")
    args = p.parse_args(argv)
    if args.count < 2 or args.eps <= 0:
        p.error("--count must be at least 2 and --eps positive")
    source = source_from_flags(p, args, need_video=False)
    result = measure(source, args.balls or source.balls, args.seed, args.count, args.eps)
    if args.json is not None:
        write_json(args.json, result)
    print(markdown(result))


if __name__ == "__main__":
    main()
