"""The two training stages wired for the loop: each stage's networks, real batches, fixed evaluation
noise and the metrics it logs (``frames_stage``, ``video_stage``), and the training data they read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from balls import metrics, motion
from training import data as bb
from training import folds, images
from training.build import build_discriminators, build_frame_generator, build_sequence_generator, load_frame_generator
from training.config import FRAMES, VIDEO, FramesConfig, StageConfig, VideoConfig
from training.datasets import FrameDataset, VideoDataset
from training.loop import Stage, native_bf16
from training.networks import FrameGenerator, VideoFrames, VideoGenerator, parameter_count

EVAL_VIDEOS = 30  # Table 1 averages over 30 videos (or 30 independent frames)


def open_training_data(cfg: StageConfig, data_arg: str | None, out: Path, res: int = 30) -> np.ndarray | None:
    """The memory-mapped training sequences; None for 'stream' (simulate every batch).

    Without --data, the preset's data set is written once to RUN_DIR/data/ and reused.
    """
    if data_arg == "stream":
        return None
    if data_arg is not None:
        seqs = bb.open_dataset(data_arg)
    else:
        name = f"bb{cfg.balls}-n{cfg.data_sequences}-len{cfg.data_length}-seed{cfg.data_seed}.npy"
        path = out / "data" / name
        if not path.exists():
            print(f"writing the training data set {path} ...", flush=True)
            bb.write_dataset(path, cfg.data_sequences, cfg.balls, cfg.data_length, res, cfg.data_seed, progress=True)
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


def fixed_noise(seed: int, n: int, latent: int, device: torch.device) -> torch.Tensor:
    return torch.randn(n, latent, generator=torch.Generator().manual_seed(seed + 99_991)).to(device)


def frames_stage(cfg: FramesConfig, folder: Path, device: torch.device, seqs: np.ndarray | None) -> Stage:
    gf = build_frame_generator(cfg)
    parent = None
    if cfg.init_frames:  # fine-tuning: G_F's weights from another run (its sizes must match)
        parent, parent_cfg, _ = load_frame_generator(Path(cfg.init_frames))
        if (parent_cfg.latent, parent_cfg.g_width) != (cfg.latent, cfg.g_width):
            raise ValueError(f"--init-frames {cfg.init_frames}: G_F of latent {parent_cfg.latent}, width "
                             f"{parent_cfg.g_width}; this config has {cfg.latent}, {cfg.g_width}")  # fmt: skip
        if parent.coords != gf.coords:
            has = "with" if parent.coords else "without"
            raise ValueError(f"--init-frames {cfg.init_frames}: G_F {has} coordinate channels; give --g-coords "
                             "exactly when the parent has them")  # fmt: skip
        if parent.folds and parent.folds != gf.folds:
            raise ValueError(f"--init-frames {cfg.init_frames}: G_F with {parent.folds} folds; this config has "
                             f"{gf.folds} (give --g-folds {parent.folds})")  # fmt: skip
        # a parent without folds: the child's folds start silent (fold_out zero), the rest is the parent
        missing, unexpected = gf.load_state_dict(parent.state_dict(), strict=False)
        if unexpected or any(not k.startswith("fold_") for k in missing):
            raise ValueError(f"--init-frames {cfg.init_frames}: weights do not match ({missing + unexpected})")
        if cfg.g_fold_span:  # the folds inside the parent's steepest directions (a resume then loads its own)
            folds.aim(gf, folds.steepest_span(gf, cfg.g_fold_span, cfg.seed), cfg.seed)
        # --anchor: the parent stays, frozen, in training mode like G_F (batch statistics of the same z)
        parent = parent.to(device).train().requires_grad_(False) if cfg.anchor > 0 else None
    gf = gf.to(device)
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

    real = batch_source(cfg, seqs, "frame", device)
    return Stage(FRAMES, cfg, folder, device, gf, gf, disc, real, evaluate, parent=parent)


def video_stage(
    cfg: VideoConfig,
    folder: Path,
    device: torch.device,
    seqs: np.ndarray | None,
    frame_generator: tuple[FrameGenerator, FramesConfig, dict[str, Any]],
) -> Stage:
    gf, gf_cfg, source = frame_generator
    gv = build_sequence_generator(cfg, gf_cfg.latent, gf)
    vg = VideoGenerator(gv, gf).to(device)
    disc = build_discriminators(cfg, "video").to(device)
    z_eval = fixed_noise(cfg.seed, EVAL_VIDEOS, cfg.latent, device)

    @torch.no_grad()
    def evaluate(step: int) -> dict[str, Any]:
        videos = vg(z_eval)[0].float().cpu().numpy()  # (30, T, H, W)
        if step % cfg.sample_every == 0 or step == cfg.total_steps:
            images.save_strip(videos[:6], folder / f"samples-{step:07d}.png")
            images.save_gif(videos[:6], folder / f"samples-{step:07d}.gif")
        mse = metrics.summarize(metrics.consecutive_frame_mse(videos))
        counts = metrics.count_balls(videos)
        apart = metrics.between_videos(videos)
        moves = motion.motion_report(videos, cfg.balls)
        return {
            "video_mse": mse["mean"],
            "video_mse_std": mse["std"],
            "right_count": float((counts == cfg.balls).mean()),
            "between_videos": apart["mean"],
            "near_identical": apart["near_identical_fraction"],
            "teleport_rate": moves["teleport_rate"],
            "unexplained_rate": moves["unexplained_rate"],
        }

    extra = {"frames_config": gf_cfg.to_dict(), "frames_generator": gf.state_dict(), "frames_source": source}
    real = batch_source(cfg, seqs, "video", device, cfg.video_length)
    return Stage(VIDEO, cfg, folder, device, gv, VideoFrames(vg), disc, real, evaluate, extra, frozen=gf)


def precision(cfg: StageConfig, device: torch.device) -> str:
    """What --amp does on this device, in words."""
    if not cfg.amp:
        return "float32"
    if native_bf16(device):
        return "bfloat16 autocast (--amp)"
    return f"float32 (--amp asked for, but this {device.type} has no native bfloat16)"


def describe(stage: Stage, data_desc: str) -> str:
    cfg = stage.config
    per_d = parameter_count(stage.disc) // cfg.d_count
    lines = [
        f"[{stage.name}] preset={cfg.preset} balls={cfg.balls} device={stage.device} seed={cfg.seed}",
        f"  generator: {parameter_count(stage.generator, trained=True):,} trained parameters",
        f"  discriminators: {cfg.d_count} x {per_d:,} parameters (+ fixed projections)",
        f"  plan: {cfg.total_steps:,} steps of batch {cfg.batch}, {cfg.optimizer} lr_g={cfg.lr_g} lr_d={cfg.lr_d}, "
        f"g_loss={cfg.g_loss}, minibatch_std={cfg.minibatch_std}, instance_noise={cfg.instance_noise}, "
        f"mode_seeking={cfg.mode_seeking}, spectral_norm={cfg.spectral_norm}"
        + (
            f", jacobian_clamp={cfg.jacobian_clamp} in [{cfg.jc_min}, {cfg.jc_max}]"
            + (
                f" along the {cfg.jc_directions} steepest directions ({cfg.jc_power} subspace steps)"
                if cfg.jc_directions
                else f" along steepest directions ({cfg.jc_power} power steps)"
                if cfg.jc_power
                else ""
            )
            if getattr(cfg, "jacobian_clamp", 0)
            else ""
        )
        + (f", gain_steady={cfg.gain_steady}" if getattr(cfg, "gain_steady", 0) else "")
        + (f", path_length={cfg.path_length} every {cfg.pl_every} steps" if getattr(cfg, "path_length", 0) else "")
        + (f", g_folds={cfg.g_folds} (scale {cfg.g_fold_scale})" if getattr(cfg, "g_folds", 0) else "")
        + (", g_coords" if getattr(cfg, "g_coords", False) else "")
        + (f" aimed in the parent's {cfg.g_fold_span} steepest directions" if getattr(cfg, "g_fold_span", 0) else "")
        + (f", init from {cfg.init_frames}" if getattr(cfg, "init_frames", "") else "")
        + (f", branched from {cfg.branch}" if cfg.branch else "")
        + (f", anchor={cfg.anchor}" if getattr(cfg, "anchor", 0) else "")
        + (f", zf_path={cfg.zf_path} (step {cfg.zf_step})" if getattr(cfg, "zf_path", "absolute") != "absolute" else "")
        + (", zf_look (G_V sees its frames)" if getattr(cfg, "zf_look", False) else "")
        + (", zf_sphere (z_F kept on a shell)" if getattr(cfg, "zf_sphere", False) else "")
        + (f", d_inputs={cfg.d_inputs}" if getattr(cfg, "d_inputs", "frames") != "frames" else "")
        + (f", ema={cfg.ema}" if cfg.ema else "")
        + (", " + precision(cfg, stage.device)),
        f"  data: {data_desc}",
        f"  out: {stage.folder}",
    ]
    if stage.name == VIDEO:
        frozen = parameter_count(stage.frozen)
        lines.insert(2, f"  frozen G_F: {frozen:,} parameters from {stage.extra_state['frames_source']['path']}")
    return "\n".join(lines)
