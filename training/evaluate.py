"""Table 1, the physics of the motion, the two-sample test and the paper's figures: `python -m training.evaluate`.

    python -m training.evaluate --frames FRAMES_CKPT [--video VIDEO_CKPT] [--balls N] --out DIR
    python -m training.evaluate --models models --variant 3balls [--out DIR] [--json OUT.json] [--no-c2st]

Generated videos come from checkpoints (G_V from the video checkpoint over G_F from the frames
checkpoint: give the G_F that G_V was trained over for the model itself, or another one, e.g.
trained on 1 ball, for the paper's swap) or from an exported variant run in ONNX Runtime (no torch
needed unless the two-sample test runs). Writes table1.json / table1.md (Table 1 on 30 videos,
``motion`` and ``motion_real``: the physics of balls.motion on ``--motion-videos`` generated and real
videos, with Table 1's MSE (mean and slowest video) and the right-count fraction on those videos,
``c2st``: training.c2st's held-out accuracies) and, with --out, fig3-strip.png, fig5-isomap.png and
paths.png (tracked ball paths, real beside generated).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from balls import manifest as card
from balls import metrics, motion
from balls.digest import sha256
from balls.pixels import to_signed
from balls.sequences import generate
from training import data as bb
from training import images

VIDEOS = 30  # Table 1: mean and std over 30 videos
FRAMES = 30


@dataclass
class Source:
    """What is evaluated: z (N, latent) -> frames (N, H, W); z_v (N, latent) -> (videos, z_F) or None."""

    frames: Callable[[np.ndarray], np.ndarray]
    videos: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None
    latent: int
    balls: int  # the balls of G_F's training data
    provenance: dict[str, Any]


def from_checkpoints(frames_ckpt: Path, video_ckpt: Path | None) -> Source:
    import torch

    from training.build import load_frame_generator, load_sequence_generator

    gf, gf_cfg, gf_source = load_frame_generator(frames_ckpt)

    @torch.no_grad()
    def frames(z: np.ndarray) -> np.ndarray:
        return np.concatenate(
            [gf(torch.from_numpy(c).float())[:, 0].numpy() for c in np.array_split(z, -(-len(z) // 512))]
        )

    provenance: dict[str, Any] = {"frames_checkpoint": gf_source}
    videos = None
    if video_ckpt is not None:
        gv, gv_cfg, _ = load_sequence_generator(video_ckpt)
        provenance["video_checkpoint"] = {"path": str(video_ckpt), "sha256": sha256(video_ckpt), "balls": gv_cfg.balls}

        @torch.no_grad()
        def videos(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            zf = gv(torch.from_numpy(z).float()).numpy()  # (N, T, latent)
            return frames(zf.reshape(-1, zf.shape[-1])).reshape(*zf.shape[:2], 30, 30), zf

    return Source(frames, videos, gf_cfg.latent, gf_cfg.balls, provenance)


def from_exported(folder: Path, variant: str) -> Source:
    """An exported variant in ONNX Runtime, read through the manifest (numpy and onnxruntime only)."""
    import onnxruntime as ort

    manifest = card.read(folder)
    if variant not in manifest["variants"]:
        raise card.ManifestError(
            f"{card.path_of(folder)}: no variant {variant!r}; has {', '.join(manifest['variants'])}"
        )
    entry = manifest["variants"][variant]
    sessions = {}
    for kind in card.KINDS:
        path, _ = card.model_file(folder, entry, kind)
        sessions[kind] = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def frames(z: np.ndarray) -> np.ndarray:
        return sessions["frames"].run(["frames"], {"z": z.astype(np.float32)})[0][:, 0]

    def videos(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = [sessions["video"].run(None, {"z": c.astype(np.float32)}) for c in np.array_split(z, -(-len(z) // 64))]
        return np.concatenate([o[0] for o in out]), np.concatenate([o[1] for o in out])

    provenance = {"models": str(folder), "variant": variant, "files": entry["files"]}
    return Source(frames, videos, entry["latent"], entry.get("frames_balls", 3), provenance)


def open_source(frames: Path | None, video: Path | None, models: Path | None, variant: str | None) -> Source:
    """For a command line: an exported variant (``models``, ``variant``) or checkpoints (``frames``,
    ``video``); a missing or bad file exits with its message. torch is imported for checkpoints only."""
    if models is not None:
        try:
            return from_exported(models, variant)
        except card.ManifestError as exc:
            raise SystemExit(str(exc)) from None
    from training import checkpoint

    try:
        return from_checkpoints(frames, video)
    except (checkpoint.CheckpointError, card.ManifestError) as exc:
        raise SystemExit(str(exc)) from None


def add_source_flags(p: argparse.ArgumentParser, video: str) -> None:
    """The flags that name what a diagnostic measures: checkpoints or an exported variant, and the
    balls of the real videos it is compared with. ``video``: the help of --video."""
    p.add_argument("--frames", type=Path, help="frames checkpoint (G_F) ...")
    p.add_argument("--video", type=Path, help=video)
    p.add_argument("--models", type=Path, help="an exported models folder (instead of checkpoints) ...")
    p.add_argument("--variant", help="... and the variant in it")
    p.add_argument("--balls", type=int, help="balls of the real videos (default: G_F's data)")


def source_from_flags(p: argparse.ArgumentParser, args: argparse.Namespace, need_video: bool) -> Source:
    """The source that ``add_source_flags``' flags name; a bad combination is the parser's error."""
    if args.models is not None:
        if not args.variant or args.frames or args.video:
            p.error("--models needs --variant, and no --frames or --video")
    elif args.frames is None or (need_video and args.video is None):
        p.error("give --models with --variant, or --frames with --video" if need_video else
                "give --frames (and optionally --video), or --models with --variant")  # fmt: skip
    return open_source(args.frames, args.video, args.models, args.variant)


def write_json(path: Path, value: Any) -> None:
    """``value`` as indented JSON at ``path`` (the folder made if missing): a command's --json."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2) + "\n")


