"""The `cpu` recipe's wall time, from the training loop itself: each kind of stage in the shipped recipe
and in the one before it runs for a few hundred steps through `python -m training.run` (its data
file, Jacobian clamp, optimizers and logging as in a real run), the median time per step comes from
the run's own stats (the first log interval, with start-up, left out), and each recipe's wall time
is its step counts times those step times. Evaluations, samples and checkpoints are not counted
(a few seconds each, every 250-500 steps). Stages run one after another on all threads.

Run: python benchmarks/recipe.py [--steps 200] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PARENT = ROOT / "checkpoints" / "cpu-frames-3balls.pt"

# kind of stage: the flags of `python -m training.run` (data and output added per run)
KINDS = {
    "frames, unclamped": ["--stage", "frames", "--preset", "cpu", "--jacobian-clamp", "0"],
    "frames, clamped": ["--stage", "frames", "--preset", "cpu"],  # the preset's clamp in [6, 12]
    "frames, 1-ball fine-tune": ["--stage", "frames", "--preset", "cpu", "--balls", "1", "--init-frames", str(PARENT),
                                 "--jc-min", "12", "--jc-max", "18", "--jc-eps", "0.15"],
    "video": ["--stage", "video", "--preset", "cpu", "--frames-checkpoint", str(PARENT)],
}  # fmt: skip

# recipe: (kind, steps) per stage; docs/training-log.md #11 (before) and #13-#14 (shipped)
RECIPES = {
    "shipped": [("frames, clamped", 7000), ("video", 1000), ("frames, 1-ball fine-tune", 2250)],
    "before": [("frames, unclamped", 16000), ("video", 1250), ("frames, 1-ball fine-tune", 3000)],
}


def data_file(folder: Path, balls: int) -> Path:
    out = folder / f"bb{balls}.npy"
    subprocess.run([sys.executable, "-m", "training.data", "--balls", str(balls), "--sequences", "500",
                    "--length", "128", "--seed", "10", "--out", str(out)], check=True, cwd=ROOT,
                   capture_output=True)  # fmt: skip
    return out


def seconds_per_step(kind: str, steps: int, folder: Path, data: Path) -> float:
    log_every = max(steps // 10, 1)
    out = folder / kind.replace(",", "").replace(" ", "-")
    subprocess.run([sys.executable, "-m", "training.run", *KINDS[kind], "--data", str(data), "--steps", str(steps),
                    "--log-every", str(log_every), "--eval-every", str(10 * steps), "--checkpoint-every",
                    str(10 * steps), "--no-progress", "--out", str(out)], check=True, cwd=ROOT,
                   capture_output=True)  # fmt: skip
    stage = "video" if kind == "video" else "frames"
    rows = [json.loads(x) for x in (out / stage / "stats.jsonl").read_text().splitlines()]
    rates = [r["steps_per_s"] for r in rows[1:]] or [rows[0]["steps_per_s"]]
    return 1.0 / statistics.median(rates)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=200, help="steps timed per kind of stage (default 200)")
    p.add_argument("--json", type=Path, help="write the figures here")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = {3: data_file(folder, 3), 1: data_file(folder, 1)}
        per_step = {}
        for kind in KINDS:
            per_step[kind] = seconds_per_step(kind, args.steps, folder, data[1 if "1-ball" in kind else 3])
            print(f"{kind}: {per_step[kind] * 1000:.0f} ms per step", flush=True)
    recipes = {}
    for name, stages in RECIPES.items():
        rows = [{"kind": k, "steps": n, "minutes": n * per_step[k] / 60} for k, n in stages]
        recipes[name] = {"stages": rows, "minutes": sum(r["minutes"] for r in rows)}
        print(f"{name}: " + " + ".join(f"{r['steps']:,} {r['kind']} ({r['minutes']:.0f} min)" for r in rows)
              + f" = {recipes[name]['minutes']:.0f} min")  # fmt: skip
    ratio = recipes["shipped"]["minutes"] / recipes["before"]["minutes"]
    print(f"shipped / before: {ratio:.2f}x the wall time")
    result = {"steps_timed": args.steps, "ms_per_step": {k: v * 1000 for k, v in per_step.items()},
              "recipes": recipes, "shipped_over_before": ratio}  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
