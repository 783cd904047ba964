"""In-process adaptive batching: the rows of concurrent requests run as one ONNX call.

One worker task takes whatever is queued (up to ``max_rows``), runs it in a thread, hands each
request its rows back, and starts again with whatever queued meanwhile. A request that finds the
worker idle runs at once (no waiting window); under load, batches grow with the queue. Requests are
grouped by key (the model variant) within a batch.

Why not BentoML's batchable API: it reaches the batched method through an HTTP hop to the service's
own app, which was measured to cost more per request than this whole path (benchmarks/results.md).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio
import numpy as np
from prometheus_client import Histogram

# on the service's /metrics; defined here, imported once, so reloading service.py cannot register it twice
BATCH_VIDEOS = Histogram("bouncing_batch_videos", "videos per ONNX run (adaptive batching)",
                         buckets=(1, 2, 4, 8, 16, 32, 64))  # fmt: skip


class Overloaded(RuntimeError):
    """More rows queued than the batcher accepts; the caller should answer 503."""


@dataclass
class _Request:
    key: str
    rows: np.ndarray
    future: asyncio.Future = field(repr=False)


class MicroBatcher:
    def __init__(
        self,
        run: Callable[[str, np.ndarray], np.ndarray],
        max_rows: int = 64,
        max_queued_rows: int = 512,  # rows waiting (not yet running) before requests are refused
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.run = run  # (key, rows (B, ...)) -> results (B, ...), called in a worker thread
        self.max_rows = max_rows
        self.max_queued_rows = max_queued_rows
        self.on_batch = on_batch  # told the rows of every batch (metrics)
        self.queue: deque[_Request] = deque()
        self.queued_rows = 0
        self._wake: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def __call__(self, key: str, rows: np.ndarray) -> np.ndarray:
        if self.queued_rows + len(rows) > self.max_queued_rows:
            raise Overloaded(f"{self.queued_rows} videos already queued (limit {self.max_queued_rows})")
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._worker is None or self._worker.done():
            self._loop, self._wake = loop, asyncio.Event()
            self._worker = loop.create_task(self._work())
        request = _Request(key, rows, loop.create_future())
        self.queue.append(request)
        self.queued_rows += len(rows)
        self._wake.set()
        return await request.future

    def _take(self) -> list[_Request]:
        """Queued requests up to max_rows rows (always at least one)."""
        batch, rows = [], 0
        while self.queue and (not batch or rows + len(self.queue[0].rows) <= self.max_rows):
            request = self.queue.popleft()
            self.queued_rows -= len(request.rows)
            if request.future.cancelled():  # its client timed out or went away
                continue
            batch.append(request)
            rows += len(request.rows)
        return batch

    async def _work(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.queue:
                batch = self._take()
                if batch:
                    await self._run(batch)

    async def _run(self, batch: list[_Request]) -> None:
        if self.on_batch is not None:
            self.on_batch(sum(len(r.rows) for r in batch))
        for key in dict.fromkeys(r.key for r in batch):  # one run per key, in arrival order
            group = [r for r in batch if r.key == key]
            try:
                out = await anyio.to_thread.run_sync(self.run, key, np.concatenate([r.rows for r in group]))
            except Exception as exc:  # every request of the group learns why
                for r in group:
                    if not r.future.done():
                        r.future.set_exception(exc)
                continue
            start = 0
            for r in group:
                if not r.future.done():
                    r.future.set_result(out[start : start + len(r.rows)])
                start += len(r.rows)
