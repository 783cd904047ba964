"""The networks of a training config, built fresh (seeded from the config) or loaded trained from a
checkpoint. Evaluation, export and the training stages all build through here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from balls.digest import sha256
from training import checkpoint
from training.config import FRAMES, VIDEO, FramesConfig, StageConfig, VideoConfig, config_from_dict
from training.networks import DiscriminatorEnsemble, FrameGenerator, SequenceGenerator


def frame_generator(cfg: FramesConfig) -> FrameGenerator:
    """G_F of ``cfg``'s sizes, initialised from the current random state."""
    return FrameGenerator(
        latent=cfg.latent, width=cfg.g_width, folds=cfg.g_folds, fold_scale=cfg.g_fold_scale, coords=cfg.g_coords
    )


def build_frame_generator(cfg: FramesConfig) -> FrameGenerator:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return frame_generator(cfg)


def build_sequence_generator(
    cfg: VideoConfig, frame_latent: int, eye: FrameGenerator | None = None
) -> SequenceGenerator:
    """G_V for a frozen G_F of latent size ``frame_latent``; a looking G_V (``--zf-look``) also needs
    that G_F itself, its ``eye``."""
    if cfg.zf_look and eye is None:
        raise ValueError("a looking G_V (zf_look) is built with the G_F it sees through: give eye")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed + 1)
        gv = SequenceGenerator(
            latent=cfg.latent, frame_latent=frame_latent, frames=cfg.video_length, fc=cfg.fc,
            seq_features=cfg.seq_features, lstm_hidden=cfg.lstm_hidden, lstm_layers=cfg.lstm_layers,
            out_scale=cfg.zf_scale, sphere=cfg.zf_sphere, path=cfg.zf_path, step=cfg.zf_step, look=cfg.zf_look,
        )  # fmt: skip
    return gv.attach_eye(eye) if eye is not None and cfg.zf_look else gv


def build_discriminators(cfg: StageConfig, kind: str) -> DiscriminatorEnsemble:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed + (2 if kind == "frame" else 3))
        return DiscriminatorEnsemble(
            kind=kind, count=cfg.d_count, width=cfg.d_width, seed=cfg.seed * 7 + (0 if kind == "frame" else 1),
            minibatch_std=cfg.minibatch_std, spectral_norm=cfg.spectral_norm,
            inputs=getattr(cfg, "d_inputs", "frames") if kind == "video" else "frames",
            temporal_std=getattr(cfg, "temporal_std", False) and kind == "video",
        )  # fmt: skip


def load_frame_generator(path: Path) -> tuple[FrameGenerator, FramesConfig, dict[str, Any]]:
    """G_F of a frames checkpoint (eval mode; the averaged weights of an --ema run), its config, and
    where it came from."""
    ckpt = checkpoint.load(path, stage=FRAMES)
    cfg = config_from_dict(FRAMES, ckpt["config"])
    gf = frame_generator(cfg)
    gf.load_state_dict(checkpoint.generator_weights(ckpt))
    source = {"path": str(path), "step": ckpt["step"], "sha256": sha256(path), "balls": cfg.balls}
    return gf.eval(), cfg, source


def load_sequence_generator(path: Path) -> tuple[SequenceGenerator, VideoConfig, dict[str, Any]]:
    """G_V of a video checkpoint (eval mode), its config, and the checkpoint (which also holds the G_F
    it was trained over, under "frames_generator")."""
    ckpt = checkpoint.load(path, stage=VIDEO)
    cfg = config_from_dict(VIDEO, ckpt["config"])
    frames_cfg = config_from_dict(FRAMES, ckpt["frames_config"])
    eye = None
    if cfg.zf_look:  # its eye: the G_F it was trained over, which the checkpoint holds
        eye = frame_generator(frames_cfg)
        eye.load_state_dict(ckpt["frames_generator"])
    gv = build_sequence_generator(cfg, frames_cfg.latent, eye)
    gv.load_state_dict(checkpoint.generator_weights(ckpt))
    return gv.eval(), cfg, ckpt


def same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    """Two state dicts hold the same tensors (e.g. a G_V's G_F and a frames checkpoint's)."""
    return a.keys() == b.keys() and all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)
