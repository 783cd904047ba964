"""The real `bentoml serve` under hostile input, limits and overload.

Case counts and durations are small enough for CI; `make fuzz` and `make overload` run the full
sizes (FUZZ_CASES, OVERLOAD_SECONDS) and print the figures."""

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import ROOT, env_with, free_port
from tests.fuzzing import FuzzReport, fuzz_by_hand, fuzz_schema
from tests.serving import bentoml_serve

BENTOML = str(Path(sys.executable).with_name("bentoml"))
FIELDS = {
    "/generate_video": ["seed", "format", "fps", "scale", "model"],
    "/generate_videos": ["count", "seed", "format", "fps", "scale", "model"],
    "/generate_frame": ["seed", "z", "scale", "model"],
    "/models": ["unknown"],
}


@pytest.fixture(scope="module")
def server():
    env = env_with(BOUNCING_MODELS_DIR=str(ROOT / "models"))
    with bentoml_serve(BENTOML, ROOT, free_port(), env) as url:
        yield url


def post(url: str, route: str, body: dict | bytes, **kwargs) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"content-type": "application/json", **kwargs.pop("headers", {})}
    return httpx.post(f"{url}{route}", content=content, headers=headers, timeout=60, **kwargs)


def test_fuzz_from_the_openapi_document(server):
    report = FuzzReport()
    fuzz_schema(server, report, cases_per_mode=int(os.environ.get("FUZZ_CASES", 25)))
    fuzz_by_hand(server, report, FIELDS)
    print("\nfuzz:", json.dumps(report.summary()))
    assert not report.problems, "\n".join(report.problems[:20])
    assert report.generated >= 4 * 25 and report.requests >= 500
    assert httpx.get(f"{server}/readyz").status_code == 200
    assert post(server, "/generate_video", {"seed": 1}).status_code == 200  # and still serves


def test_errors_name_the_field(server):
    cases = [
        ("/generate_video", {"sead": 1}, 400, "sead"),
        ("/generate_video", b'{"seed": NaN}', 400, "seed"),
        ("/generate_video", {"fps": 10**30}, 400, "fps"),
        ("/generate_videos", {"count": 64, "scale": 8}, 400, "count x scale^2"),
        ("/generate_frame", {"z": ["x"] * 100}, 400, "z"),
        ("/generate_video", b"[1, 2]", 400, "body"),
    ]
    for route, body, status, named in cases:
        r = post(server, route, body)
        assert r.status_code == status and named in r.json()["error"], (route, body, r.text)
    r = post(server, "/generate_video", b'{"seed": 1}', headers={"content-type": "text/plain"})
    assert r.status_code == 415 and "application/json" in r.json()["error"]
    r = httpx.get(f"{server}/generate_video")
    assert r.status_code == 405 and r.headers["allow"] == "POST"


