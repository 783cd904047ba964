"""Train the two steps: `python -m training.run --stage frames|video|all --preset paper|cpu|smoke ...`.

Stage 1 (frames) trains G_F on single frames against K frame discriminators; stage 2 (video)
trains G_V over the frozen G_F against K video discriminators. Each stage writes its run folder
RUN_DIR/<stage>/: config.json, stats.jsonl, sample PNGs, checkpoint-<step>.pt, latest.pt.

This module is the command line only: the stages are training/stages.py, resuming
training/resume.py, the networks training/build.py, the loop training/loop.py.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training import checkpoint, distributed
from training.build import build_frame_generator, load_frame_generator
from training.config import FRAMES, PRESETS, VIDEO, FramesConfig, StageConfig, add_flags, flag, make_config, unused_by
from training.loop import Stage, fit, resolve_device
from training.networks import FrameGenerator
from training.resume import prepare
from training.stages import describe, frames_stage, open_training_data, video_stage

# flags of the command line that are not config fields, and the stage that uses each
STAGE_FLAGS = {"frames_checkpoint": VIDEO}
DATA_SET_FIELDS = ("data_sequences", "data_length", "data_seed")  # describe a generated data set, not a --data file


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m training.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--stage", choices=[FRAMES, VIDEO, "all"], default="all", help="which step(s) to train")
    p.add_argument("--preset", choices=list(PRESETS), default="cpu", help="starting values of the config")
    p.add_argument("--out", type=Path, required=True, help="run folder RUN_DIR (stages go in RUN_DIR/<stage>)")
    p.add_argument("--data", help="a .npy from `python -m training.data`, or 'stream' to simulate each batch; "
                   "default: write the preset's data set to RUN_DIR/data/ once")  # fmt: skip
    p.add_argument("--frames-checkpoint", type=Path, help="stage 2 over this G_F (default: RUN_DIR/frames/latest.pt)")
    p.add_argument("--resume", nargs="?", const=True, type=Path, metavar="CHECKPOINT",
                   help="continue each stage from its latest.pt, or one --stage from this checkpoint")  # fmt: skip
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda or cuda:N")
    p.add_argument("--dry-run", action="store_true", help="build everything, print sizes and the plan, train nothing")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_flags(p)  # one flag per config field (training/config.py)
    args = p.parse_args(argv)
    given = {k for k, v in vars(args).items() if v is not None}
    problems = []
    if args.stage != "all":
        problems += unused_by(args.stage, given)
        problems += [
            f"{flag(k)} is a setting of the {s} stage; --stage {args.stage} does not use it"
            for k, s in STAGE_FLAGS.items()
            if k in given and s != args.stage
        ]
    if args.data not in (None, "stream"):
        problems += [f"{flag(k)} describes a generated data set; --data {args.data} is used as it is"
                     for k in DATA_SET_FIELDS if k in given]  # fmt: skip
    if isinstance(args.resume, Path) and args.stage == "all":
        problems.append("--resume CHECKPOINT resumes one stage: give --stage frames or --stage video")
    if args.branch is not None and args.stage == "all":
        problems.append("--branch CHECKPOINT starts one stage from a checkpoint: give --stage frames or --stage video")
    if problems:
        p.error("; ".join(problems))
    return args


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


def stage_config(name: str, args: argparse.Namespace, overrides: dict[str, Any]) -> StageConfig:
    try:
        return make_config(name, args.preset, overrides)
    except ValueError as exc:
        raise SystemExit(f"config error ({name}): {exc}") from None


def with_data_size(cfg: StageConfig, seqs: np.ndarray | None, name: str) -> StageConfig:
    """A --data file sets the data set's size, so that --epochs counts the sequences actually used."""
    if seqs is None or (cfg.data_sequences, cfg.data_length) == seqs.shape[:2]:
        return cfg
    try:
        return replace(cfg, data_sequences=int(seqs.shape[0]), data_length=int(seqs.shape[1]))
    except ValueError as exc:
        raise SystemExit(f"config error ({name}) with this data set: {exc}") from None


def run_stage(
    name: str, args: argparse.Namespace, overrides: dict[str, Any], device: torch.device, world: distributed.World
) -> Stage | None:
    cfg = stage_config(name, args, overrides)
    folder = args.out / name
    frame_generator = resolve_frame_generator(args, overrides) if name == VIDEO else None
    file_given = args.data not in (None, "stream")
    writes_data = args.data is None and not args.dry_run  # a dry run writes no data set
    seqs = None
    if file_given or writes_data:
        if not world.main:  # rank 0 writes a missing data set; the others then read it
            world.barrier()
        seqs = open_training_data(cfg, args.data, args.out)
        if world.main:
            world.barrier()
    cfg = with_data_size(cfg, seqs, name)
    data_desc = args.data or f"generated: {cfg.data_sequences} sequences of {cfg.data_length} frames, {cfg.balls} balls"
    try:
        if name == FRAMES:
            stage = frames_stage(cfg, folder, device, seqs)
        else:
            stage = video_stage(cfg, folder, device, seqs, frame_generator)
    except (ValueError, checkpoint.CheckpointError) as exc:
        raise SystemExit(f"{name}: {exc}") from None
    if world.main:
        print(describe(stage, data_desc) + (f"\n  processes: {world.size}" if world.size > 1 else ""), flush=True)
    if args.dry_run:
        return None
    prepare(stage, args.resume, write=world.main)
    return fit(stage, progress=not args.no_progress, world=world)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    try:
        device = resolve_device(args.device)
    except (ValueError, RuntimeError) as exc:
        raise SystemExit(f"--device: {exc}") from None
    args.out.mkdir(parents=True, exist_ok=True)
    stages = [FRAMES, VIDEO] if args.stage == "all" else [args.stage]
    world, device = distributed.start(device)  # torchrun: one process of several
    finished = False
    try:
        for name in stages:
            stage = run_stage(name, args, overrides, device, world)
            if stage is not None and world.main:
                print(f"[{name}] done: step {stage.step}, checkpoint {stage.folder / 'latest.pt'}", flush=True)
            stage = None  # its networks (and their process-group wrappers) go before the group does
        finished = True
    finally:
        distributed.stop(finished)


if __name__ == "__main__":
    sys.exit(main())
