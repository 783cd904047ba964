"""Train the two steps: `python -m training.run --stage frames|video|all --preset paper|cpu|smoke ...`.

Stage 1 (frames) trains G_F on single frames against K frame discriminators; stage 2 (video)
trains G_V over the frozen G_F against K video discriminators. Each stage writes its run folder
RUN_DIR/<stage>/: config.json, stats.jsonl, sample PNGs, checkpoint-<step>.pt, latest.pt.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training import checkpoint, images, metrics
from training import data as bb
from training.config import (
    FRAMES,
    PRESETS,
    VIDEO,
    FramesConfig,
    StageConfig,
    VideoConfig,
    config_from_dict,
    differences,
    make_config,
)
from training.datasets import FrameDataset, VideoDataset
from training.loop import Stage, fit, resolve_device
from training.networks import DiscriminatorEnsemble, FrameGenerator, SequenceGenerator, VideoGenerator, parameter_count

EVAL_VIDEOS = 30  # Table 1 averages over 30 videos (or 30 independent frames)
# fields that may change when resuming: how long to train and how often to report
RESUMABLE_CHANGES = ("steps", "epochs", "log_every", "eval_every", "sample_every", "checkpoint_every")
RESUMABLE_CHANGES += ("keep_checkpoints", "amp")


# ---------------------------------------------------------------- networks


def build_frame_generator(cfg: FramesConfig) -> FrameGenerator:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return FrameGenerator(latent=cfg.latent, width=cfg.g_width)


def build_sequence_generator(cfg: VideoConfig, frame_latent: int) -> SequenceGenerator:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed + 1)
        return SequenceGenerator(
            latent=cfg.latent, frame_latent=frame_latent, frames=cfg.video_length, fc=cfg.fc,
            seq_features=cfg.seq_features, lstm_hidden=cfg.lstm_hidden, lstm_layers=cfg.lstm_layers,
            out_scale=cfg.zf_scale, sphere=cfg.zf_sphere,
        )  # fmt: skip


def build_discriminators(cfg: StageConfig, kind: str) -> DiscriminatorEnsemble:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed + (2 if kind == "frame" else 3))
        return DiscriminatorEnsemble(
            kind=kind, count=cfg.d_count, width=cfg.d_width, seed=cfg.seed * 7 + (0 if kind == "frame" else 1),
            minibatch_std=cfg.minibatch_std, spectral_norm=cfg.spectral_norm,
        )  # fmt: skip


def load_frame_generator(path: Path) -> tuple[FrameGenerator, FramesConfig, dict[str, Any]]:
    """G_F of a frames checkpoint (eval mode), its config, and where it came from."""
    ckpt = checkpoint.load(path, stage=FRAMES)
    cfg = config_from_dict(FRAMES, ckpt["config"])
    gf = FrameGenerator(latent=cfg.latent, width=cfg.g_width)
    gf.load_state_dict(ckpt["generator"])
    source = {"path": str(path), "step": ckpt["step"], "sha256": sha256(path), "balls": cfg.balls}
    return gf.eval(), cfg, source


def load_sequence_generator(path: Path) -> tuple[SequenceGenerator, VideoConfig, dict[str, Any]]:
    """G_V of a video checkpoint (eval mode), its config, and the checkpoint (which also holds the G_F
    it was trained over, under "frames_generator")."""
    ckpt = checkpoint.load(path, stage=VIDEO)
    cfg = config_from_dict(VIDEO, ckpt["config"])
    gv = build_sequence_generator(cfg, ckpt["frames_config"]["latent"])
    gv.load_state_dict(ckpt["generator"])
    return gv.eval(), cfg, ckpt


def same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------- data


def open_training_data(cfg: StageConfig, data_arg: str | None, out: Path, res: int = 30) -> np.ndarray | None:
    """The memory-mapped training sequences; None for 'stream' (simulate every batch).

    Without --data, the preset's data set is written once to RUN_DIR/data/ and reused.
    """
    if data_arg == "stream":
        return None
    if data_arg is not None:
        seqs = bb.open_dataset(data_arg)
    else:
        name = f"bb{cfg.balls}-n{cfg.data_sequences}-len{cfg.data_length}-seed{cfg.seed}.npy"
        path = out / "data" / name
        if not path.exists():
            print(f"writing the training data set {path} ...", flush=True)
            bb.write_dataset(path, cfg.data_sequences, cfg.balls, cfg.data_length, res, cfg.seed, progress=True)
        seqs = bb.open_dataset(path)
    if seqs.shape[-1] != res:
        raise ValueError(f"the networks make {res}x{res} frames; the data set has {seqs.shape[-1]}x{seqs.shape[-1]}")
    return seqs


def batch_source(cfg: StageConfig, seqs: np.ndarray | None, kind: str, device: torch.device, length: int = 30):
    """step -> real batch on the device: (B, 1, H, W) frames or (B, length, H, W) windows."""
    if seqs is None:

        def simulated(step: int) -> torch.Tensor:
            rng = np.random.default_rng([cfg.seed, 2, step])
            x = bb.simulate_batch(rng, "frames" if kind == "frame" else "windows", cfg.batch, cfg.balls, length=length)
            t = torch.from_numpy(x)
            return (t[:, None] if kind == "frame" else t).to(device)

        return simulated

    ds = FrameDataset(seqs, seed=cfg.seed) if kind == "frame" else VideoDataset(seqs, length=length, seed=cfg.seed)
    per_epoch = max(1, len(ds) // cfg.batch)

    def from_file(step: int) -> torch.Tensor:
        epoch, i = divmod(step, per_epoch)
        ds.set_epoch(epoch)
        order = np.random.default_rng([cfg.seed, 1, epoch]).permutation(len(ds))
        idx = order[i * cfg.batch : (i + 1) * cfg.batch]
        if len(idx) < cfg.batch:  # fewer sequences than a batch: draw with replacement
            idx = np.random.default_rng([cfg.seed, 1, epoch]).integers(0, len(ds), cfg.batch)
        return torch.stack([ds[int(j)] for j in idx]).to(device)

    return from_file


# ---------------------------------------------------------------- stages


def fixed_noise(seed: int, n: int, latent: int, device: torch.device) -> torch.Tensor:
    return torch.randn(n, latent, generator=torch.Generator().manual_seed(seed + 99_991)).to(device)


def frames_stage(cfg: FramesConfig, folder: Path, device: torch.device, seqs: np.ndarray | None) -> Stage:
    gf = build_frame_generator(cfg).to(device)
    disc = build_discriminators(cfg, "frame").to(device)
    z_eval = fixed_noise(cfg.seed, 256, cfg.latent, device)

    @torch.no_grad()
    def evaluate(step: int) -> dict[str, Any]:
        frames = gf(z_eval)[:, 0].float().cpu().numpy()  # (256, H, W)
        counts = metrics.count_balls(frames)
        if step % cfg.sample_every == 0 or step == cfg.total_steps:
            images.save_grid(frames[:64], folder / f"samples-{step:07d}.png")
        return {
            "random_z_mse": metrics.consecutive_frame_mse(frames[:EVAL_VIDEOS]),  # Table 1's N(0, I) row
            "right_count": float((counts == cfg.balls).mean()),
        }

    return Stage(FRAMES, cfg, folder, device, gf, gf, disc, batch_source(cfg, seqs, "frame", device), evaluate)


def video_stage(
    cfg: VideoConfig,
    folder: Path,
    device: torch.device,
    seqs: np.ndarray | None,
    frame_generator: tuple[FrameGenerator, FramesConfig, dict[str, Any]],
) -> Stage:
    gf, gf_cfg, source = frame_generator
    gv = build_sequence_generator(cfg, gf_cfg.latent)
    vg = VideoGenerator(gv, gf).to(device)
    disc = build_discriminators(cfg, "video").to(device)
    z_eval = fixed_noise(cfg.seed, EVAL_VIDEOS, cfg.latent, device)

    @torch.no_grad()
    def evaluate(step: int) -> dict[str, Any]:
        videos = vg(z_eval)[0].float().cpu().numpy()  # (30, T, H, W)
        if step % cfg.sample_every == 0 or step == cfg.total_steps:
            images.save_strip(videos[:6], folder / f"samples-{step:07d}.png")
        mse = metrics.summarize(metrics.consecutive_frame_mse(videos))
        counts = metrics.count_balls(videos)
        apart = metrics.between_videos(videos)
        return {
            "video_mse": mse["mean"],
            "video_mse_std": mse["std"],
            "right_count": float((counts == cfg.balls).mean()),
            "between_videos": apart["mean"],
            "near_identical": apart["near_identical_fraction"],
        }

    extra = {"frames_config": gf_cfg.to_dict(), "frames_generator": gf.state_dict(), "frames_source": source}
    real = batch_source(cfg, seqs, "video", device, cfg.video_length)
    return Stage(VIDEO, cfg, folder, device, gv, lambda z: vg(z)[0], disc, real, evaluate, extra, frozen=gf)


def prepare(stage: Stage, resume: bool) -> None:
    """Write config.json, or on --resume restore latest.pt (refusing a different config)."""
    latest = stage.folder / "latest.pt"
    if resume:
        if not latest.exists():
            raise SystemExit(f"--resume: there is no checkpoint to resume from ({latest} does not exist)")
        try:
            ckpt = checkpoint.load(latest, stage=stage.name)
        except checkpoint.CheckpointError as exc:
            raise SystemExit(f"--resume: {exc}") from None
        saved = config_from_dict(stage.name, ckpt["config"])
        changed = differences(saved, stage.config, ignore=RESUMABLE_CHANGES)
        if changed:
            raise SystemExit(f"--resume: {latest} was trained with another config ({'; '.join(changed)})")
        if stage.name == VIDEO and not same_state(ckpt["frames_generator"], stage.frozen.state_dict()):
            raise SystemExit(f"--resume: {latest} was trained over another G_F than the one given")
        stage.restore(ckpt)
        print(f"resumed {stage.name} from {latest} at step {stage.step}")
    elif latest.exists():
        raise SystemExit(f"{stage.folder} already holds a run; pass --resume to continue it or choose another --out")
    stage.folder.mkdir(parents=True, exist_ok=True)
    (stage.folder / "config.json").write_text(json.dumps(stage.config.to_dict(), indent=2) + "\n")


def describe(stage: Stage, data_desc: str) -> str:
    cfg = stage.config
    per_d = parameter_count(stage.disc) // cfg.d_count
    lines = [
        f"[{stage.name}] preset={cfg.preset} balls={cfg.balls} device={stage.device} seed={cfg.seed}",
        f"  generator: {parameter_count(stage.generator):,} trained parameters",
        f"  discriminators: {cfg.d_count} x {per_d:,} parameters (+ fixed projections)",
        f"  plan: {cfg.total_steps:,} steps of batch {cfg.batch}, {cfg.optimizer} lr_g={cfg.lr_g} lr_d={cfg.lr_d}, "
        f"g_loss={cfg.g_loss}, minibatch_std={cfg.minibatch_std}, instance_noise={cfg.instance_noise}, "
        f"mode_seeking={cfg.mode_seeking}, spectral_norm={cfg.spectral_norm}",
        f"  data: {data_desc}",
        f"  out: {stage.folder}",
    ]
    if stage.name == VIDEO:
        frozen = parameter_count(stage.frozen)
        lines.insert(2, f"  frozen G_F: {frozen:,} parameters from {stage.extra_state['frames_source']['path']}")
    return "\n".join(lines)


# ---------------------------------------------------------------- command line


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One --flag per config field (both stages); a flag applies to the stages that have the field."""
    seen: set[str] = set()
    for cls in (FramesConfig, VideoConfig):
        for f in fields(cls):
            if f.name in seen or f.name in ("preset", "balls", "steps", "epochs", "seed"):
                continue
            seen.add(f.name)
            flag = "--" + f.name.replace("_", "-")
            if f.type in ("bool", bool):
                parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=f.metadata["help"])
            elif f.name == "fc":
                parser.add_argument(flag, type=lambda s: tuple(int(v) for v in s.split(",")), help=f.metadata["help"])
            else:
                kind = {"int": int, "float": float, "str": str}[str(f.type)]
                parser.add_argument(flag, type=kind, help=f.metadata["help"])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m training.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--stage", choices=[FRAMES, VIDEO, "all"], default="all", help="which step(s) to train")
    p.add_argument("--preset", choices=list(PRESETS), default="cpu", help="starting values of the config")
    p.add_argument("--balls", type=int, help="balls in the training data (default 3)")
    p.add_argument("--out", type=Path, required=True, help="run folder RUN_DIR (stages go in RUN_DIR/<stage>)")
    p.add_argument("--data", help="a .npy from `python -m training.data`, or 'stream' to simulate each batch; "
                   "default: write the preset's data set to RUN_DIR/data/ once")  # fmt: skip
    p.add_argument("--frames-checkpoint", type=Path, help="stage 2 over this G_F (default: RUN_DIR/frames/latest.pt)")
    p.add_argument("--resume", action="store_true", help="continue each stage from its latest.pt")
    p.add_argument("--steps", type=int, help="total steps per stage (overrides --epochs)")
    p.add_argument("--epochs", type=float, help="passes over the data set's sequences")
    p.add_argument("--seed", type=int, help="seed (paper: 10)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda or cuda:N")
    p.add_argument("--dry-run", action="store_true", help="build everything, print sizes and the plan, train nothing")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_config_flags(p)
    return p.parse_args(argv)


