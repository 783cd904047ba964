"""Starting a stage's run folder, or resuming it from its latest checkpoint (refusing a changed config
or another G_F)."""

from __future__ import annotations

import json

from training import checkpoint
from training.build import same_state
from training.config import VIDEO, config_from_dict, differences
from training.loop import Stage

# fields that may change when resuming: how long to train and how often to report
RESUMABLE_CHANGES = ("steps", "epochs", "log_every", "eval_every", "sample_every", "checkpoint_every")
RESUMABLE_CHANGES += ("keep_checkpoints", "amp")


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
