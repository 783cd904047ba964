"""The `cpu` recipe's wall time, from the training loop itself: each kind of stage in the shipped recipe
and in the one before it runs for a few hundred steps through `python -m training.run` (its data
file, Jacobian clamp, optimizers and logging as in a real run), the median time per step comes from
the run's own stats (the first log interval, with start-up, left out; the kinds take turns in
``--rounds`` rounds, so that a slow spell hits all of them), and each recipe's wall time
is its step counts times those step times. Evaluations, samples and checkpoints are not counted
(a few seconds each, every 250-500 steps). Stages run one after another on all threads.

Arithmetic: the shipped recipe runs as the `cpu` preset says, the one before it in float32
(`--no-amp`), as it was trained; on a CPU with native bfloat16 the shipped recipe is timed in the
other arithmetic too (`--amp`, bfloat16 autocast, where the preset is float32), to show what the
arithmetic and what the step counts bring.

Run: python benchmarks/recipe.py [--steps 200] [--rounds 2] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from training.config import make_config
from training.loop import native_bf16

ROOT = Path(__file__).resolve().parent.parent
PARENT = ROOT / "checkpoints" / "cpu-frames-3balls.pt"

# the swap's fine-tune from the shipped 3-ball G_F (docs/training-log.md #14)
FINE_TUNE = ["--stage", "frames", "--preset", "cpu", "--balls", "1", "--init-frames", str(PARENT),
             "--jc-min", "12", "--jc-max", "18", "--jc-eps", "0.15"]  # fmt: skip
# kind of stage: the flags of `python -m training.run` (data and output added per run)
KINDS = {
    "frames, unclamped": ["--stage", "frames", "--preset", "cpu", "--jacobian-clamp", "0"],
    "frames, clamped": ["--stage", "frames", "--preset", "cpu"],  # the preset's clamp in [6, 12]
    "frames, 1-ball fine-tune": FINE_TUNE,
    "frames, 1-ball fine-tune, wide discriminators": [*FINE_TUNE, "--d-width", "32"],  # #17
    "video": ["--stage", "video", "--preset", "cpu", "--frames-checkpoint", str(PARENT)],
}

# recipe: (kind, steps) per stage, and its arithmetic; docs/training-log.md #11 (before), #13, #16 and #17
SHIPPED = [("frames, clamped", 7000), ("video", 1000), ("frames, 1-ball fine-tune, wide discriminators", 1750)]
BEFORE = [("frames, unclamped", 16000), ("video", 1250), ("frames, 1-ball fine-tune", 3000)]


def recipes() -> dict[str, tuple[list[tuple[str, int]], bool]]:
    """name -> (stages, bfloat16?): the shipped recipe as the preset trains it, the one before in
    float32 (as it was trained), and, on a CPU with native bfloat16, the shipped recipe in the other
    arithmetic too (with `--amp` where the preset is float32, in float32 where it is bfloat16)."""
    preset = make_config("frames", "cpu").amp and make_config("video", "cpu").amp
    native = native_bf16(torch.device("cpu"))
    out = {"shipped": (SHIPPED, preset and native), "before": (BEFORE, False)}
    if native:
        out["shipped, in float32" if preset else "shipped, with --amp"] = (SHIPPED, not preset)
    return out


def kind_name(kind: str, bf16: bool) -> str:
    """A kind of stage as timed and reported: its name, with ", bf16" where it runs under --amp."""
    return f"{kind}, bf16" if bf16 else kind


def data_file(folder: Path, balls: int) -> Path:
    out = folder / f"bb{balls}.npy"
    subprocess.run([sys.executable, "-m", "training.data", "--balls", str(balls), "--sequences", "500",
                    "--length", "128", "--seed", "10", "--out", str(out)], check=True, cwd=ROOT,
                   capture_output=True)  # fmt: skip
    return out


def step_rates(kind: str, bf16: bool, steps: int, folder: Path, data: Path) -> list[float]:
    """Steps per second of one run of ``steps`` steps, per log window (the first, with start-up, left out)."""
    log_every = max(steps // 10, 1)
    out = folder / kind_name(kind, bf16).replace(",", "").replace(" ", "-")
    arithmetic = "--amp" if bf16 else "--no-amp"
    subprocess.run([sys.executable, "-m", "training.run", *KINDS[kind], arithmetic, "--data", str(data),
                    "--steps", str(steps),
                    "--log-every", str(log_every), "--eval-every", str(10 * steps), "--checkpoint-every",
                    str(10 * steps), "--no-progress", "--out", str(out)], check=True, cwd=ROOT,
                   capture_output=True)  # fmt: skip
    stage = "video" if kind == "video" else "frames"
    rows = [json.loads(x) for x in (out / stage / "stats.jsonl").read_text().splitlines()]
    return [r["steps_per_s"] for r in rows[1:]] or [rows[0]["steps_per_s"]]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=200, help="steps timed per kind of stage (default 200)")
    p.add_argument("--rounds", type=int, default=2,
                   help="the kinds take turns this many times, steps/rounds each (default 2): a slow spell of "
                        "a shared CPU then hits every kind, not the one that runs in it")  # fmt: skip
    p.add_argument("--json", type=Path, help="write the figures here")
    args = p.parse_args(argv)
    plan = recipes()
    timed = sorted({(k, bf16) for stages, bf16 in plan.values() for k, _ in stages}, key=str)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = {3: data_file(folder, 3), 1: data_file(folder, 1)}
        rates: dict[str, list[float]] = {}
        for r in range(args.rounds):
            for kind, bf16 in timed:
                name = kind_name(kind, bf16)
                run = step_rates(kind, bf16, max(args.steps // args.rounds, 2), folder / f"round-{r}",
                                 data[1 if "1-ball" in kind else 3])  # fmt: skip
                rates.setdefault(name, []).extend(run)
        per_step = {name: 1.0 / statistics.median(v) for name, v in rates.items()}
        for name, v in per_step.items():
            print(f"{name}: {v * 1000:.0f} ms per step", flush=True)
    result_recipes = {}
    for name, (stages, bf16) in plan.items():
        rows = [{"kind": kind_name(k, bf16), "steps": n} for k, n in stages]
        for r in rows:
            r["minutes"] = r["steps"] * per_step[r["kind"]] / 60
        result_recipes[name] = {"stages": rows, "minutes": sum(r["minutes"] for r in rows), "bfloat16": bf16}
        print(f"{name}: " + " + ".join(f"{r['steps']:,} {r['kind']} ({r['minutes']:.0f} min)" for r in rows)
              + f" = {result_recipes[name]['minutes']:.0f} min")  # fmt: skip
    ratio = result_recipes["shipped"]["minutes"] / result_recipes["before"]["minutes"]
    print(f"shipped / before: {ratio:.2f}x the wall time")
    result = {"steps_timed": args.steps, "rounds": args.rounds,
              "ms_per_step": {k: v * 1000 for k, v in per_step.items()},
              "recipes": result_recipes, "shipped_over_before": ratio}  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
