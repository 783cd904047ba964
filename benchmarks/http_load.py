"""The HTTP path: a bounded asyncio + httpx load generator against a real `bentoml serve` on
loopback, POST /generate_video (GIF, scale 4) at several concurrencies, against the same work in
process (the service's own generate_video, batcher included, without HTTP).

Reports throughput, p50/p95/p99 latency, errors, and the batch sizes the batcher formed (from the
server's /metrics). The load generator shares the machine's cores with the server.
Run: python benchmarks/http_load.py [--requests 300] [--concurrency 1,8,32] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from inference.local_server import bentoml_serve  # noqa: E402


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def summarise(latencies: list[float], wall: float, errors: int, statuses: dict) -> dict:
    lat = np.array(latencies) * 1e3
    return {"requests": len(latencies) + errors, "throughput_per_s": len(latencies) / wall,
            "p50_ms": float(np.percentile(lat, 50)), "p95_ms": float(np.percentile(lat, 95)),
            "p99_ms": float(np.percentile(lat, 99)), "errors": errors, "statuses": statuses}  # fmt: skip


async def load(call, total: int, concurrency: int) -> dict:
    """``concurrency`` workers share ``total`` calls; ``call(i)`` returns a status code."""
    latencies, statuses, errors = [], {}, 0
    counter = iter(range(total))

    async def worker():
        nonlocal errors
        for i in counter:
            t0 = time.perf_counter()
            try:
                status = await call(i)
            except Exception:  # noqa: BLE001 (a transport error is counted, not raised)
                errors += 1
                continue
            statuses[status] = statuses.get(status, 0) + 1
            if status == 200:
                latencies.append(time.perf_counter() - t0)
            else:
                errors += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return summarise(latencies, time.perf_counter() - t0, errors, statuses)


def batch_histogram(url: str) -> dict[str, float]:
    values = {}
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith("bouncing_batch_videos_bucket"):
            le = line.split('le="')[1].split('"')[0]
            values[le] = float(line.rsplit(" ", 1)[1])
        elif line.startswith(("bouncing_batch_videos_sum", "bouncing_batch_videos_count")):
            values[line.split("{")[0].split(" ")[0].rsplit("_", 1)[1]] = float(line.rsplit(" ", 1)[1])
    return values


def batches_between(before: dict, after: dict) -> dict:
    runs = after.get("count", 0) - before.get("count", 0)
    videos = after.get("sum", 0) - before.get("sum", 0)
    buckets, previous = {}, 0.0
    for le in sorted((k for k in after if k not in ("sum", "count")), key=lambda k: float(k)):
        cumulative = after[le] - before.get(le, 0.0)
        if cumulative - previous:
            buckets[f"<= {le}"] = int(cumulative - previous)
        previous = cumulative
    return {"onnx_runs": int(runs), "videos": int(videos), "mean_videos_per_run": videos / runs if runs else 0,
            "runs_by_size": buckets}  # fmt: skip


async def in_process(concurrency: int, total: int, body: dict) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import service

    instance = service.BouncingBalls()
    from types import SimpleNamespace

    folder = tempfile.mkdtemp()

    async def call(i: int) -> int:
        # the handler as BentoML calls it, with a stand-in for its request context
        ctx = SimpleNamespace(temp_dir=folder, response=SimpleNamespace(headers={}, status_code=200))
        answer = await instance.generate_video(ctx, seed=i, **body)
        if isinstance(answer, Path):
            answer.unlink()
            return 200
        return answer.status_code

    await load(call, 4, 1)  # warm up
    return await load(call, total, concurrency)


async def served(url: str, concurrency: int, total: int, body: dict) -> dict:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:

        async def call(i: int) -> int:
            response = await client.post("/generate_video", json={"seed": i, **body})
            await response.aread()
            return response.status_code

        await load(call, 4, 1)  # warm up (connections, first batches)
        before = batch_histogram(url)
        result = await load(call, total, concurrency)
        result["batches"] = batches_between(before, batch_histogram(url))
        return result


def raw_rate(batch: int = 32, seconds: float = 2.0) -> float:
    """videos/s of the default video model alone in ONNX Runtime (default threads, spinning: the
    fastest for a lone caller), batch ``batch``: the ceiling the served rate is compared with,
    measured in this run."""
    from inference.models import SPIN_ENV, THREADS_ENV, load_variants

    saved = {name: os.environ.pop(name, None) for name in (THREADS_ENV, SPIN_ENV)}
    os.environ[SPIN_ENV] = "1"
    try:
        variants, default = load_variants(ROOT / "models")
    finally:
        os.environ.pop(SPIN_ENV)
        os.environ.update({name: value for name, value in saved.items() if value is not None})
    z = np.random.default_rng(0).standard_normal((batch, variants[default].latent), dtype=np.float32)
    variants[default].generate_videos(z)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        variants[default].generate_videos(z)
        n += 1
    return n * batch / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="requests per concurrency level")
    parser.add_argument("--concurrency", default="1,8,32", help="comma-separated levels")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    body = {"format": "gif", "scale": args.scale}

    results = {"body": body, "in_process": {}, "served": {}, "workers": os.environ.get("BOUNCING_WORKERS", "1"),
               "ort_threads": os.environ.get("BOUNCING_ORT_THREADS", "default"),
               "ort_spin": os.environ.get("BOUNCING_ORT_SPIN", "0")}  # fmt: skip
    results["raw_onnx_videos_per_s"] = raw_rate()
    for c in levels:
        results["in_process"][c] = asyncio.run(in_process(c, args.requests, body))
    env = {**os.environ, "BOUNCING_MODELS_DIR": str(ROOT / "models")}
    bentoml = str(Path(sys.executable).with_name("bentoml"))
    with bentoml_serve(bentoml, ROOT, free_port(), env) as url:
        for c in levels:
            results["served"][c] = asyncio.run(served(url, c, args.requests, body))

    print(f"{'conc':>4} {'where':<10} {'req/s':>7} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'errors':>6}  batches")
    for c in levels:
        for where in ("in_process", "served"):
            r = results[where][c]
            b = r.get("batches")
            batches = f"{b['mean_videos_per_run']:.1f} videos/run {b['runs_by_size']}" if b else ""
            print(f"{c:>4} {where:<10} {r['throughput_per_s']:7.1f} {r['p50_ms']:7.1f} {r['p95_ms']:7.1f} "
                  f"{r['p99_ms']:7.1f} {r['errors']:>6}  {batches}")  # fmt: skip
        ratio = results["served"][c]["throughput_per_s"] / results["in_process"][c]["throughput_per_s"]
        results.setdefault("served_over_in_process", {})[c] = ratio
    if 1 in levels:
        results["http_overhead_ms_at_1"] = results["served"][1]["p50_ms"] - results["in_process"][1]["p50_ms"]
        overhead = results["http_overhead_ms_at_1"]
        print(f"HTTP overhead at concurrency 1 (p50 served - p50 in process): {overhead:.1f} ms")
    for c, ratio in results["served_over_in_process"].items():
        print(f"served / in-process throughput at concurrency {c}: {ratio:.0%}")
    raw = results["raw_onnx_videos_per_s"]
    results["served_over_raw_onnx"] = {c: results["served"][c]["throughput_per_s"] / raw for c in levels}
    for c, ratio in results["served_over_raw_onnx"].items():
        print(f"served at concurrency {c} / raw ONNX Runtime ({raw:.1f} videos/s at batch 32): {ratio:.0%}")
    print(f"(workers {results['workers']}, ONNX Runtime threads {results['ort_threads']}, "
          f"spinning {results['ort_spin']})")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
