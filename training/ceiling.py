"""The manifold ceiling: how much real motion a G_F lets a walker in its latent space reproduce.

Real videos are projected into a frozen G_F frame by frame: z is optimised (Adam on the pixel MSE
between G_F(z) and the real frame), the first frame from ``starts`` random prior draws (the best
kept), every later frame warm-started from the previous frame's z. The re-rendered videos
G_F(z_1..z_30) are then measured like generated ones (Table 1 MSE, ball counts, the physics of
balls.motion) together with the reconstruction error and the path in z: a perfect G_V over this
G_F could do no better than these videos.

    python -m training.ceiling --frames CKPT [--balls N] [--videos 20] [--json OUT.json]

With ``--write-data OUT.npy`` the re-rendered videos are also written as a training data set (the
uint8 form of ``training.data``, 30 frames a sequence) that stage 2 takes with ``--data``: real
motion drawn by the frozen G_F itself, so the video discriminators cannot tell real from generated
by the look of G_F's frames and have to judge the motion.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from balls import metrics, motion
from balls.pixels import to_pixels, to_signed
from balls.sequences import generate
from training import checkpoint
from training.build import load_frame_generator
from training.networks import FrameGenerator


def _fit(gf: FrameGenerator, target: torch.Tensor, z: torch.Tensor, steps: int, lr: float) -> torch.Tensor:
    """z (B, L) optimised so that G_F(z) matches target (B, 1, H, W); returns the optimised z."""
    z = z.clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        ((gf(z) - target) ** 2).mean(dim=(1, 2, 3)).sum().backward()
        opt.step()
    return z.detach()


def project(
    gf: FrameGenerator, videos: np.ndarray, steps: int = 200, starts: int = 4, lr: float = 0.05, seed: int = 0
) -> np.ndarray:
    """z (B, T, L) whose frames G_F(z) reproduce real (B, T, H, W) videos in [-1, 1]."""
    gf = gf.eval().requires_grad_(False)
    b, t = videos.shape[:2]
    x = torch.from_numpy(np.ascontiguousarray(videos, dtype=np.float32))[:, :, None]  # (B, T, 1, H, W)
    gen = torch.Generator().manual_seed(seed)
    first = torch.randn(starts * b, gf.latent, generator=gen)
    candidates = _fit(gf, x[:, 0].repeat(starts, 1, 1, 1), first, steps, lr)
    with torch.no_grad():
        err = ((gf(candidates) - x[:, 0].repeat(starts, 1, 1, 1)) ** 2).mean(dim=(1, 2, 3)).view(starts, b)
    z = candidates.view(starts, b, -1)[err.argmin(dim=0), torch.arange(b)]  # the best start per video
    path = [z]
    for i in range(1, t):
        z = _fit(gf, x[:, i], z, steps, lr)
        path.append(z)
    return torch.stack(path, dim=1).numpy()


@torch.no_grad()
def draw(gf: FrameGenerator, z: np.ndarray) -> np.ndarray:
    """G_F's frames along paths z (B, T, L): videos (B, T, H, W) in [-1, 1]."""
    frames = gf(torch.from_numpy(z.reshape(-1, z.shape[-1])))[:, 0].numpy()
    return frames.reshape(*z.shape[:2], *frames.shape[-2:])


def ceiling(gf: FrameGenerator, balls: int, videos: int = 20, seed: int = 0, steps: int = 200) -> dict[str, Any]:
    """Project ``videos`` real videos (data seed ``seed``) and measure the re-rendered ones."""
    real = to_signed(generate(videos, balls, length=30, seed=seed))
    z = project(gf, real, steps=steps, seed=seed)
    rendered = draw(gf, z)
    real_speeds = motion.speeds_of(real, balls)
    step = np.linalg.norm(np.diff(z, axis=1), axis=-1)
    return {
        "balls": balls,
        "videos": videos,
        "steps_per_frame": steps,
        "binarised_error": float(np.mean(metrics.binarize(rendered) != metrics.binarize(real))),
        "z_norm_mean": float(np.linalg.norm(z, axis=-1).mean()),
        "prior_shell": float(np.sqrt(z.shape[-1])),
        "z_step_median": float(np.median(step)),
        "rendered": {
            **metrics.video_report(rendered, balls),
            "physics": motion.motion_report(rendered, balls, real_speeds),
        },
        "real": {**metrics.video_report(real, balls), "physics": motion.motion_report(real, balls, real_speeds)},
    }


