"""The model card of an exported models folder: ``manifest.json``, written by export, read by inference.

This module is the one place that knows its fields and format version::

    {"format": 1, "default": NAME, "variants": {NAME: ENTRY, ...}}
    ENTRY: latent (int), frames (video length, int), files: {"frames": FILE, "video": FILE}
           FILE: {"file": name inside the folder, "sha256": hex digest, "max_abs_diff_vs_torch": float}
           and provenance for people: variant, trained, resolution, frames_balls, video_balls,
           *_preset, *_steps, opset, note, sources, training (command lines), table1

Reading checks the structure and raises ``ManifestError`` with a message that names the file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

FORMAT = 1
FILENAME = "manifest.json"
KINDS = ("frames", "video")  # the two ONNX models of a variant


class ManifestError(ValueError):
    """A manifest that is missing or not of this format; the message names the file."""


def path_of(folder: str | os.PathLike) -> Path:
    return Path(folder) / FILENAME


def _check_entry(path: Path, name: str, entry: Any) -> None:
    def bad(what: str) -> ManifestError:
        return ManifestError(f"{path}: variant {name!r} {what}")

    if not isinstance(entry, dict):
        raise bad("is not an object")
    for key in ("latent", "frames"):
        if not isinstance(entry.get(key), int) or isinstance(entry.get(key), bool) or entry[key] < 1:
            raise bad(f"lacks a positive integer {key!r}")
    files = entry.get("files")
    if not isinstance(files, dict):
        raise bad("lacks 'files'")
    for kind in KINDS:
        item = files.get(kind)
        file = item.get("file") if isinstance(item, dict) else None
        if not isinstance(file, str) or not file or Path(file).name != file:
            raise bad(f"lacks a plain file name for its {kind} model")
        if not isinstance(item.get("sha256"), str):
            raise bad(f"lacks the sha256 of its {kind} model")


def read(folder: str | os.PathLike) -> dict[str, Any]:
    """The manifest of a models folder, checked; raises ManifestError."""
    path = path_of(folder)
    if not path.is_file():
        raise ManifestError(f"{path}: manifest missing (export models with `python -m export`)")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{path}: not a valid manifest ({type(exc).__name__}: {exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        got = manifest.get("format") if isinstance(manifest, dict) else None
        raise ManifestError(f"{path}: not a valid manifest (format {got!r}; this code reads format {FORMAT})")
    variants = manifest.get("variants")
    if not isinstance(variants, dict) or not variants:
        raise ManifestError(f"{path}: not a valid manifest (no variants)")
    if manifest.get("default") not in variants:
        raise ManifestError(f"{path}: not a valid manifest (default {manifest.get('default')!r} is not a variant)")
    for name, entry in variants.items():
        _check_entry(path, name, entry)
    return manifest


def model_file(folder: str | os.PathLike, entry: dict[str, Any], kind: str) -> tuple[Path, str]:
    """The path and recorded sha256 of a variant's ``kind`` model."""
    item = entry["files"][kind]
    return Path(folder) / item["file"], item["sha256"]


def record(folder: str | os.PathLike, name: str, entry: dict[str, Any], make_default: bool = False) -> dict[str, Any]:
    """Add or replace variant ``name`` in the folder's manifest (created if absent), atomically.
    The first variant, or one recorded with ``make_default``, becomes the default."""
    path = path_of(folder)
    manifest = read(folder) if path.exists() else {"format": FORMAT, "variants": {}}
    _check_entry(path, name, entry)
    manifest["variants"][name] = entry
    if make_default or manifest.get("default") not in manifest["variants"]:
        manifest["default"] = name
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, path)
    return manifest
