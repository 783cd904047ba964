"""Training steps at `cpu` preset sizes (D update + G update), variants timed round-robin in one run
so that they see the same machine: a slow spell of a shared CPU hits every variant alike.

Stage 1 (frames; K=48, batch 64): the batched discriminator ensemble as trained; ``conv-head``, the
same with its head as a grouped convolution (before the head rewrite); ``loop``, a Python loop over
48 separate discriminators, each with its own optimizer (the authors' design, plain convolutions: the
baseline the speed goal is set against); ``contiguous`` (without channels-last); ``compiled`` (under
torch.compile); ``bf16`` (the batched ensemble under bfloat16 autocast, `--amp`: the same step in
bfloat16 arithmetic, on a CPU with native bfloat16 only). Stage 2 (video; 16 video discriminators,
batch 16, G_V over a frozen G_F): ``batched``, ``conv-head`` and ``bf16``. Same batch in every variant,
and the same math but for ``bf16``. Prints median step times and the ratios.

Run: python benchmarks/ensemble_step.py [--stage frames|video|both] [--steps 10] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from training import losses
from training.build import build_discriminators, build_frame_generator, build_sequence_generator, frame_generator
from training.config import make_config
from training.loop import autocast, gan_step, instance_noise, make_optimizer, native_bf16
from training.networks import DiscriminatorEnsemble, VideoFrames, VideoGenerator

VARIANTS = {
    "frames": ("batched", "conv-head", "loop", "contiguous", "compiled", "bf16"),
    "video": ("batched", "conv-head", "bf16"),
}
DEFAULTS = {"frames": "batched,conv-head,loop,bf16", "video": "batched,conv-head,bf16"}
CPU = torch.device("cpu")


def loop_step(gf, discs, opt_g, opt_ds, real, z):
    """The authors' design: every discriminator its own module, optimizer and backward pass."""
    fake = gf(z)
    for d, opt in zip(discs, opt_ds, strict=True):
        opt.zero_grad(set_to_none=True)
        losses.d_loss(d(real), d(fake.detach())).sum().backward()
        opt.step()
    for d in discs:
        d.requires_grad_(False)
    opt_g.zero_grad(set_to_none=True)
    g = torch.cat([losses.g_loss(d(fake)) for d in discs])
    losses.combine(g, "sum").backward()
    opt_g.step()
    for d in discs:
        d.requires_grad_(True)


def conv_head(disc: DiscriminatorEnsemble) -> DiscriminatorEnsemble:
    """The head as the grouped convolution it is declared as (what every step ran before the rewrite)."""
    disc._head = lambda h: disc.head(h).flatten(1)
    return disc


def time_steps(step, steps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t0) / steps


def build_frames(variant: str):
    cfg = make_config("frames", "cpu")
    gen = torch.Generator().manual_seed(0)
    real = torch.rand(cfg.batch, 1, 30, 30, generator=gen) * 2 - 1
    z = torch.randn(cfg.batch, cfg.latent, generator=gen)
    torch.manual_seed(0)
    gf = frame_generator(cfg)
    opt_g = make_optimizer(cfg.optimizer, gf.parameters(), cfg.lr_g)
    if variant == "loop":
        discs = [
            conv_head(
                DiscriminatorEnsemble(kind="frame", count=1, width=cfg.d_width, seed=k, minibatch_std=cfg.minibatch_std)
            )
            for k in range(cfg.d_count)
        ]
        opt_ds = [make_optimizer(cfg.optimizer, d.parameters(), cfg.lr_d) for d in discs]
        return lambda: loop_step(gf, discs, opt_g, opt_ds, real, z)
    disc = DiscriminatorEnsemble(
        kind="frame", count=cfg.d_count, width=cfg.d_width, seed=0, minibatch_std=cfg.minibatch_std
    )
    if variant == "conv-head":
        conv_head(disc)
    if variant == "contiguous":  # without the channels-last memory format
        disc = disc.to(memory_format=torch.contiguous_format)
        disc.memory_format = torch.contiguous_format
    opt_d = make_optimizer(cfg.optimizer, disc.parameters(), cfg.lr_d)
    d_call = torch.compile(disc) if variant == "compiled" else disc
    return lambda: gan_step(gf, d_call, opt_g, opt_d, real, z, cfg.g_loss, amp(variant))


