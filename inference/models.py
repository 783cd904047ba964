"""Load the exported variants named by models/manifest.json into ONNX Runtime sessions.

Everything that can be wrong with a models folder is found at load time and reported as one
``ModelError`` line naming the file and the problem: a missing or unreadable manifest, a file it
names that is not there, a truncated or foreign ONNX file, a model with the wrong inputs/outputs,
or a valid model whose SHA-256 is not the manifest's (another variant's file, altered weights).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from balls import manifest as card
from balls.digest import sha256

log = logging.getLogger("bentoml.bouncing")

MODELS_ENV = "BOUNCING_MODELS_DIR"  # where the service loads models from (default: models/ beside service.py)
THREADS_ENV = "BOUNCING_ORT_THREADS"  # ONNX Runtime intra-op threads (default: all cores, up to 4)
SPIN_ENV = "BOUNCING_ORT_SPIN"  # 1: idle intra-op threads spin-wait for the next run (default 0: they sleep)


class ModelError(RuntimeError):
    """A models folder the service cannot start from; the message names the file."""


def providers() -> list[str]:
    """CUDA when onnxruntime-gpu sees a GPU, else CPU."""
    available = ort.get_available_providers()
    if "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def session_options() -> ort.SessionOptions:
    opts = ort.SessionOptions()
    threads = int(os.environ.get(THREADS_ENV, 0)) or min(os.cpu_count() or 1, 4)
    opts.intra_op_num_threads = threads  # one request's batch uses the cores; requests queue for it
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    # ONNX Runtime's own default lets idle intra-op threads spin-wait for the next run: the fastest
    # for a lone caller (benchmarks/generator.py), but here the same cores also encode, and spinning
    # threads take them: asleep, the served rate at concurrency 32 is 1.14x (README "Benchmarks")
    spin = os.environ.get(SPIN_ENV, "0")
    if spin not in ("0", "1"):
        raise ModelError(f"${SPIN_ENV} must be 0 or 1, not {spin!r}")
    opts.add_session_config_entry("session.intra_op.allow_spinning", spin)
    return opts


@dataclass
class Variant:
    """One model variant: a frame generator and a video generator over it."""

    name: str
    entry: dict[str, Any]  # its manifest entry
    frames: ort.InferenceSession
    video: ort.InferenceSession
    latent: int
    length: int

    def generate_frames(self, z: np.ndarray) -> np.ndarray:
        """z (B, latent) float32 -> frames (B, 30, 30) in [-1, 1]."""
        return self.frames.run(["frames"], {"z": np.ascontiguousarray(z, dtype=np.float32)})[0][:, 0]

    def generate_videos(self, z: np.ndarray) -> np.ndarray:
        """z_v (B, latent) float32 -> videos (B, T, 30, 30) in [-1, 1]."""
        return self.video.run(["video"], {"z": np.ascontiguousarray(z, dtype=np.float32)})[0]


def _session(path: Path, opts: ort.SessionOptions, provider_list: list[str]) -> ort.InferenceSession:
    if not path.is_file():
        raise ModelError(f"{path}: model file missing (named by manifest.json)")
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=provider_list)
    except Exception as exc:  # onnxruntime raises its own exception types for bad files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{path}: not a loadable ONNX model ({first})") from None


def _check_io(path: Path, session: ort.InferenceSession, kind: str, latent: int, length: int) -> None:
    inputs, outputs = session.get_inputs(), session.get_outputs()
    expected_out = {"frames": [1, 30, 30], "video": [length, 30, 30]}[kind]
    ok = len(inputs) == 1 and inputs[0].name == "z" and list(inputs[0].shape[1:]) == [latent]
    ok = ok and outputs[0].name == kind and list(outputs[0].shape[1:]) == expected_out
    if not ok:
        got = f"{[(i.name, i.shape) for i in inputs]} -> {[(o.name, o.shape) for o in outputs]}"
        raise ModelError(f"{path}: wrong shape for a {kind} generator: {got}; expected z (batch, {latent}) -> "
                         f"{kind} (batch, {', '.join(map(str, expected_out))})")  # fmt: skip


def load_variants(folder: str | os.PathLike) -> tuple[dict[str, Variant], str]:
    """All variants of a models folder and the default's name; raises ModelError on any problem."""
    folder = Path(folder)
    try:
        manifest = card.read(folder)
    except card.ManifestError as exc:
        raise ModelError(str(exc)) from None
    opts, provider_list = session_options(), providers()
    variants = {}
    for name, entry in manifest["variants"].items():
        latent, length = entry["latent"], entry["frames"]
        sessions = {}
        for kind in card.KINDS:
            path, recorded = card.model_file(folder, entry, kind)
            sessions[kind] = _session(path, opts, provider_list)
            _check_io(path, sessions[kind], kind, latent, length)
            if (actual := sha256(path)) != recorded:  # a valid model, but not the one the manifest describes
                raise ModelError(f"{path}: sha256 {actual[:16]}... is not the manifest's {recorded[:16]}... "
                                 "(another model's file, or altered); re-export it or restore the file")  # fmt: skip
        variants[name] = Variant(name, entry, sessions["frames"], sessions["video"], latent, length)
    shapes = {(v.latent, v.length) for v in variants.values()}
    if len(shapes) > 1:
        raise ModelError(f"{card.path_of(folder)}: variants differ in latent size or length: {sorted(shapes)}")
    log.info("loaded %d model variant(s) from %s on %s", len(variants), folder, provider_list)
    return variants, manifest["default"]


def latent_from_seed(seed: int, latent: int) -> np.ndarray:
    """The z of a seed, float32 (latent,): N(0, I) from numpy's PCG64, the same on every machine."""
    return np.random.default_rng(seed).standard_normal(latent).astype(np.float32)