def test_body_size_limit(server):
    big = b'{"seed": 1, "pad": "' + b"x" * 70_000 + b'"}'
    r = post(server, "/generate_video", big)
    assert r.status_code == 413 and "65536" in r.json()["error"]

    def chunks():  # no Content-Length: the limit applies while the body streams in
        yield b'{"seed": 1, "pad": "'
        for _ in range(100):
            yield b"x" * 1000
        yield b'"}'

    r = httpx.post(f"{server}/generate_video", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert post(server, "/generate_video", {"seed": 1}).status_code == 200


async def _hammer(url: str, clients: int, seconds: float, body: dict) -> dict:
    """`clients` loops posting `body` for `seconds`; statuses, latencies of the 200s, errors."""
    statuses, latencies, errors = {}, [], []
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def loop():
            while time.monotonic() < deadline:
                t0 = time.perf_counter()
                try:
                    r = await client.post("/generate_video", json=body)
                except httpx.HTTPError as exc:
                    errors.append(repr(exc))
                    continue
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                if r.status_code == 200:
                    latencies.append(time.perf_counter() - t0)
                elif r.status_code in (429, 503):
                    assert r.json()["error"]
                    await asyncio.sleep(0.05)  # a polite client backs off a little

        await asyncio.gather(*(loop() for _ in range(clients)))
    return {"statuses": statuses, "latencies": sorted(latencies), "errors": errors}


def _tree_rss(pid: int) -> int:
    proc = psutil.Process(pid)
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def test_overload_sheds_load_and_recovers():
    """4x more clients than the concurrency limit: 429/503 sheds the excess, memory stays bounded,
    and the service answers normally right afterwards."""
    limit, seconds = 8, float(os.environ.get("OVERLOAD_SECONDS", 8))
    env = env_with(BOUNCING_MODELS_DIR=str(ROOT / "models"), BOUNCING_MAX_CONCURRENCY=str(limit))
    pids = []
    with bentoml_serve(BENTOML, ROOT, free_port(), env, pids=pids) as url:
        rss_before = _tree_rss(pids[0])  # `bentoml serve` and its worker processes
        peak, ready = [rss_before], []

        async def watch():
            async with httpx.AsyncClient(base_url=url, timeout=10) as client:
                while True:
                    peak[0] = max(peak[0], _tree_rss(pids[0]))
                    t0 = time.perf_counter()  # readiness under the overload: it bypasses the limit
                    ready.append(((await client.get("/readyz")).status_code, time.perf_counter() - t0))
                    await asyncio.sleep(0.2)

        async def run():
            watcher = asyncio.create_task(watch())
            try:
                return await _hammer(url, 4 * limit, seconds, {"scale": 4})
            finally:
                watcher.cancel()

        result = asyncio.run(run())
        after = [post(url, "/generate_video", {"seed": s}) for s in range(10)]
    served = result["statuses"].get(200, 0)
    shed = sum(n for s, n in result["statuses"].items() if s in (429, 503))
    lat = result["latencies"]
    figures = {
        "clients": 4 * limit, "max_concurrency": limit, "seconds": seconds, "statuses": result["statuses"],
        "served_per_s": round(served / seconds, 1), "shed_fraction": round(shed / max(1, served + shed), 3),
        "p50_ms": round(1e3 * lat[len(lat) // 2], 1) if lat else None,
        "p99_ms": round(1e3 * lat[int(len(lat) * 0.99)], 1) if lat else None,
        "rss_before_mb": round(rss_before / 2**20), "rss_peak_mb": round(peak[0] / 2**20),
        "after": [r.status_code for r in after],
        "readyz_checks": len(ready), "readyz_max_ms": round(1e3 * max(t for _, t in ready), 1) if ready else None,
    }  # fmt: skip
    print("\noverload:", json.dumps(figures))
    assert not result["errors"], result["errors"][:5]
    assert set(result["statuses"]) <= {200, 429, 503}, result["statuses"]
    assert served > 0 and shed > 0
    assert peak[0] < rss_before + 1024 * 2**20  # bounded: the queue cannot grow past the limits
    assert all(r.status_code == 200 for r in after)
    assert ready and all(status == 200 for status, _ in ready) and max(t for _, t in ready) < 1.0, ready


def test_per_request_timeout():
    env = env_with(BOUNCING_MODELS_DIR=str(ROOT / "models"), BOUNCING_TIMEOUT_S="0.3")
    with bentoml_serve(BENTOML, ROOT, free_port(), env) as url:
        slow = post(url, "/generate_videos", {"count": 16, "scale": 8, "format": "mp4"})
        assert slow.status_code == 504 and "0.3 seconds" in slow.json()["error"]
        assert httpx.get(f"{url}/readyz").status_code == 200
        assert post(url, "/generate_video", {"seed": 1, "scale": 1}).status_code == 200


def test_bentoml_serve_refuses_a_truncated_model(tmp_path):
    for f in (ROOT / "models").iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    video = tmp_path / "3balls-video.onnx"
    video.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    with pytest.raises(RuntimeError, match=r"cannot start: .*3balls-video\.onnx: not a loadable ONNX model"):
        with bentoml_serve(BENTOML, ROOT, free_port(), env_with(BOUNCING_MODELS_DIR=str(tmp_path))):
            pass


def test_generator_queue_limit_sheds_with_503():
    """Past BOUNCING_MAX_QUEUED_VIDEOS waiting videos, requests get 503 + Retry-After, not a longer queue."""
    env = env_with(BOUNCING_MODELS_DIR=str(ROOT / "models"), BOUNCING_MAX_QUEUED_VIDEOS="8")

    async def burst(url: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            body = {"count": 8, "scale": 1}
            return await asyncio.gather(*(client.post("/generate_videos", json=body) for _ in range(20)))

    with bentoml_serve(BENTOML, ROOT, free_port(), env) as url:
        responses = asyncio.run(burst(url))
        statuses = sorted(r.status_code for r in responses)
        assert set(statuses) == {200, 503}, statuses
        shed = next(r for r in responses if r.status_code == 503)
        assert shed.headers["retry-after"] == "1" and "overloaded" in shed.json()["error"]
        assert post(url, "/generate_videos", {"count": 8, "scale": 1}).status_code == 200


def test_gallery_burst_never_blocks_readiness(server):
    """Ten requests for 16 real videos at scale 8 (CPU work off the event loop, two at a time, the
    rest 429) while /readyz keeps answering within a second."""
    import threading

    statuses, ready = [], []

    def burst():
        r = httpx.get(f"{server}/gallery/real", params={"count": 16, "scale": 8}, timeout=120)
        statuses.append(r.status_code)

    threads = [threading.Thread(target=burst) for _ in range(10)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        t0 = time.perf_counter()
        assert httpx.get(f"{server}/readyz", timeout=5).status_code == 200
        ready.append(time.perf_counter() - t0)
        time.sleep(0.1)
    for t in threads:
        t.join()
    assert max(ready) < 1.0, ready
    assert set(statuses) <= {200, 429} and 200 in statuses
    r = httpx.get(f"{server}/gallery/real", params={"count": 2}, timeout=60)
    assert r.status_code == 200 and len(r.json()["videos"]) == 2


def test_stalled_bodies_get_408_and_cannot_starve_normal_clients():
    """64 clients send their headers, then trickle the body, against a limit of 8 requests in
    flight: each is answered 408 after BOUNCING_BODY_DEADLINE_S, and meanwhile normal clients are
    served (a trickling body holds no slot: the guard counts a request once its body has arrived)."""
    import socket
    import threading

    stalled, deadline_s = 64, 3.0
    env = env_with(BOUNCING_MODELS_DIR=str(ROOT / "models"), BOUNCING_BODY_DEADLINE_S=str(deadline_s),
                   BOUNCING_MAX_CONCURRENCY="8")  # fmt: skip
    port = free_port()
    answers: list[bytes] = []
    opened = threading.Barrier(stalled + 1)

    def stall():
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(b"POST /generate_video HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 20\r\n\r\n{")  # fmt: skip
            opened.wait()
            for _ in range(int(deadline_s) + 3):  # one byte a second: never the whole body before the deadline
                time.sleep(1)
                try:
                    s.sendall(b" ")
                except OSError:
                    break
            answers.append(s.recv(4096))

    normal: list[tuple[int, float]] = []

    def client(worker: int, until: float):
        i = 0
        with httpx.Client(timeout=30) as http:
            while time.perf_counter() < until:
                t = time.perf_counter()
                r = http.post(f"http://127.0.0.1:{port}/generate_video", json={"seed": 1000 * worker + i, "scale": 1})
                normal.append((r.status_code, time.perf_counter() - t))
                i += 1

    with bentoml_serve(BENTOML, ROOT, port, env) as url:
        threads = [threading.Thread(target=stall) for _ in range(stalled)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        opened.wait()  # every stalled request has sent its headers and part of its body
        clients = [threading.Thread(target=client, args=(w, t0 + deadline_s - 0.5)) for w in range(4)]
        for t in clients:
            t.start()
        for t in [*threads, *clients]:
            t.join()
        assert len(answers) == stalled and all(a.startswith(b"HTTP/1.1 408") for a in answers), answers[:1]
        assert all(b'"field": "body"' in a or b'"field":"body"' in a for a in answers)
        assert time.perf_counter() - t0 < deadline_s + 6
        statuses = [status for status, _ in normal]
        served = statuses.count(200) / len(statuses)
        p99 = sorted(seconds for _, seconds in normal)[max(0, int(0.99 * len(normal)) - 1)]
        print(f"\n{stalled} stalled bodies for {deadline_s:g} s: {len(normal)} normal requests, "
              f"{100 * served:.0f}% served, p99 {1e3 * p99:.0f} ms")  # fmt: skip
        assert len(normal) >= 8 and served == 1.0, sorted(set(statuses))
        shed = [line for line in httpx.get(f"{url}/metrics").text.splitlines()
                if line.startswith('bouncing_shed_total{reason="body_deadline"}')]  # fmt: skip
        assert shed and float(shed[0].rsplit(" ", 1)[1]) == stalled  # /metrics counts them by reason


def test_in_flight_limit_sheds_with_429_and_body_reads_are_capped():
    """The guard's own limits: requests beyond BOUNCING_MAX_CONCURRENCY that have sent their body
    get 429 with this service's error body; bodies beyond BOUNCING_MAX_BODY_READS are refused
    before they are read; health paths bypass both."""
    import socket
    import threading

    env = env_with(BOUNCING_MODELS_DIR=str(ROOT / "models"), BOUNCING_MAX_CONCURRENCY="2",
                   BOUNCING_MAX_BODY_READS="4", BOUNCING_BODY_DEADLINE_S="3")  # fmt: skip
    port = free_port()
    with bentoml_serve(BENTOML, ROOT, port, env) as url:
        socks = []
        for _ in range(4):  # four bodies arriving: the cap
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            s.sendall(b"POST /generate_video HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 20\r\n\r\n{")  # fmt: skip
            socks.append(s)
        time.sleep(0.5)
        refused = post(url, "/generate_video", {"seed": 1})
        assert refused.status_code == 429 and refused.json()["field"] == "body", refused.text
        assert "bodies" in refused.json()["error"] and refused.headers["retry-after"] == "1"
        assert httpx.get(f"{url}/readyz", timeout=2).status_code == 200
        for s in socks:
            s.close()
        time.sleep(0.5)

        results: list[httpx.Response] = []

        def big():
            results.append(post(url, "/generate_videos", {"count": 64, "scale": 4, "seed": 0}))

        threads = [threading.Thread(target=big) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        statuses = sorted(r.status_code for r in results)
        assert 200 in statuses and 429 in statuses and set(statuses) <= {200, 429}, statuses
        busy = next(r for r in results if r.status_code == 429).json()
        assert busy["field"] == "body" and "in flight" in busy["error"]
        metrics = httpx.get(f"{url}/metrics").text
        assert 'bouncing_shed_total{reason="concurrency"}' in metrics


def test_soak_memory_does_not_grow():
    """SOAK_SECONDS (CI: 12; `make soak`: 600) of 4x overload on GIF and MP4 requests: the server's
    resident memory after the warm-up half must not keep growing in the second half."""
    limit, seconds = 8, float(os.environ.get("SOAK_SECONDS", 12))
    env = env_with(BOUNCING_MODELS_DIR=str(ROOT / "models"), BOUNCING_MAX_CONCURRENCY=str(limit))
    pids, samples = [], []
    with bentoml_serve(BENTOML, ROOT, free_port(), env, pids=pids) as url:
        start = _tree_rss(pids[0])

        async def watch():
            t0 = time.monotonic()
            while True:
                samples.append((time.monotonic() - t0, _tree_rss(pids[0])))
                await asyncio.sleep(1.0)

        async def run():
            watcher = asyncio.create_task(watch())
            try:
                return await asyncio.gather(
                    _hammer(url, 2 * limit, seconds, {"scale": 4}),
                    _hammer(url, 2 * limit, seconds, {"scale": 4, "format": "mp4"}),
                )
            finally:
                watcher.cancel()

        results = asyncio.run(run())
        assert post(url, "/generate_video", {"seed": 1}).status_code == 200
    served = sum(r["statuses"].get(200, 0) for r in results)
    half = [rss for t, rss in samples if t >= seconds / 2]
    figures = {
        "seconds": seconds, "served": served, "rss_start_mb": round(start / 2**20),
        "rss_at_half_mb": round(half[0] / 2**20), "rss_end_mb": round(half[-1] / 2**20),
        "rss_max_second_half_mb": round(max(half) / 2**20),
        "rss_every_10pct_mb": [round(samples[int(i * (len(samples) - 1) / 10)][1] / 2**20) for i in range(11)],
    }  # fmt: skip
    print("\nsoak:", json.dumps(figures))
    assert all(not r["errors"] for r in results) and served > 0
    assert max(half) - half[0] < 64 * 2**20  # no growth after the warm-up: a leak would keep climbing