def prior(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def interpolations(rng: np.random.Generator, count: int, steps: int, latent: int) -> np.ndarray:
    """``count`` straight lines between two prior samples, ``steps`` points each: (count, steps, latent)."""
    a, b = prior(rng, count, 1, latent), prior(rng, count, 1, latent)
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)[None, :, None]
    return (1 - t) * a + t * b


def table1(source: Source, balls: int, seed: int) -> dict[str, Any]:
    """Table 1's rows (30 videos each) and G_F's balls per frame on 1,000 samples."""
    rng = np.random.default_rng(seed)
    real = to_signed(generate(VIDEOS, balls, length=FRAMES, seed=seed))
    table: dict[str, Any] = {"balls": balls, "videos": VIDEOS, "seed": seed, **source.provenance}
    table["rows"] = {"real": metrics.video_report(real, balls)}
    random_z = source.frames(prior(rng, VIDEOS * FRAMES, source.latent)).reshape(VIDEOS, FRAMES, 30, 30)
    table["rows"]["random_z"] = metrics.video_report(random_z, balls)
    lines = interpolations(rng, VIDEOS, FRAMES, source.latent)
    table["rows"]["interpolation"] = metrics.video_report(source.frames(lines.reshape(-1, source.latent)).reshape(
        VIDEOS, FRAMES, 30, 30), balls)  # fmt: skip
    samples = source.frames(prior(rng, 1000, source.latent))
    real_frames = bb.sample_frames(generate(1000, balls, seed=seed + 1), rng, 1000)
    table["frame_samples"] = {}
    for name, f in (("real", real_frames), ("generated", samples)):
        counts = metrics.count_balls(f)
        table["frame_samples"][name] = {
            "balls_per_frame": metrics.count_histogram(counts),
            "right_count_fraction": float((counts == balls).mean()),
            "pair_distance": metrics.mean_pair_distance(f, np.random.default_rng(seed), pairs=5000),
        }
    if source.videos is not None:
        generated, _ = source.videos(prior(rng, VIDEOS, source.latent))
        table["rows"]["generated"] = metrics.video_report(generated, balls)
    table["_strip"] = np.concatenate([real[:3], (generated if source.videos is not None else random_z)[:3]])
    table["_lines"] = lines[:2]
    return table