def write_rerendered(
    gf: FrameGenerator, balls: int, videos: int, path: Path, seed: int, steps: int = 200, chunk: int = 250
) -> dict[str, Any]:
    """Project ``videos`` real videos (data seed ``seed``) ``chunk`` at a time and write G_F's
    re-rendering of them to ``path`` as a data set (uint8, (videos, 30, 30, 30)); the file appears
    under its name only when complete. Returns the figures of the whole set."""
    real = generate(videos, balls, length=30, seed=seed)  # uint8
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    out = np.lib.format.open_memmap(partial, mode="w+", dtype=np.uint8, shape=real.shape)
    try:
        for start in range(0, videos, chunk):
            signed = to_signed(real[start : start + chunk])
            out[start : start + chunk] = to_pixels(draw(gf, project(gf, signed, steps=steps, seed=seed + start)))
            print(f"re-rendered {min(start + chunk, videos)}/{videos} videos", flush=True)
        out.flush()
        rendered = to_signed(np.asarray(out))
    finally:
        del out
    os.replace(partial, path)
    signed = to_signed(real)
    return {
        "videos": videos,
        "data_seed": seed,
        "binarised_error": float(np.mean(metrics.binarize(rendered) != metrics.binarize(signed))),
        "right_count": metrics.video_report(rendered, balls)["right_count_fraction"],
        "real_right_count": metrics.video_report(signed, balls)["right_count_fraction"],
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m training.ceiling", description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=Path, required=True, help="frames checkpoint (G_F)")
    p.add_argument("--balls", type=int, help="balls of the real videos (default: G_F's data)")
    p.add_argument("--videos", type=int, default=20, help="real videos to project (default 20)")
    p.add_argument("--steps", type=int, default=200, help="Adam steps per frame (default 200)")
    p.add_argument("--seed", type=int, default=0, help="data seed of the real videos and of the starts")
    p.add_argument("--json", type=Path, help="write the figures here")
    p.add_argument(
        "--write-data",
        type=Path,
        help="instead: re-render --videos real videos (data seed --seed) into a stage-2 data set (.npy) here",
    )
    args = p.parse_args(argv)
    try:
        gf, cfg, _ = load_frame_generator(args.frames)
    except checkpoint.CheckpointError as exc:
        raise SystemExit(str(exc)) from None
    if args.write_data:
        figures = write_rerendered(gf, args.balls or cfg.balls, args.videos, args.write_data, args.seed, args.steps)
        print(
            f"wrote {args.write_data}: {figures['videos']} videos, binarised error {figures['binarised_error']:.4f}, "
            f"right count {figures['right_count']:.1%} (real {figures['real_right_count']:.1%})"
        )
        return
    out = ceiling(gf, args.balls or cfg.balls, args.videos, args.seed, args.steps)
    out["frames_checkpoint"] = str(args.frames)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    r, phys = out["rendered"], out["rendered"]["physics"]
    print(
        f"binarised error {out['binarised_error']:.4f}, |z| {out['z_norm_mean']:.1f} "
        f"(prior shell {out['prior_shell']:.1f}), "
        f"z step {out['z_step_median']:.2f}/frame; re-rendered: MSE {r['consecutive_frame_mse']['mean']:.4f}, "
        f"right count {r['right_count_fraction']:.1%}, teleports {phys['teleport_rate']:.1%}, "
        f"unexplained {phys['unexplained_rate']:.1%}, speed W1 {phys['speed_w1']:.3f}"
    )


if __name__ == "__main__":
    main()
