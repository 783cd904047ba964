"""Table 1 and the paper's figures for a trained model: `python -m training.evaluate`.

    python -m training.evaluate --frames FRAMES_CKPT --video VIDEO_CKPT --balls N --out DIR

Generated videos are G_V (from the video checkpoint) over G_F (from the frames checkpoint): give
the G_F that G_V was trained over for the model itself, or another one (e.g. trained on 1 ball)
for the paper's swap experiment. Writes DIR/table1.json, DIR/table1.md, DIR/fig3-strip.png and
DIR/fig5-isomap.png (the last needs --video).
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from balls import metrics
from balls.digest import sha256
from balls.pixels import to_signed
from balls.sequences import generate
from training import checkpoint, images
from training import data as bb
from training.build import load_frame_generator, load_sequence_generator
from training.networks import FrameGenerator, SequenceGenerator

VIDEOS = 30  # Table 1: mean and std over 30 videos
FRAMES = 30


@torch.no_grad()
def frames_of(gf: FrameGenerator, z: np.ndarray) -> np.ndarray:
    """z (..., latent) -> frames (..., H, W) in [-1, 1]."""
    lead = z.shape[:-1]
    out = gf(torch.from_numpy(z.reshape(-1, z.shape[-1])).float())[:, 0].numpy()
    return out.reshape(*lead, *out.shape[-2:])


def prior(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def interpolations(rng: np.random.Generator, count: int, steps: int, latent: int) -> np.ndarray:
    """``count`` straight lines between two prior samples, ``steps`` points each: (count, steps, latent)."""
    a, b = prior(rng, count, 1, latent), prior(rng, count, 1, latent)
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)[None, :, None]
    return (1 - t) * a + t * b


def evaluate(
    frames_ckpt: Path, video_ckpt: Path | None, balls: int | None, out: Path, seed: int = 1234
) -> dict[str, Any]:
    """Compute Table 1 (and write the figures) for G_F [and G_V]; returns the table as a dict."""
    gf, gf_cfg, gf_source = load_frame_generator(frames_ckpt)
    balls = balls or gf_cfg.balls
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)

    real = to_signed(generate(VIDEOS, balls, length=FRAMES, seed=seed))
    table: dict[str, Any] = {
        "balls": balls,
        "videos": VIDEOS,
        "seed": seed,
        "frames_checkpoint": gf_source,
        "rows": {"real": metrics.video_report(real, balls)},
    }
    random_z = frames_of(gf, prior(rng, VIDEOS, FRAMES, gf_cfg.latent))  # 30 independent z per video
    table["rows"]["random_z"] = metrics.video_report(random_z, balls)
    lines = interpolations(rng, VIDEOS, FRAMES, gf_cfg.latent)
    table["rows"]["interpolation"] = metrics.video_report(frames_of(gf, lines), balls)

    # G_F alone: balls per frame and diversity of 1,000 samples, beside real frames
    samples = frames_of(gf, prior(rng, 1000, gf_cfg.latent))
    real_frames = bb.sample_frames(generate(1000, balls, seed=seed + 1), rng, 1000)
    table["frame_samples"] = {}
    for name, f in (("real", real_frames), ("generated", samples)):
        counts = metrics.count_balls(f)
        table["frame_samples"][name] = {
            "balls_per_frame": metrics.count_histogram(counts),
            "right_count_fraction": float((counts == balls).mean()),
            "pair_distance": metrics.mean_pair_distance(f, np.random.default_rng(seed), pairs=5000),
        }

    generated = None
    if video_ckpt is not None:
        gv, gv_cfg, _ = load_sequence_generator(video_ckpt)
        with torch.no_grad():
            zf = gv(torch.from_numpy(prior(rng, VIDEOS, gv_cfg.latent))).numpy()  # (30, T, latent)
        generated = frames_of(gf, zf)
        table["rows"]["generated"] = metrics.video_report(generated, balls)
        table["video_checkpoint"] = {"path": str(video_ckpt), "sha256": sha256(video_ckpt), "balls": gv_cfg.balls}
        isomap_figure(gv, gv_cfg.latent, lines[:2], rng, out / "fig5-isomap.png")

    strip = np.concatenate([real[:3], (generated if generated is not None else random_z)[:3]])
    images.save_strip(strip, out / "fig3-strip.png")
    (out / "table1.json").write_text(json.dumps(table, indent=2) + "\n")
    (out / "table1.md").write_text(markdown(table) + "\n")
    return table


def markdown(table: dict[str, Any]) -> str:
    names = {
        "real": "Real data",
        "generated": "Proposed (G_V over G_F)",
        "random_z": "z_F,i ~ N(0, I) (independent)",
        "interpolation": "Linear interpolation of two z",
    }
    lines = [
        f"Table 1, {table['balls']} ball(s), {table['videos']} videos of {FRAMES} frames, seed {table['seed']}",
        "",
        "| row | consecutive-frame MSE | right ball count | speed (px/frame) | unexplained turns / video "
        "| distance between videos (near-identical pairs) |",
        "|---|---|---|---|---|---|",
    ]
    for key in ("real", "generated", "random_z", "interpolation"):
        if key not in table["rows"]:
            continue
        r = table["rows"][key]
        mse, motion, apart = r["consecutive_frame_mse"], r["motion"], r["between_videos"]
        lines.append(
            f"| {names[key]} | {mse['mean']:.4f} ± {mse['std']:.4f} | {r['right_count_fraction']:.1%} "
            f"| {motion['mean_speed']:.2f} | {motion['unexplained_per_video']:.2f} "
            f"| {apart['mean']:.4f} ({apart['near_identical_fraction']:.0%}) |"
        )
    fs = table["frame_samples"]
    lines += [
        "",
        "| 1,000 frames | right ball count | distance between independent frames |",
        "|---|---|---|",
        *(f"| {k} | {v['right_count_fraction']:.1%} | {v['pair_distance']:.4f} |" for k, v in fs.items()),
    ]
    return "\n".join(lines)


def isomap_figure(gv: SequenceGenerator, latent: int, lines: np.ndarray, rng: np.random.Generator, path: Path) -> None:
    """The paper's Fig. 5: 2-D Isomap of the z_F of 6 generated videos, prior samples and two
    linear interpolations between prior samples."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.manifold import Isomap

    with torch.no_grad():
        zf = gv(torch.from_numpy(prior(rng, 6, latent))).numpy()  # (6, T, latent)
    z_prior = prior(rng, 60, zf.shape[-1])
    points = np.concatenate([zf.reshape(-1, zf.shape[-1]), z_prior, lines.reshape(-1, zf.shape[-1])])
    with warnings.catch_warnings():  # separate clusters (videos vs prior) leave the graph disconnected;
        warnings.simplefilter("ignore")  # Isomap completes it, which is what the figure needs
        xy = Isomap(n_components=2, n_neighbors=10).fit_transform(points)
    t, n = zf.shape[1], zf.shape[0] * zf.shape[1]
    fig, ax = plt.subplots(figsize=(6, 5), dpi=100)
    for i in range(zf.shape[0]):
        seg = xy[i * t : (i + 1) * t]
        ax.plot(seg[:, 0], seg[:, 1], "-o", ms=2, lw=1, label="G_V videos" if i == 0 else None)
    ax.scatter(xy[n : n + len(z_prior), 0], xy[n : n + len(z_prior), 1], c="k", marker="x", s=14, label="N(0, I)")
    for j in range(len(lines)):
        seg = xy[n + len(z_prior) + j * t : n + len(z_prior) + (j + 1) * t]
        ax.plot(seg[:, 0], seg[:, 1], "--", c="grey", lw=1, label="linear interpolation" if j == 0 else None)
    ax.set_title("Isomap of z_F: generated videos, prior samples, interpolations")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=Path, required=True, help="frames checkpoint (G_F)")
    p.add_argument("--video", type=Path, help="video checkpoint (G_V); without it only the frame rows")
    p.add_argument("--balls", type=int, help="balls of the real data and of the count (default: G_F's data)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--seed", type=int, default=1234, help="seed of the real videos and the noise (default 1234)")
    args = p.parse_args(argv)
    try:
        table = evaluate(args.frames, args.video, args.balls, args.out, args.seed)
    except checkpoint.CheckpointError as exc:
        raise SystemExit(str(exc)) from None
    print(markdown(table))


if __name__ == "__main__":
    main()
