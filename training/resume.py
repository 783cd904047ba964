"""Starting a stage's run folder, resuming it from its latest checkpoint (refusing a changed config
or another G_F), or branching it from another run's checkpoint under a changed config."""

from __future__ import annotations

import json
import os
from pathlib import Path

from training import checkpoint
from training.build import same_state
from training.config import VIDEO, config_from_dict, differences
from training.loop import Stage

# fields that may change when resuming: how long to train and how often to report
RESUMABLE_CHANGES = ("steps", "epochs", "log_every", "eval_every", "sample_every", "checkpoint_every")
RESUMABLE_CHANGES += ("keep_checkpoints", "amp")


def newest_intact(folder: Path, stage: str) -> tuple[Path, int] | None:
    """The newest checkpoint-<step>.pt of a folder that loads, and its step; None if there is none."""
    for path in sorted(folder.glob("checkpoint-*.pt"), reverse=True):
        try:
            return path, checkpoint.load(path, stage=stage)["step"]
        except checkpoint.CheckpointError:
            continue
    return None


def branch(stage: Stage, source: Path) -> list[str]:
    """Start ``stage`` from another run's full checkpoint: its weights, optimizer states and step, under
    ``stage.config`` (whose learning rates replace the checkpoint's). Returns what the config changes
    ('field: old -> new'), refusing a slim checkpoint, networks of other sizes, or nothing left to train."""
    try:
        ckpt = checkpoint.load(source, stage=stage.name)
    except checkpoint.CheckpointError as exc:
        raise SystemExit(f"--branch: {exc}") from None
    missing = [k for k in ("discriminators", "opt_g", "opt_d") if k not in ckpt]
    if missing:
        raise SystemExit(f"--branch: {source} holds no {', '.join(missing)} (a slim checkpoint?); "
                         "a branch continues a whole run: give a checkpoint of its run folder")  # fmt: skip
    if ckpt["step"] >= stage.config.total_steps:
        raise SystemExit(f"--branch: {source} is at step {ckpt['step']}; --steps {stage.config.total_steps} "
                         "leaves nothing to train")  # fmt: skip
    changed = differences(config_from_dict(stage.name, ckpt["config"]), stage.config, ignore=("branch",))
    if stage.name == VIDEO and not same_state(ckpt["frames_generator"], stage.frozen.state_dict()):
        changed.append("G_F: another than the checkpoint's")
    try:
        stage.restore(ckpt)
    except (RuntimeError, KeyError, ValueError) as exc:  # load_state_dict: missing keys, other sizes
        first = str(exc).splitlines()[0]
        raise SystemExit(f"--branch: {source} does not fit this config's networks: {first}") from None
    for opt, lr in ((stage.opt_g, stage.config.lr_g), (stage.opt_d, stage.config.lr_d)):
        for group in opt.param_groups:
            group["lr"] = lr
    return changed


def drop_stats_after(folder: Path, step: int) -> None:
    """Keep the stats.jsonl lines up to ``step``: a resumed run writes the later ones again."""
    path = folder / "stats.jsonl"
    if not path.exists():
        return
    lines = path.read_text().splitlines()
    kept = [line for line in lines if line.strip() and json.loads(line).get("step", 0) <= step]
    if len(kept) != len(lines):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(line + "\n" for line in kept))
        os.replace(tmp, path)


def prepare(stage: Stage, resume: bool | Path, write: bool = True) -> None:
    """Write config.json, or on --resume restore latest.pt, or the checkpoint given (refusing a
    different config); a latest.pt that does not load names the newest intact checkpoint.
    ``write=False`` (the other ranks of a process group) restores without touching files."""
    latest = stage.folder / "latest.pt"
    if resume:
        source = latest if resume is True else Path(resume)
        if not source.exists():
            raise SystemExit(f"--resume: there is no checkpoint to resume from ({source} does not exist)")
        try:
            ckpt = checkpoint.load(source, stage=stage.name)
        except checkpoint.CheckpointError as exc:
            intact = newest_intact(stage.folder, stage.name) if source == latest else None
            hint = (
                f"; the newest intact checkpoint is {intact[0]} (step {intact[1]}): --resume {intact[0]}"
                if intact
                else ""
            )
            raise SystemExit(f"--resume: {exc}{hint}") from None
        latest = source
        saved = config_from_dict(stage.name, ckpt["config"])
        changed = differences(saved, stage.config, ignore=RESUMABLE_CHANGES)
        if changed:
            raise SystemExit(f"--resume: {latest} was trained with another config ({'; '.join(changed)})")
        if stage.name == VIDEO and not same_state(ckpt["frames_generator"], stage.frozen.state_dict()):
            raise SystemExit(f"--resume: {latest} was trained over another G_F than the one given")
        stage.restore(ckpt)
        if write:
            drop_stats_after(stage.folder, stage.step)
            print(f"resumed {stage.name} from {latest} at step {stage.step}")
    elif latest.exists():
        raise SystemExit(f"{stage.folder} already holds a run; pass --resume to continue it or choose another --out")
    elif stage.config.branch:
        changed = branch(stage, Path(stage.config.branch))
        if write:
            what = f"; this config changes {'; '.join(changed)}" if changed else "; same config"
            print(f"branched {stage.name} from {stage.config.branch} at step {stage.step}{what}")
    if write:
        stage.folder.mkdir(parents=True, exist_ok=True)
        (stage.folder / "config.json").write_text(json.dumps(stage.config.to_dict(), indent=2) + "\n")