def physics(source: Source, balls: int, seed: int, count: int) -> dict[str, Any]:
    """balls.motion's measures of ``count`` generated and ``count`` real videos; the speed distance
    of both is taken to another ``count`` real videos (so that the real row's is not 0 by definition)."""
    rng = np.random.default_rng([seed, 7])
    real = to_signed(generate(count, balls, length=FRAMES, seed=seed + 11))
    reference = motion.speeds_of(to_signed(generate(count, balls, length=FRAMES, seed=seed + 12)), balls)
    real_row = {**motion.motion_report(real, balls, reference), **mse_and_count(real, balls)}
    out = {"videos": count, "motion_real": real_row, "_real": real}
    if source.videos is not None:
        generated, _ = source.videos(prior(rng, count, source.latent))
        out["motion"] = {**motion.motion_report(generated, balls, reference), **mse_and_count(generated, balls)}
        out["_generated"] = generated
    return out


def mse_and_count(videos: np.ndarray, balls: int) -> dict[str, float]:
    """Table 1's metric and the ball count on the physics videos (Table 1 itself has 30): the mean
    consecutive-frame MSE, the slowest video's (a frozen video shows near 0), the right-count fraction."""
    each = metrics.consecutive_frame_mse(videos)
    return {"mse": float(each.mean()), "lowest_mse": float(each.min()),
            "right_count": float((metrics.count_balls(videos) == balls).mean())}  # fmt: skip


def two_sample(source: Source, balls: int, seed: int, protocol) -> dict[str, Any]:
    from training import c2st

    n = protocol.train + protocol.test
    rng = np.random.default_rng([seed, 8])
    real = to_signed(generate(n, balls, length=FRAMES, seed=seed + 21))
    fake, _ = source.videos(prior(rng, n, source.latent))
    t0 = time.perf_counter()
    result = c2st.two_sample_test(real, fake, protocol)
    return {**result, "protocol": protocol.__dict__, "seconds": time.perf_counter() - t0}


