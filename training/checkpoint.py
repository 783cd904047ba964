"""Self-describing checkpoints, written atomically and rotated.

A checkpoint is a dict: format version, stage, config, step, and state dicts. It is written to a
temporary file in the same folder, flushed to disk, then renamed over its name: a crash (even
kill -9) mid-write leaves the previous files intact. `latest.pt` is a hard link to the newest
`checkpoint-<step>.pt` (a copy where links are not possible).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch

FORMAT_VERSION = 1
AVERAGE = "generator_average"  # --ema: the moving average of the generator's weights, beside them
_NAME = re.compile(r"^checkpoint-(\d+)\.pt$")


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable, or not what the caller expects."""


def _atomic_torch_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the half-written temporaries of a writer that was killed (not this process's)."""
    stale = [p for p in folder.glob(".*.tmp-*") if not p.name.endswith(f".tmp-{os.getpid()}")]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def save(folder: Path, state: dict[str, Any], step: int, keep: int) -> Path:
    """Write checkpoint-<step>.pt and point latest.pt at it; keep the newest ``keep`` numbered files."""
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(folder)
    path = folder / f"checkpoint-{step:07d}.pt"
    _atomic_torch_save({"format_version": FORMAT_VERSION, "step": step, **state}, path)
    tmp = folder / f".latest.pt.tmp-{os.getpid()}"
    tmp.unlink(missing_ok=True)
    try:
        os.link(path, tmp)
    except OSError:
        shutil.copyfile(path, tmp)
    os.replace(tmp, folder / "latest.pt")
    numbered = sorted(p for p in folder.iterdir() if _NAME.match(p.name))
    for old in numbered[:-keep]:
        old.unlink()
    return path


def load(path: str | os.PathLike, stage: str | None = None) -> dict[str, Any]:
    """Read a checkpoint on the CPU, checking it is one of ours (and of ``stage``, if given)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many types for a truncated or foreign file
        raise CheckpointError(f"checkpoint {path} is unreadable (truncated or not a checkpoint): {exc}") from exc
    if not isinstance(ckpt, dict) or "format_version" not in ckpt:
        raise CheckpointError(f"{path} is not a checkpoint of this project")
    if ckpt["format_version"] != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {ckpt['format_version']}; this code reads version {FORMAT_VERSION}"
        )
    if stage is not None and ckpt.get("stage") != stage:
        raise CheckpointError(f"checkpoint {path} is from the {ckpt.get('stage')!r} stage, not {stage!r}")
    return ckpt


def generator_weights(ckpt: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The weights a checkpoint's generator is used with: the moving average where the run kept one
    (--ema), else the trained weights themselves."""
    return ckpt.get(AVERAGE, ckpt["generator"])


# what a generator-only checkpoint keeps: enough to evaluate, export and train stage 2 over it
GENERATOR_KEYS = ("format_version", "stage", "step", "config", "generator", AVERAGE, "frames_config",
                  "frames_generator", "frames_source")  # fmt: skip


def slim(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Write ``src`` without discriminators and optimizer states (it can no longer resume training,
    but evaluation, export and stage 2 load it); written atomically."""
    ckpt = load(src)
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    _atomic_torch_save({k: ckpt[k] for k in GENERATOR_KEYS if k in ckpt}, dst)
    return dst


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m training.checkpoint", description="checkpoint tools")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("slim", help="keep only the generator(s) and configs (for committing or shipping)")
    p.add_argument("src", type=Path)
    p.add_argument("dst", type=Path)
    args = parser.parse_args(argv)
    try:
        out = slim(args.src, args.dst)
    except CheckpointError as exc:
        raise SystemExit(str(exc)) from None
    print(f"{out}: {out.stat().st_size / 2**20:.1f} MiB (step {load(out)['step']}, generators only)")


if __name__ == "__main__":
    main()
