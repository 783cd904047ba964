"""`make bench`: every benchmark in one run, on this machine, one after another (never side by side);
writes benchmarks/results.json and benchmarks/results.md (the table the README quotes).

Sizes are chosen to finish in ~10 minutes on the project's 2-core machine; each script's
--help lists its knobs for longer runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

STEPS = {  # name: (script, arguments)
    "generator": ("generator.py", ["--repeats", "9"]),
    "encoding": ("encoding.py", ["--repeats", "5"]),
    "http": ("http_load.py", ["--requests", "300", "--concurrency", "1,8,32"]),
    "data": ("data_throughput.py", ["--loop-sequences", "40", "--blocks", "2", "--repeats", "3",
                                    "--write-sequences", "2000"]),
    "ensemble": ("ensemble_step.py", ["--steps", "5", "--repeats", "3"]),
    "recipe": ("recipe.py", ["--steps", "200"]),
}  # fmt: skip


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def pct(x: float) -> str:
    return f"{x:.0%}"


def markdown(r: dict) -> str:
    g, e, h, d, s = r.get("generator"), r.get("encoding"), r.get("http"), r.get("data"), r.get("ensemble")
    rc = r.get("recipe")
    out = [f"Measured {r['date']} on {r['machine']}; {r['note']}", ""]
    dates = r.get("measured", {})
    if len(set(dates.values())) > 1:  # a run with --only kept sections of an earlier one
        out[0] += " (by section: " + ", ".join(f"{k} {v}" for k, v in dates.items()) + ")"
    if g:
        floor = max(g["attainable_flops_per_s"].values())
        out += ["**Generator compute** (the shipped `"
                f"{g['variant']}` video generator, z_v → 30 frames; {g['threads']} threads; medians of "
                f"{g['repeats']} runs). FLOPs counted from the ONNX graph as trained: "
                f"{g['flops_per_video'] / 1e6:.0f} M per video; attainable rate (float32 matmul): "
                f"{floor / 1e9:.1f} GFLOP/s.", "",
                "| batch | ONNX Runtime videos/s | PyTorch eager videos/s | ORT / PyTorch | ORT GFLOP/s "
                "| of attainable |",
                "|---|---|---|---|---|---|"]  # fmt: skip
        for b, o in g["onnxruntime"].items():
            t = g["pytorch_eager"].get(b, {}).get("videos_per_s")
            out.append(f"| {b} | {o['videos_per_s']:.1f} | {t:.1f} | {o['videos_per_s'] / t:.2f}× | "
                       f"{o['flops_per_s'] / 1e9:.1f} | {pct(o['fraction_of_attainable'])} |" if t else
                       f"| {b} | {o['videos_per_s']:.1f} | – | – | {o['flops_per_s'] / 1e9:.1f} | "
                       f"{pct(o['fraction_of_attainable'])} |")  # fmt: skip
        out += ["", "ONNX Runtime options (videos/s at batch 1 / 32): " + "; ".join(
            f"{k} {v['1']:.1f} / {v['32']:.1f}" for k, v in g["onnxruntime_options"].items()) + ".", ""]  # fmt: skip
        if "subpixel_speedup" in g:
            sp = g["subpixel_speedup"]
            out += [f"Sub-pixel export (the shipped files) / ConvTranspose as trained, same run: {sp['1']:.2f}× at "
                    f"batch 1, {sp['32']:.2f}× at batch 32.", ""]  # fmt: skip
    if e:
        out += ["**Encoding** (ms per video, medians):", "", "| format | encoder | scale 1 | scale 4 | correct |",
                "|---|---|---|---|---|"]  # fmt: skip
        rows: dict[tuple[str, str], dict] = {}
        for x in e:
            rows.setdefault((x["format"], x["encoder"]), {})[x["scale"]] = x
        for (fmt, enc), by in rows.items():
            ok = all(v["correct"] for v in by.values())
            note = "yes" if ok else "no (drops identical frames)" if not by[1]["correct_on_a_still_video"] else "no"
            out.append(f"| {fmt} | {enc} | {by[1]['ms_per_video']:.1f} | {by[4]['ms_per_video']:.1f} | {note} |")
        out.append("")
    if h:
        out += [f"**HTTP path** (`/generate_video`, GIF scale {h['body']['scale']}, {h['requests']} requests per "
                "level, load generator on the same cores):", "",
                "| concurrency | where | req/s | p50 ms | p95 ms | p99 ms | errors | videos per ONNX run |",
                "|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for c in h["served"]:
            for where in ("in_process", "served"):
                x = h[where][c]
                b = x.get("batches")
                out.append(f"| {c} | {where.replace('_', ' ')} | {x['throughput_per_s']:.1f} | {x['p50_ms']:.1f} | "
                           f"{x['p95_ms']:.1f} | {x['p99_ms']:.1f} | {x['errors']} | "
                           f"{b['mean_videos_per_run']:.1f} |" if b else
                           f"| {c} | {where.replace('_', ' ')} | {x['throughput_per_s']:.1f} | {x['p50_ms']:.1f} | "
                           f"{x['p95_ms']:.1f} | {x['p99_ms']:.1f} | {x['errors']} | |")  # fmt: skip
        out += ["", f"HTTP overhead at concurrency 1 (p50 served − p50 in process): "
                f"{h['http_overhead_ms_at_1']:.1f} ms. Served / in-process throughput: " + ", ".join(
                    f"{pct(v)} at {c}" for c, v in h["served_over_in_process"].items()) + ".", ""]  # fmt: skip
    if d or s or rc:
        out += ["**Training**:", ""]
        if d:
            out.append(f"- data generator: vectorised {d['vectorised_sequences_per_s']:.0f} sequences/s vs loop "
                       f"{d['loop_sequences_per_s']:.0f} = {d['speedup']}× (medians of {d['runs']})")  # fmt: skip
        if s:
            f, v = s["ms_per_step"]["frames"], s["ms_per_step"]["video"]
            fs, vs = s["sizes"]["frames"], s["sizes"]["video"]
            out.append(f"- stage-1 step, K={fs['discriminators']} (cpu sizes, batch {fs['batch']}): batched "
                       f"ensemble {f['batched']:.0f} ms vs loop {f['loop']:.0f} ms = {f['loop'] / f['batched']:.2f}× "
                       f"(goal 3×); with the head as a grouped convolution (before) {f['conv-head']:.0f} ms "
                       f"(medians of {s['repeats']}, round-robin)")  # fmt: skip
            if "bf16" in f:
                out.append(f"- stage-1 step in bfloat16 (`--amp`; the presets train in float32): {f['bf16']:.0f} "
                           f"ms = {f['loop'] / f['bf16']:.2f}× the loop in float32 (goal 3×), "
                           f"{f['batched'] / f['bf16']:.2f}× the batched ensemble in float32")  # fmt: skip
            out.append(f"- stage-2 step ({vs['discriminators']} video discriminators, batch {vs['batch']}, G_V over "
                       f"a frozen G_F): {v['batched']:.0f} ms; with the head as a grouped convolution (before) "
                       f"{v['conv-head']:.0f} ms = {v['conv-head'] / v['batched']:.2f}×")  # fmt: skip
            if "bf16" in v:
                out.append(
                    f"- stage-2 step in bfloat16 (`--amp`): {v['bf16']:.0f} ms = "
                    f"{v['conv-head'] / v['bf16']:.2f}× the step before the head rewrite, in float32 (goal 2×)"
                )
        if rc:
            for name, x in rc["recipes"].items():
                parts = " + ".join(f"{st['steps']:,} {st['kind']} ({st['minutes']:.0f} min)" for st in x["stages"])
                out.append(
                    f"- the `cpu` recipe, {name}: {parts} = {x['minutes']:.0f} min (time per step from "
                    f"{rc['steps_timed']} steps of each kind through `training.run`"
                    + (f", taking turns in {rc['rounds']} rounds" if rc.get("rounds", 1) > 1 else "")
                    + "; evaluations not counted)"
                )
            ratio = rc["shipped_over_before"]
            out.append(f"- shipped recipe / the one before: {ratio:.2f}× the wall time (goal ≤ 0.5×)")
            before = rc["recipes"]["before"]["minutes"]
            for name, x in rc["recipes"].items():
                if name not in ("shipped", "before"):
                    out.append(f"- {name} / the one before: {x['minutes'] / before:.2f}× the wall time")
        out.append("")
    return "\n".join(out)


BATCH_KEYS = ("1", "8", "32", "256")


def gpu_markdown(folder: Path) -> str:
    """The GPU figures of `make gpu-check` (gpu-check.json, gpu-check-amp.json with --amp) and the recipe
    timed on that machine (recipe-gpu.json: benchmarks/recipe.py run there), where they exist."""
    files = (folder / "gpu-check.json", folder / "gpu-check-amp.json")
    checks = [json.loads(f.read_text()) for f in files if f.exists()]
    if not checks:
        return ""
    first = checks[0]
    out = [f"## GPU: {first['device']} (torch {first['torch']}; `make gpu-check`, measured apart from the rest)",
           "", "| | " + " | ".join("bf16 autocast" if c["amp"] else "float32" for c in checks) + " |",
           "|---|" + "---|" * len(checks)]  # fmt: skip
    for key, r in first["training"].items():
        cells = []
        for c in checks:
            x = c["training"][key]
            cells.append(f"{x['steps_per_s']:.1f} steps/s, {x.get('peak_memory_gib', 0):.2f} GiB; "
                         f"{x['planned_steps']:,} steps: {x['planned_hours']:.2f} h")  # fmt: skip
        out.append(f"| {key} step (batch {r['batch']}, K={r['d_count']}) | " + " | ".join(cells) + " |")
    for b in BATCH_KEYS:
        out.append(f"| generator in PyTorch, batch {b} | "
                   + " | ".join(f"{c['torch_generator'][b]['videos_per_s']:,.0f} videos/s" for c in checks)
                   + " |")  # fmt: skip
    onnx = first["onnx"]
    note = onnx.get("note", "")
    out.append("")
    out.append(f"- ONNX Runtime {onnx.get('onnxruntime', '')} there ({onnx['provider']}"
               + (f"; {note}" if note else "") + "): "
               + ", ".join(f"batch {b} {onnx[b]['videos_per_s']:.0f} videos/s" for b in BATCH_KEYS))  # fmt: skip
    rc = folder / "recipe-gpu.json"
    if rc.exists():
        r = json.loads(rc.read_text())
        steps = ", ".join(f"{k} {v:.0f} ms" for k, v in r["ms_per_step"].items())
        shipped, before = r["recipes"]["shipped"], r["recipes"]["before"]

        def stages(x: dict) -> str:  # the recipe as it was when timed there (the shipped one may have changed)
            return " + ".join(f"{st['steps']:,} {st['kind']}" for st in x["stages"])

        out.append(f"- the `cpu` recipe through `training.run` there: {steps} per step; the shipped recipe when "
                   f"timed ({stages(shipped)}) {shipped['minutes']:.1f} min, the one before ({stages(before)}) "
                   f"{before['minutes']:.1f} min ({r['shipped_over_before']:.2f}×)")  # fmt: skip
    out.append("")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help=f"comma-separated subset of: {', '.join(STEPS)}")
    parser.add_argument("--out", type=Path, default=HERE, help="folder for results.json and results.md")
    args = parser.parse_args()
    chosen = args.only.split(",") if args.only else list(STEPS)
    previous = args.out / "results.json"
    # with --only, the other sections of an earlier run are kept (and say when they were measured)
    results = json.loads(previous.read_text()) if args.only and previous.exists() else {}
    if "date" in results:
        results["measured"] = {k: results["date"] for k in STEPS if k in results} | results.get("measured", {})
    results.update(
        {
            "date": dt.date.today().isoformat(),
            "machine": f"{cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}",
            "note": "one benchmark at a time, nothing else running; medians as stated per table",
        }
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for name in chosen:
            script, extra = STEPS[name]
            out = Path(tmp) / f"{name}.json"
            print(f"== {name}: {script} {' '.join(extra)}", flush=True)
            t0 = time.perf_counter()
            subprocess.run([sys.executable, str(HERE / script), *extra, "--json", str(out)], check=True, env=env,
                           cwd=ROOT)  # fmt: skip
            results[name] = json.loads(out.read_text())
            results.setdefault("measured", {})[name] = dt.date.today().isoformat()
            results.setdefault("seconds", {})[name] = round(time.perf_counter() - t0, 1)
    if "http" in results:
        results["http"]["requests"] = int(STEPS["http"][1][1])
    # the sections' own times (with --only, the kept sections' times are an earlier run's)
    results["seconds"]["total"] = round(sum(v for k, v in results["seconds"].items() if k in STEPS), 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    md = markdown(results) + gpu_markdown(HERE)
    (args.out / "results.md").write_text(md + "\n")
    readme = ROOT / "README.md"
    if args.out == HERE and readme.exists():  # the README quotes results.md between these markers
        text = readme.read_text()
        head, mark, rest = text.partition("<!-- results.md -->")
        _, end_mark, tail = rest.partition("<!-- /results.md -->")
        if mark and end_mark:
            readme.write_text(f"{head}{mark}\n{md}\n{end_mark}{tail}")
    print("\n" + md)
    print(f"this run {time.perf_counter() - t_all:.0f} s; wrote {args.out / 'results.json'} and results.md")


if __name__ == "__main__":
    main()
