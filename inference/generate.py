"""Videos and frames from the exported models without a server: `python -m inference.generate`.

    python -m inference.generate --seed 7 --format mp4 -o v.mp4             one video
    python -m inference.generate --seed 0 --count 16 -o out/                 16 files + out/metrics.json
    python -m inference.generate --seed 7 --frame -o f.png                   one frame of G_F

The same seed, model and options give the same bytes as the service's /generate_video and
/generate_frame (the same z, the same ONNX models, the same encoders). No torch.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from balls import motion
from balls.metrics import consecutive_frame_mse, count_balls
from balls.pixels import to_pixels, to_signed
from inference.media import encode_png, encode_video
from inference.models import ModelError, Variant, latent_from_seed, load_variants

BATCH = 32  # videos per ONNX run


def videos(variant: Variant, seeds: list[int]) -> np.ndarray:
    """Video pixels uint8 (N, T, 30, 30) of the seeds, as the service makes them."""
    z = np.stack([latent_from_seed(s, variant.latent) for s in seeds])
    return np.concatenate([to_pixels(variant.generate_videos(z[i : i + BATCH])) for i in range(0, len(z), BATCH)])


def metrics_of(pixels: np.ndarray, n_balls: int) -> dict:
    """What the service reports beside each video: MSE, balls per frame, motion rates, tracked centres."""
    signed = to_signed(pixels)
    moves = motion.per_video(signed[None], n_balls)[0]
    return {
        "mse": float(consecutive_frame_mse(signed)),
        "balls_per_frame": count_balls(signed).tolist(),
        "teleport_rate": moves["teleport_rate"],
        "unexplained_rate": moves["unexplained_rate"],
        "centres": moves["centres"],
    }


def progress(done: int, total: int) -> None:
    if total > 1:
        width = 30
        filled = width * done // total
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} videos")
        if done == total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m inference.generate", description=__doc__.split("\n\n")[0])
    p.add_argument("--models", type=Path, default=Path(__file__).resolve().parent.parent / "models",
                   help="exported models folder (default: the shipped models/)")  # fmt: skip
    p.add_argument("--model", help="variant (default: the manifest's)")
    p.add_argument("--seed", type=int, default=0, help="seed of the (first) video (default 0)")
    p.add_argument("--count", type=int, default=1, help="videos with seeds seed, seed+1, ...; > 1 writes into a folder")
    p.add_argument("--format", choices=["gif", "mp4"], default="gif")
    p.add_argument("--fps", type=int, default=10)
    p.add_argument("--scale", type=int, default=4, help="integer upscaling of the 30x30 frames (default 4)")
    p.add_argument("--frame", action="store_true", help="one PNG frame of G_F instead of a video")
    p.add_argument("-o", "--out", type=Path, required=True, help="output file (one) or folder (--count > 1)")
    args = p.parse_args(argv)
    for name, low, high in (("count", 1, 10_000), ("fps", 1, 60), ("scale", 1, 16), ("seed", 0, 2**63 - 1)):
        if not low <= getattr(args, name) <= high:
            p.error(f"--{name} must be in {low}..{high}")
    if args.frame and args.count != 1:
        p.error("--frame makes one PNG; leave out --count")
    try:
        variants, default = load_variants(args.models)
    except ModelError as exc:
        raise SystemExit(f"cannot load models: {exc}") from None
    name = args.model or default
    if name not in variants:
        p.error(f"unknown model {name!r}; available: {', '.join(variants)}")
    variant = variants[name]
    if args.frame:
        frame = to_pixels(variant.generate_frames(latent_from_seed(args.seed, variant.latent)[None])[0])
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_bytes(encode_png(frame, args.scale))
        print(f"wrote {args.out} ({name}, seed {args.seed})")
        return
    n_balls = int(variant.entry.get("frames_balls", 3))
    seeds = list(range(args.seed, args.seed + args.count))
    if args.count == 1:
        pixels = videos(variant, seeds)[0]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_bytes(encode_video(pixels, args.format, args.fps, args.scale))
        m = metrics_of(pixels, n_balls)
        print(f"wrote {args.out} ({name}, seed {args.seed}): MSE {m['mse']:.4f}, "
              f"teleports {m['teleport_rate']:.0%}, unexplained {m['unexplained_rate']:.0%}")  # fmt: skip
        return
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    progress(0, len(seeds))
    for start in range(0, len(seeds), BATCH):
        chunk = seeds[start : start + BATCH]
        for seed, pixels in zip(chunk, videos(variant, chunk), strict=True):
            path = args.out / f"{name}-seed{seed}.{args.format}"
            path.write_bytes(encode_video(pixels, args.format, args.fps, args.scale))
            rows.append({"seed": seed, "file": path.name, **metrics_of(pixels, n_balls)})
        progress(len(rows), len(seeds))
    mse = [r["mse"] for r in rows]
    summary = {"model": name, "format": args.format, "fps": args.fps, "scale": args.scale, "videos": rows,
               "mse_mean": float(np.mean(mse)), "mse_std": float(np.std(mse))}  # fmt: skip
    (args.out / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {len(rows)} videos and metrics.json to {args.out} ({name}): mean MSE {summary['mse_mean']:.4f}")


if __name__ == "__main__":
    main()
