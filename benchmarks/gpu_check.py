"""One check of a CUDA machine: training steps of both stages at the `paper` and `cpu` presets (steps/s,
peak memory), the shipped generator in PyTorch on the device and the shipped ONNX models on
onnxruntime-gpu (videos/s), written to a JSON.

    make gpu-check                      # = python benchmarks/gpu_check.py --json benchmarks/gpu-check.json
    python benchmarks/gpu_check.py --device cpu --presets smoke --steps 2   # the same code path on a CPU

Without CUDA (and without --device cpu) it refuses with one line and exit status 2. Data are simulated
per batch (--data stream), so nothing is written but the JSON. A step is the training loop's own:
the preset's instance noise and Jacobian clamp included. Where the installed onnxruntime has no
CUDAExecutionProvider (the CPU wheel), the JSON says so and the ONNX rates are its CPU's.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BATCHES = (1, 8, 32, 256)


def train_steps(preset: str, stage: str, device, steps: int, amp: bool) -> dict:
    """Median seconds per step (after 2 warm-up steps) and peak device memory of one stage."""
    import torch

    from training import loop
    from training.build import build_frame_generator
    from training.config import FRAMES, VIDEO, make_config
    from training.stages import frames_stage, video_stage

    fcfg = make_config(FRAMES, preset, {"amp": amp})
    with tempfile.TemporaryDirectory() as tmp:
        if stage == FRAMES:
            st = frames_stage(fcfg, Path(tmp), device, None)
        else:
            vcfg = make_config(VIDEO, preset, {"amp": amp})
            gf = (build_frame_generator(fcfg), fcfg, {"path": "untrained"})
            st = video_stage(vcfg, Path(tmp), device, None, gf)
        cfg = st.config
        amp_ctx = lambda: loop.autocast(device, cfg.amp)  # noqa: E731
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        times = []
        for step in range(steps + 2):
            real = st.real_batch(step)
            z = loop.step_noise(cfg.seed, step, cfg.batch, cfg.latent, device)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            noisy, clamp = loop.step_terms(cfg, step, device)
            t0 = time.perf_counter()
            loop.gan_step(st.generate, st.disc, st.opt_g, st.opt_d, real, z, cfg.g_loss, amp_ctx, noisy,
                          cfg.mode_seeking, clamp)  # fmt: skip
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if step >= 2:
                times.append(time.perf_counter() - t0)
        per_step = float(np.median(times))
        out = {"batch": cfg.batch, "d_count": cfg.d_count, "seconds_per_step": per_step,
               "steps_per_s": 1 / per_step, "steps_timed": steps}  # fmt: skip
        if device.type == "cuda":
            out["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
        out["planned_steps"] = cfg.total_steps
        out["planned_hours"] = cfg.total_steps * per_step / 3600
        return out


def rate(run, batch: int, repeats: int, sync=lambda: None) -> float:
    """Videos per second of ``run`` (one call makes ``batch`` videos): one warm-up call, then at least
    ``repeats`` calls and 0.5 s."""
    run()
    sync()
    t0, n = time.perf_counter(), 0
    while n < repeats or time.perf_counter() - t0 < 0.5:
        run()
        n += 1
    sync()
    return n * batch / (time.perf_counter() - t0)


def torch_rates(device, amp: bool, repeats: int) -> dict:
    """The shipped default variant's G_V and G_F (from checkpoints/) in PyTorch on ``device``."""
    import torch

    from training import loop
    from training.build import load_frame_generator, load_sequence_generator
    from training.networks import VideoGenerator

    gf, _, _ = load_frame_generator(ROOT / "checkpoints" / "cpu-frames-3balls.pt")
    gv, gv_cfg, _ = load_sequence_generator(ROOT / "checkpoints" / "cpu-video-3balls.pt")
    model = VideoGenerator(gv, gf).to(device).eval()
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    out = {"checkpoints": "cpu-frames-3balls.pt + cpu-video-3balls.pt", "amp": amp}
    gen = torch.Generator().manual_seed(0)
    for b in BATCHES:
        z = torch.randn(b, gv_cfg.latent, generator=gen).to(device)

        @torch.no_grad()
        def run(z=z):
            with loop.autocast(device, amp):
                model(z)

        out[str(b)] = {"videos_per_s": rate(run, b, repeats, sync)}
    return out


def onnx_rates(provider: str, repeats: int) -> dict:
    import onnxruntime as ort

    from inference.models import load_variants

    variants, default = load_variants(ROOT / "models")
    entry = variants[default].entry
    path = ROOT / "models" / entry["files"]["video"]["file"]
    available = ort.get_available_providers()
    if provider not in available:
        provider = "CPUExecutionProvider"
    session = ort.InferenceSession(str(path), providers=[provider])
    used = session.get_providers()[0]
    rng = np.random.default_rng(0)
    out = {"variant": default, "provider": used, "available_providers": available,
           "onnxruntime": ort.__version__}  # fmt: skip
    for b in BATCHES:
        z = rng.standard_normal((b, entry["latent"]), dtype=np.float32)
        out[str(b)] = {"videos_per_s": rate(lambda z=z: session.run(["video"], {"z": z}), b, repeats)}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu (to try the script without a GPU)")
    p.add_argument("--presets", default="paper,cpu", help="comma-separated presets (default paper,cpu)")
    p.add_argument("--steps", type=int, default=10, help="timed steps per stage and preset")
    p.add_argument("--amp", action="store_true", help="bfloat16 autocast (CUDA)")
    p.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "gpu-check.json")
    args = p.parse_args(argv)
    try:
        import torch
    except ImportError:
        print("gpu-check needs torch: make venv-train (with a CUDA build: TORCH=torch)", file=sys.stderr)
        return 2
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu-check: torch sees no CUDA device (is this a CUDA build of torch on a GPU machine?); "
              "nothing was measured", file=sys.stderr)  # fmt: skip
        return 2
    device = torch.device(args.device)
    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__, "amp": args.amp, "training": {},
    }  # fmt: skip
    for preset in args.presets.split(","):
        for stage in ("frames", "video"):
            r = train_steps(preset, stage, device, args.steps, args.amp)
            result["training"][f"{preset} {stage}"] = r
            mem = f", peak {r['peak_memory_gib']:.2f} GiB" if "peak_memory_gib" in r else ""
            plan = f"the preset's {r['planned_steps']:,} steps: {r['planned_hours']:.2f} h"
            print(f"{preset:>6} {stage:<6} batch {r['batch']:>3}, K={r['d_count']}: "
                  f"{r['steps_per_s']:7.2f} steps/s{mem}; {plan}", flush=True)  # fmt: skip
    result["torch_generator"] = torch_rates(device, args.amp, 5)
    print(f"PyTorch generator on {device.type}{' (bf16 autocast)' if args.amp and device.type == 'cuda' else ''}: "
          + ", ".join(f"batch {b} {result['torch_generator'][str(b)]['videos_per_s']:.0f}" for b in BATCHES)
          + " videos/s")  # fmt: skip
    provider = "CUDAExecutionProvider" if device.type == "cuda" else "CPUExecutionProvider"
    result["onnx"] = onnx_rates(provider, 5)
    missing = provider != result["onnx"]["provider"]
    if missing:
        result["onnx"]["note"] = f"this onnxruntime has no {provider}: the rates are its CPU's"
    print(f"ONNX ({result['onnx']['provider']}{', no CUDA provider installed' if missing else ''}): "
          + ", ".join(f"batch {b} {result['onnx'][str(b)]['videos_per_s']:.0f} videos/s" for b in BATCHES))  # fmt: skip
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
