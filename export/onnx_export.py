"""Export G_F and G_V (over a G_F) to ONNX, check them, and record them in models/manifest.json.

    python -m export --frames FRAMES_CKPT --video VIDEO_CKPT [--swap-frames OTHER_FRAMES_CKPT] \\
        --name NAME --out MODELS_DIR [--table TABLE1_JSON] [--default] [--replace-shipped] \\
        [--kernel subpixel|transposed|fastest]

Per variant NAME it writes NAME-frames.onnx (z (B, 100) -> frames (B, 1, 30, 30) in [-1, 1]) and
NAME-video.onnx (z_v (B, 100) -> video (B, 30, 30, 30) in [-1, 1] and z_F (B, 30, 100)), both
with a dynamic batch axis, opset ``OPSET``. `--swap-frames` puts another G_F under the same G_V
(the paper's Fig. 4: a 1-ball G_F under a 3-ball G_V); the variant's frame generator is then that
G_F too. Each model passes onnx.checker and matches PyTorch to ``TOLERANCE`` at batch 1 and 17 in
ONNX Runtime, or nothing is written.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from balls import manifest as card
from balls.digest import sha256
from export.subpixel import rewrite
from training import checkpoint
from training.build import load_frame_generator, load_sequence_generator, same_state
from training.config import FRAMES, VIDEO, FramesConfig, StageConfig, flags_of
from training.networks import FrameGenerator, SequenceGenerator, VideoGenerator

OPSET = 17
SHIPPED = Path(__file__).resolve().parent.parent / "models"  # the models this repository ships
TOLERANCE = 1e-4
PARITY_BATCHES = (1, 17)
KERNELS = ("subpixel", "transposed", "fastest")
TIMING_BATCHES = (1, 8)  # what the service runs most: single requests and small micro-batches


class ExportError(RuntimeError):
    """A model that failed a check; nothing was written for it."""


class _FramesOnly(nn.Module):
    def __init__(self, gf: FrameGenerator) -> None:
        super().__init__()
        self.gf = gf

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.gf(z)


def _export(module: nn.Module, latent: int, outputs: list[str], path: Path) -> None:
    axes = {"z": {0: "batch"}, **{name: {0: "batch"} for name in outputs}}
    with warnings.catch_warnings():  # the TorchScript exporter warns about its own deprecation
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, (torch.zeros(2, latent),), str(path), dynamo=False, opset_version=OPSET,
            input_names=["z"], output_names=outputs, dynamic_axes=axes,
        )  # fmt: skip


def check(module: nn.Module, path: Path, latent: int, seed: int = 0) -> float:
    """onnx.checker, then ONNX Runtime vs PyTorch on random inputs; returns the max abs difference."""
    try:
        onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"{path.name}: onnx.checker rejected the model: {exc}") from exc
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    rng = np.random.default_rng(seed)
    for batch in PARITY_BATCHES:
        z = rng.standard_normal((batch, latent)).astype(np.float32)
        got = session.run(None, {"z": z})
        with torch.no_grad():
            want = module(torch.from_numpy(z))
        want = [want] if isinstance(want, torch.Tensor) else list(want)
        for g, w in zip(got, want, strict=True):
            if g.shape != tuple(w.shape):
                raise ExportError(f"{path.name}: shape {g.shape} in ONNX Runtime, {tuple(w.shape)} in PyTorch")
            worst = max(worst, float(np.abs(g - w.numpy()).max()))
    if not worst <= TOLERANCE:
        raise ExportError(f"{path.name}: ONNX Runtime differs from PyTorch by {worst:.2e} (limit {TOLERANCE:.0e})")
    return worst


def _with_metadata(path: Path, meta: dict[str, Any]) -> None:
    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in meta.items():
        model.metadata_props.add(key=key, value=value if isinstance(value, str) else json.dumps(value))
    onnx.save(model, str(path))


def videos_per_s(path: Path, latent: int, rounds: int = 5, runs: int = 10) -> dict[int, float]:
    """Videos per second of an ONNX video model in ONNX Runtime (the service's defaults: every graph
    optimisation, the machine's threads), per batch of TIMING_BATCHES; medians over ``rounds``."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rates = {}
    for batch in TIMING_BATCHES:
        z = np.random.default_rng(0).standard_normal((batch, latent)).astype(np.float32)
        session.run(None, {"z": z})  # warm-up
        timed = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            for _ in range(runs):
                session.run(None, {"z": z})
            timed.append(batch * runs / (time.perf_counter() - t0))
        rates[batch] = round(statistics.median(timed), 1)
    return rates


def export_variant(
    frames_ckpt: Path,
    video_ckpt: Path,
    name: str,
    out: Path,
    swap_frames: Path | None = None,
    table: dict[str, Any] | None = None,
    make_default: bool = False,
    note: str = "",
    kernel: str = "subpixel",
) -> dict[str, Any]:
    """Write NAME-frames.onnx and NAME-video.onnx into ``out`` and record them in its manifest.

    ``kernel``: how G_F's stride-2 transposed convolutions are written. "subpixel": as sub-pixel
    convolutions with the batch norms folded in (export/subpixel.py: the same function; faster in
    ONNX Runtime on some CPUs, slower on others: README "Benchmarks"); "transposed": as trained;
    "fastest": both are exported and timed here (``videos_per_s``), and the faster at batches 1
    and 8 together is kept, its figures recorded as ``kernel_timing``. Either way the files are
    checked against the networks as trained."""
    if kernel not in KERNELS:
        raise ExportError(f"kernel must be one of {', '.join(KERNELS)}, not {kernel!r}")
    gf_own, gf_cfg, gf_source = load_frame_generator(frames_ckpt)
    gv, gv_cfg, video = load_sequence_generator(video_ckpt)
    if not same_state(gf_own.state_dict(), video["frames_generator"]):
        raise ExportError(
            f"{video_ckpt} was trained over another G_F than {frames_ckpt}; give its own G_F with --frames, "
            "and another one with --swap-frames"
        )
    if swap_frames is not None:
        gf, used_cfg, used_source = load_frame_generator(swap_frames)
        if used_cfg.latent != gf_cfg.latent:
            raise ExportError(f"{swap_frames} has latent size {used_cfg.latent}; G_V emits {gf_cfg.latent}")
    else:
        gf, used_cfg, used_source = gf_own, gf_cfg, gf_source
    video_model = VideoGenerator(gv, gf).eval()
    trained = gf_cfg.preset != "smoke" and gv_cfg.preset != "smoke"
    meta = {
        "variant": name,
        "trained": trained,
        "latent": gf_cfg.latent,
        "frames": gv_cfg.video_length,
        "resolution": 30,
        "frames_balls": used_cfg.balls,
        "video_balls": gv_cfg.balls,
        "frames_preset": used_cfg.preset,
        "video_preset": gv_cfg.preset,
        "frames_steps": used_source["step"],
        "video_steps": video["step"],
        "opset": OPSET,
        "note": note,
        "sources": {
            "frames_checkpoint": {k: used_source[k] for k in ("path", "sha256", "step")},
            "video_checkpoint": {"path": str(video_ckpt), "sha256": sha256(video_ckpt), "step": video["step"]},
            **(
                {"video_trained_over": {k: gf_source[k] for k in ("path", "sha256", "step")}}
                if swap_frames is not None
                else {}
            ),
        },
    }
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        forms = {"subpixel": rewrite(gf), "transposed": gf}
        chosen = [kernel] if kernel != "fastest" else list(forms)
        staged: dict[str, dict[str, tuple[Path, float]]] = {}
        for form in chosen:
            written, folder = forms[form], Path(tmp) / form
            folder.mkdir()
            staged[form] = {}
            sequence = _with_eye(gv, written, swap_frames is None, form)
            for kind, module, export, outputs in (
                ("frames", _FramesOnly(gf).eval(), _FramesOnly(written).eval(), ["frames"]),
                ("video", video_model, VideoGenerator(sequence, written).eval(), ["video", "z_frames"]),
            ):
                path = folder / f"{name}-{kind}.onnx"
                _export(export, gf_cfg.latent, outputs, path)
                parity = check(module, path, gf_cfg.latent)  # against the networks as trained
                staged[form][kind] = (path, parity)
        if kernel == "fastest":
            timing = {form: videos_per_s(staged[form]["video"][0], gf_cfg.latent) for form in forms}
            kernel = max(timing, key=lambda form: statistics.geometric_mean(timing[form].values()))
            meta["kernel_timing"] = {
                "videos_per_s": {form: {str(b): r for b, r in rates.items()} for form, rates in timing.items()},
                "chosen": kernel,
            }
        meta["kernel"] = kernel
        for kind, (path, parity) in staged[kernel].items():  # every check passed: label them, move them in
            _with_metadata(path, {**meta, "model": kind, "subpixel": kernel == "subpixel"})
            final = out / path.name
            os.replace(path, final)
            files[kind] = {"file": final.name, "sha256": sha256(final), "max_abs_diff_vs_torch": parity}
    training = {"frames": training_record(gf_cfg, gf_source["step"]), "video": training_record(gv_cfg, video["step"])}
    entry = {**meta, "training": training, "files": files, "table1": table}
    if swap_frames is not None:
        entry["training"]["swapped_frames"] = training_record(used_cfg, used_source["step"])
    card.record(out, name, entry, make_default)
    return entry


def _with_eye(gv: SequenceGenerator, written: nn.Module, own: bool, form: str) -> SequenceGenerator:
    """The G_V to export beside the G_F ``written`` (in the form being exported). A looking G_V keeps
    seeing through the G_F it was trained over: without a swap that is ``written`` itself, so the video
    model draws each frame once; under a swap its own eye, in the same form as ``written``."""
    if gv.eye is None:
        return gv
    out = copy.deepcopy(gv)
    if own:
        return out.attach_eye(written)
    return out.attach_eye(rewrite(gv.eye) if form == "subpixel" else gv.eye)


def training_record(cfg: StageConfig, step: int | None = None) -> dict[str, Any]:
    """How a stage was trained, for the model card: the command line that reproduces its config
    (preset + every override; data and output paths aside) and the data set's size and seed.

    ``step``: the step of the checkpoint exported. A run stopped or picked before its planned end is
    reproduced by ``--steps <step>`` (randomness is a function of seed and step, the learning rates
    constant), so that is what the command says."""
    stage = FRAMES if isinstance(cfg, FramesConfig) else VIDEO
    if step is not None and step != cfg.total_steps:
        cfg = replace(cfg, steps=step)
    return {
        "command": " ".join(["python -m training.run", f"--stage {stage}", f"--preset {cfg.preset}", *flags_of(cfg)]),
        "steps": cfg.total_steps, "batch": cfg.batch, "balls": cfg.balls,
        "data": {"sequences": cfg.data_sequences, "length": cfg.data_length, "seed": cfg.data_seed},
    }  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m export", description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=Path, required=True, help="frames checkpoint: the G_F that G_V was trained over")
    p.add_argument("--video", type=Path, required=True, help="video checkpoint (G_V)")
    p.add_argument("--swap-frames", type=Path, help="put this G_F under G_V instead (e.g. one trained on 1 ball)")
    p.add_argument("--name", required=True, help="variant name, e.g. 3balls")
    p.add_argument("--out", type=Path, required=True, help="models folder to write (e.g. my-models/)")
    p.add_argument("--replace-shipped", action="store_true",
                   help="allow --out to be the repository's models/ (the shipped models)")  # fmt: skip
    p.add_argument("--table", type=Path, help="table1.json from `python -m training.evaluate` to record")
    p.add_argument("--default", action="store_true", help="make this variant the service's default")
    p.add_argument("--note", default="", help="free text for the model card (how it was trained, caveats)")
    p.add_argument("--kernel", choices=KERNELS, default="subpixel",
                   help="G_F's transposed convolutions as sub-pixel convolutions (default), as trained, or "
                        "the faster of the two in ONNX Runtime on this machine (times both; recorded)")  # fmt: skip
    args = p.parse_args(argv)
    if args.out.resolve() == SHIPPED.resolve() and not args.replace_shipped:
        p.error(f"--out {args.out} is the shipped models folder; pass --replace-shipped to change the shipped models")
    if not args.name.replace("-", "").replace("_", "").isalnum():
        p.error("--name may hold letters, digits, '-' and '_' only")
    table = json.loads(args.table.read_text()) if args.table else None
    try:
        entry = export_variant(
            args.frames,
            args.video,
            args.name,
            args.out,
            args.swap_frames,
            table,
            args.default,
            args.note,
            args.kernel,
        )
    except (ExportError, checkpoint.CheckpointError, card.ManifestError) as exc:
        print(f"export refused: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    if timing := entry.get("kernel_timing"):
        rates = "; ".join(
            f"{form} " + " / ".join(f"{r:.0f}" for r in by_batch.values())
            for form, by_batch in timing["videos_per_s"].items()
        )
        print(f"kernel: {timing['chosen']} (videos/s at batch {' / '.join(map(str, TIMING_BATCHES))}: {rates})")
    for kind, f in entry["files"].items():
        print(f"wrote {args.out / f['file']} ({kind}; max |ONNX - torch| = {f['max_abs_diff_vs_torch']:.1e})")
    print(f"recorded {args.name} in {args.out / 'manifest.json'}")
