"""Sample GIFs of the exported variants (and of real data) for the README:
`python -m inference.samples --out docs/samples --seeds 0,1,2,3`.

Each file is the service's GIF for that seed (same bytes as /generate_video with that seed, fps
and scale), named VARIANT-seedN.gif; real-Nballs-seedN.gif are simulator videos beside them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from balls.metrics import consecutive_frame_mse
from balls.pixels import to_pixels, to_signed
from balls.sequences import real_video
from inference.media import encode_gif
from inference.models import latent_from_seed, load_variants


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m inference.samples", description=__doc__.split("\n\n")[0])
    p.add_argument("--models", type=Path, default=Path("models"), help="models folder (default models/)")
    p.add_argument("--out", type=Path, required=True, help="folder for the GIFs")
    p.add_argument("--seeds", default="0,1,2,3", help="comma-separated seeds")
    p.add_argument("--scale", type=int, default=3, help="integer upscaling (default 3: 90x90 pixels)")
    p.add_argument("--fps", type=int, default=10)
    args = p.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    variants, _ = load_variants(args.models)
    args.out.mkdir(parents=True, exist_ok=True)
    balls = set()
    for name, variant in variants.items():
        z = np.stack([latent_from_seed(s, variant.latent) for s in seeds])
        videos = variant.generate_videos(z)
        for s, video in zip(seeds, videos, strict=True):
            path = args.out / f"{name}-seed{s}.gif"
            path.write_bytes(encode_gif(to_pixels(video), args.fps, args.scale))
            print(f"{path}  MSE {consecutive_frame_mse(video):.4f}")
        balls.add(variant.entry.get("video_balls", 3))
        balls.add(variant.entry.get("frames_balls", 3))
    for n in sorted(balls):
        for s in seeds:
            video = real_video(s, n)
            path = args.out / f"real-{n}ball{'s' if n > 1 else ''}-seed{s}.gif"
            path.write_bytes(encode_gif(video, args.fps, args.scale))
            print(f"{path}  MSE {consecutive_frame_mse(to_signed(video)):.4f}")


if __name__ == "__main__":
    main()
