"""One stage-1 training step (D update + G update) at K=48, `cpu` preset sizes, batch 64:
the batched discriminator ensemble vs a Python loop over 48 separate discriminators, each with its
own optimizer (the authors' design). Same batch, same math. Prints median step times and the ratio.

Run: python benchmarks/ensemble_step.py [--steps 20] [--repeats 3] [--variants batched,loop,...]
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
from training.config import make_config
from training.loop import gan_step, make_optimizer
from training.networks import DiscriminatorEnsemble, FrameGenerator


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


def time_steps(step, steps: int) -> float:
    step()  # warm-up (and compilation, where there is some)
    step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t0) / steps


def build(variant: str, cfg, real, z):
    torch.manual_seed(0)
    gf = FrameGenerator(latent=cfg.latent, width=cfg.g_width)
    opt_g = make_optimizer(cfg.optimizer, gf.parameters(), cfg.lr_g)
    if variant == "loop":
        discs = [
            DiscriminatorEnsemble(kind="frame", count=1, width=cfg.d_width, seed=k, minibatch_std=cfg.minibatch_std)
            for k in range(cfg.d_count)
        ]
        opt_ds = [make_optimizer(cfg.optimizer, d.parameters(), cfg.lr_d) for d in discs]
        return lambda: loop_step(gf, discs, opt_g, opt_ds, real, z)
    disc = DiscriminatorEnsemble(
        kind="frame", count=cfg.d_count, width=cfg.d_width, seed=0, minibatch_std=cfg.minibatch_std
    )
    if variant == "contiguous":  # without the channels-last memory format
        disc = disc.to(memory_format=torch.contiguous_format)
        disc.memory_format = torch.contiguous_format
    opt_d = make_optimizer(cfg.optimizer, disc.parameters(), cfg.lr_d)
    d_call = torch.compile(disc) if variant == "compiled" else disc
    return lambda: gan_step(gf, d_call, opt_g, opt_d, real, z, cfg.g_loss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per variant; the median is reported")
    parser.add_argument("--variants", default="batched,loop", help="comma-separated: batched (the ensemble as "
                        "trained), loop, contiguous (batched without channels-last), compiled (batched under "
                        "torch.compile)")  # fmt: skip
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args()
    cfg = make_config("frames", "cpu")
    gen = torch.Generator().manual_seed(0)
    real = torch.rand(cfg.batch, 1, 30, 30, generator=gen) * 2 - 1
    z = torch.randn(cfg.batch, cfg.latent, generator=gen)
    results = {}
    for variant in args.variants.split(","):
        step = build(variant, cfg, real, z)
        runs = [time_steps(step, args.steps) for _ in range(args.repeats)]
        results[variant] = statistics.median(runs)
        listed = ", ".join(f"{r * 1000:.0f}" for r in runs)
        print(f"{variant:24s} {results[variant] * 1000:8.1f} ms/step  (runs: {listed})")
    if "loop" in results and "batched" in results:
        print(f"speed-up of the batched ensemble over the loop: {results['loop'] / results['batched']:.2f}x (goal 3x)")
    summary = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
                   f"{torch.get_num_threads()} threads",
        "K": cfg.d_count, "d_width": cfg.d_width, "g_width": cfg.g_width, "batch": cfg.batch,
        "repeats": args.repeats, "steps": args.steps,
        "ms_per_step": {k: round(v * 1000, 1) for k, v in results.items()},
    }  # fmt: skip
    print(json.dumps(summary))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