def evaluate(
    source: Source,
    balls: int | None,
    out: Path | None,
    seed: int = 1234,
    motion_videos: int = 200,
    run_c2st: bool = True,
    c2st_protocol=None,
) -> dict[str, Any]:
    """Everything above for one source; writes table1.json / table1.md and the figures into ``out``."""
    balls = balls or source.balls
    table = table1(source, balls, seed)
    phys = physics(source, balls, seed, motion_videos)
    table["motion_videos"] = motion_videos
    table["motion_real"] = phys["motion_real"]
    if "motion" in phys:
        table["motion"] = phys["motion"]
    if run_c2st and source.videos is not None:
        from training.c2st import Protocol

        table["c2st"] = two_sample(source, balls, seed, c2st_protocol or Protocol())
    strip, lines = table.pop("_strip"), table.pop("_lines")
    if out is not None:
        from training import figures

        out.mkdir(parents=True, exist_ok=True)
        images.save_strip(strip, out / "fig3-strip.png")
        if source.videos is not None:
            rng = np.random.default_rng([seed, 9])
            _, zf = source.videos(prior(rng, 6, source.latent))
            figures.isomap_figure(zf, prior(rng, 60, zf.shape[-1]), lines, out / "fig5-isomap.png")
            figures.paths_figure(phys["_real"], phys["_generated"], balls, out / "paths.png")
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
        mse, turns, apart = r["consecutive_frame_mse"], r["motion"], r["between_videos"]
        lines.append(
            f"| {names[key]} | {mse['mean']:.4f} ± {mse['std']:.4f} | {r['right_count_fraction']:.1%} "
            f"| {turns['mean_speed']:.2f} | {turns['unexplained_per_video']:.2f} "
            f"| {apart['mean']:.4f} ({apart['near_identical_fraction']:.0%}) |"
        )
    fs = table["frame_samples"]
    lines += [
        "",
        "| 1,000 frames | right ball count | distance between independent frames |",
        "|---|---|---|",
        *(f"| {k} | {v['right_count_fraction']:.1%} | {v['pair_distance']:.4f} |" for k, v in fs.items()),
        "",
        f"Physics of the motion ({table['motion_videos']} videos each; balls.motion)",
        "",
        "| videos | teleport steps (> 4 px) | unexplained accelerations | speed W1 (px/frame) | energy spread "
        "| speed jitter | mean speed | consecutive-frame MSE (slowest video) | right ball count |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, name in (("motion_real", "real"), ("motion", "generated")):
        if key in table:
            m = table[key]
            lines.append(
                f"| {name} | {m['teleport_rate']:.1%} | {m['unexplained_rate']:.1%} | {m['speed_w1']:.3f} "
                f"| {m['energy_spread']:.3f} | {m['speed_jitter']:.3f} | {m['mean_speed']:.2f} "
                f"| {m['mse']:.4f} ({m['lowest_mse']:.4f}) "
                f"| {m['right_count']:.1%} |"
            )
    if "c2st" in table:
        c = table["c2st"]
        p = c["protocol"]
        lines += [
            "",
            f"Classifier two-sample test (held-out accuracy, 95% interval; {p['train']} + {p['test']} videos "
            "per class)",
            "",
            "| view | accuracy | 95% interval |",
            "|---|---|---|",
            *(
                f"| {v} | {c[v]['accuracy']:.3f} | {c[v]['ci95'][0]:.3f}–{c[v]['ci95'][1]:.3f} |"
                for v in ("video", "motion", "frame")
            ),
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=Path, help="frames checkpoint (G_F)")
    p.add_argument("--video", type=Path, help="video checkpoint (G_V); without it only the frame rows")
    p.add_argument("--models", type=Path, help="an exported models folder (instead of checkpoints) ...")
    p.add_argument("--variant", help="... and the variant in it to evaluate")
    p.add_argument("--balls", type=int, help="balls of the real data and of the count (default: G_F's data)")
    p.add_argument("--out", type=Path, help="output folder: table1.json, table1.md, figures")
    p.add_argument("--json", type=Path, help="also write the table as JSON here")
    p.add_argument("--seed", type=int, default=1234, help="seed of the real videos and the noise (default 1234)")
    p.add_argument("--motion-videos", type=int, default=200, help="videos per physics figure (default 200)")
    p.add_argument("--no-c2st", action="store_true", help="skip the classifier two-sample test (needs torch)")
    p.add_argument("--c2st-videos", type=int, default=500, help="train and test videos per class (default 500)")
    args = p.parse_args(argv)
    if (args.frames is None) == (args.models is None):
        p.error("give either --frames (checkpoints) or --models with --variant (an exported variant)")
    if args.models is not None and not args.variant:
        p.error("--models needs --variant")
    if args.models is not None and args.video is not None:
        p.error("--video goes with --frames; an exported variant has its own video model")
    if args.out is None and args.json is None:
        p.error("give --out, --json or both")
    source = open_source(args.frames, args.video, args.models, args.variant)
    protocol = None
    if not args.no_c2st and source.videos is not None:
        try:
            from training.c2st import Protocol
        except ImportError as exc:
            raise SystemExit(f"the two-sample test needs torch ({exc}); pass --no-c2st") from None
        protocol = Protocol(train=args.c2st_videos, test=args.c2st_videos)
    table = evaluate(source, args.balls, args.out, args.seed, args.motion_videos, not args.no_c2st, protocol)
    if args.json is not None:
        write_json(args.json, table)
    print(markdown(table))


if __name__ == "__main__":
    main()
