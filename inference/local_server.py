"""Run the service in a real `bentoml serve` subprocess on a loopback port until it is ready, then
stop it: what the tests, the benchmarks and scripts that need a live server share."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


@contextmanager
def bentoml_serve(
    bentoml: str, cwd: Path, port: int, env: dict[str, str], timeout: float = 120.0, pids: list[int] | None = None
) -> Iterator[str]:
    """Yield the base URL once /readyz answers 200 (the server's pid is appended to ``pids``); the
    server's output goes to $TMPDIR/bentoml-serve-<port>.log."""
    log = open(os.path.join(os.environ.get("TMPDIR", "/tmp"), f"bentoml-serve-{port}.log"), "w+b")
    proc = subprocess.Popen(
        [bentoml, "serve", "service:BouncingBalls", "--host", "127.0.0.1", "--port", str(port)],
        cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    if pids is not None:
        pids.append(proc.pid)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"bentoml serve exited with {proc.returncode}:\n{log.read().decode()[-3000:]}")
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"bentoml serve not ready after {timeout}s")
            time.sleep(0.5)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()