def resolve_frame_generator(
    args: argparse.Namespace, overrides: dict[str, Any]
) -> tuple[FrameGenerator, FramesConfig, dict[str, Any]]:
    """Stage 2's G_F: --frames-checkpoint, else RUN_DIR/frames/latest.pt (untrained in a dry run of 'all')."""
    frames_ckpt = Path(args.frames_checkpoint or args.out / FRAMES / "latest.pt")
    if frames_ckpt.exists():
        try:
            return load_frame_generator(frames_ckpt)
        except checkpoint.CheckpointError as exc:
            raise SystemExit(str(exc)) from None
    if args.dry_run and args.stage == "all":  # stage 1 has not run yet: plan with an untrained G_F
        gf_cfg = make_config(FRAMES, args.preset, overrides)
        return build_frame_generator(gf_cfg), gf_cfg, {"path": "stage 1 of this run"}
    raise SystemExit(f"stage video needs a trained G_F: {frames_ckpt} does not exist (see --frames-checkpoint)")


def run_stage(name: str, args: argparse.Namespace, overrides: dict[str, Any], device: torch.device) -> Stage | None:
    try:
        cfg = make_config(name, args.preset, overrides)
    except ValueError as exc:
        raise SystemExit(f"config error ({name}): {exc}") from None
    folder = args.out / name
    frame_generator = resolve_frame_generator(args, overrides) if name == VIDEO else None
    seqs = None if args.dry_run or args.data == "stream" else open_training_data(cfg, args.data, args.out)
    data_desc = args.data or f"generated: {cfg.data_sequences} sequences of {cfg.data_length} frames, {cfg.balls} balls"
    if name == FRAMES:
        stage = frames_stage(cfg, folder, device, seqs)
    else:
        stage = video_stage(cfg, folder, device, seqs, frame_generator)
    print(describe(stage, data_desc), flush=True)
    if args.dry_run:
        return None
    prepare(stage, args.resume)
    return fit(stage, progress=not args.no_progress)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    try:
        device = resolve_device(args.device)
    except (ValueError, RuntimeError) as exc:
        raise SystemExit(f"--device: {exc}") from None
    args.out.mkdir(parents=True, exist_ok=True)
    stages = [FRAMES, VIDEO] if args.stage == "all" else [args.stage]
    for name in stages:
        stage = run_stage(name, args, overrides, device)
        if stage is not None:
            print(f"[{name}] done: step {stage.step}, checkpoint {stage.folder / 'latest.pt'}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