def build_video(variant: str):
    """Stage 2 as training.stages builds it: G_V over a frozen G_F, the preset's instance noise."""
    cfg, fcfg = make_config("video", "cpu"), make_config("frames", "cpu")
    gen = torch.Generator().manual_seed(0)
    real = torch.rand(cfg.batch, cfg.video_length, 30, 30, generator=gen) * 2 - 1
    z = torch.randn(cfg.batch, cfg.latent, generator=gen)
    vg = VideoGenerator(build_sequence_generator(cfg, fcfg.latent), build_frame_generator(fcfg))
    disc = build_discriminators(cfg, "video")
    if variant == "conv-head":
        conv_head(disc)
    opt_g = make_optimizer(cfg.optimizer, [p for p in vg.parameters() if p.requires_grad], cfg.lr_g)
    opt_d = make_optimizer(cfg.optimizer, disc.parameters(), cfg.lr_d)
    noisy = instance_noise(cfg.seed, 0, cfg.instance_noise, CPU)
    return lambda: gan_step(VideoFrames(vg), disc, opt_g, opt_d, real, z, cfg.g_loss, amp(variant), noisy=noisy)


def amp(variant: str):
    """gan_step's autocast: bfloat16 for the ``bf16`` variant (what `--amp` does), else none."""
    return lambda: autocast(CPU, variant == "bf16")


def measure(stage: str, variants: list[str], steps: int, repeats: int) -> dict[str, float]:
    build = build_frames if stage == "frames" else build_video
    calls = {v: build(v) for v in variants}
    for call in calls.values():  # warm-up (and compilation, where there is some)
        call()
        call()
    runs: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(repeats):  # round-robin: each repeat times every variant once
        for v, call in calls.items():
            runs[v].append(time_steps(call, steps))
    results = {v: statistics.median(r) for v, r in runs.items()}
    for v in variants:
        listed = ", ".join(f"{r * 1000:.0f}" for r in runs[v])
        print(f"{stage} {v:14s} {results[v] * 1000:8.1f} ms/step  (runs: {listed})")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", choices=["frames", "video", "both"], default="both")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per variant; the median is reported")
    parser.add_argument("--variants", help="comma-separated, per stage: frames " + ",".join(VARIANTS["frames"])
                        + "; video " + ",".join(VARIANTS["video"]) + " (default: the first two or three)")  # fmt: skip
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args()
    stages = ["frames", "video"] if args.stage == "both" else [args.stage]
    summary = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
                   f"{torch.get_num_threads()} threads",
        "repeats": args.repeats, "steps": args.steps, "ms_per_step": {}, "sizes": {}, "ratios": {},
    }  # fmt: skip
    for stage in stages:
        asked = (args.variants or DEFAULTS[stage]).split(",")
        variants = [v for v in asked if v in VARIANTS[stage] and (v != "bf16" or native_bf16(CPU))]
        if "bf16" in asked and not native_bf16(CPU):
            print(f"{stage} bf16: left out, this CPU has no native bfloat16 (AVX512-BF16 or AMX)")
        if unknown := [v for v in asked if not any(v in vs for vs in VARIANTS.values())]:
            raise SystemExit(f"unknown variants: {', '.join(unknown)}")
        results = measure(stage, variants, args.steps, args.repeats)
        summary["ms_per_step"][stage] = {k: round(v * 1000, 1) for k, v in results.items()}
        cfg = make_config(stage, "cpu")
        summary["sizes"][stage] = {"discriminators": cfg.d_count, "batch": cfg.batch}
        if "loop" in results:
            ratio = results["loop"] / results["batched"]
            summary["ratios"]["frames_batched_over_loop"] = round(ratio, 2)
            print(f"stage 1: the batched ensemble is {ratio:.2f}x the loop (goal 3x)")
            if "bf16" in results:
                ratio = results["loop"] / results["bf16"]
                summary["ratios"]["frames_bf16_over_loop"] = round(ratio, 2)
                print(f"stage 1: the batched ensemble in bfloat16 (--amp) is {ratio:.2f}x the loop (goal 3x)")
        if "conv-head" in results:
            ratio = results["conv-head"] / results["batched"]
            summary["ratios"][f"{stage}_over_conv_head"] = round(ratio, 2)
            print(f"{stage}: the head rewrite makes the step {ratio:.2f}x as fast")
            if "bf16" in results:
                ratio = results["conv-head"] / results["bf16"]
                summary["ratios"][f"{stage}_bf16_over_conv_head"] = round(ratio, 2)
                print(f"{stage}: the head rewrite and bfloat16 (--amp) make the step {ratio:.2f}x as fast")
    print(json.dumps(summary))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
