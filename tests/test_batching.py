"""The in-process adaptive batcher: grouping, order, limits, failures and cancelled requests."""

import asyncio
import threading

import numpy as np
import pytest

from inference.batching import MicroBatcher, Overloaded


class Recorder:
    """A run function that records its calls and can be held back until released."""

    def __init__(self, fail_key: str | None = None) -> None:
        self.calls: list[tuple[str, int]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.fail_key = fail_key

    def __call__(self, key: str, rows: np.ndarray) -> np.ndarray:
        self.gate.wait(10)
        self.calls.append((key, len(rows)))
        if key == self.fail_key:
            raise ValueError(f"bad key {key}")
        return rows * 2


async def hold_worker(batcher: MicroBatcher, run: Recorder) -> asyncio.Task:
    """Start a one-row request that holds the worker at the gate, so what comes next queues up."""
    run.gate.clear()
    blocker = asyncio.create_task(batcher("a", np.zeros((1, 1))))
    await asyncio.sleep(0.05)
    return blocker


def test_concurrent_requests_share_calls_and_get_their_own_rows():
    run, sizes = Recorder(), []
    batcher = MicroBatcher(run, max_rows=64, on_batch=sizes.append)

    async def main():
        run.gate.clear()  # the first request runs alone and holds the worker; the rest queue up
        first = asyncio.create_task(batcher("a", np.full((1, 3), -1.0)))
        await asyncio.sleep(0.05)
        rest = [asyncio.create_task(batcher("a" if i % 3 else "b", np.full((i % 2 + 1, 3), float(i))))
                for i in range(20)]  # fmt: skip
        await asyncio.sleep(0.05)
        run.gate.set()
        return await first, await asyncio.gather(*rest)

    first, rest = asyncio.run(main())
    assert first.tolist() == [[-2.0] * 3]
    for i, out in enumerate(rest):
        assert out.shape == (i % 2 + 1, 3) and (out == 2.0 * i).all()
    # 1 call for the first request, then one per key for the 20 queued ones
    assert run.calls[0] == ("a", 1) and sorted(run.calls[1:]) == [("a", 20), ("b", 10)]
    assert sizes == [1, 30]


def test_max_rows_splits_batches():
    run, sizes = Recorder(), []
    batcher = MicroBatcher(run, max_rows=8, on_batch=sizes.append)

    async def main():
        run.gate.clear()
        tasks = [asyncio.create_task(batcher("a", np.zeros((3, 1)))) for _ in range(7)]
        await asyncio.sleep(0.05)
        run.gate.set()
        await asyncio.gather(*tasks)

    asyncio.run(main())
    assert all(n <= 8 for n in sizes) and sum(sizes) == 21


def test_overload_is_refused_not_queued():
    run = Recorder()
    batcher = MicroBatcher(run, max_rows=4, max_queued_rows=6)

    async def main():
        run.gate.clear()
        held = []
        for _ in range(4):  # the first runs (held at the gate), three wait: 6 rows, the limit
            held.append(asyncio.create_task(batcher("a", np.zeros((2, 1)))))
            await asyncio.sleep(0.02)
        assert batcher.queued_rows == 6
        with pytest.raises(Overloaded, match="limit 6"):
            await batcher("a", np.zeros((2, 1)))
        run.gate.set()
        await asyncio.gather(*held)
        return await batcher("a", np.zeros((2, 1)))  # served again once the queue drains

    assert asyncio.run(main()).shape == (2, 1)
    assert batcher.queued_rows == 0


def test_a_failing_run_fails_only_its_group():
    run = Recorder(fail_key="bad")
    batcher = MicroBatcher(run)

    async def main():
        blocker = await hold_worker(batcher, run)
        good = asyncio.create_task(batcher("a", np.ones((1, 1))))
        bad = asyncio.create_task(batcher("bad", np.ones((1, 1))))
        await asyncio.sleep(0.05)
        run.gate.set()
        await blocker
        with pytest.raises(ValueError, match="bad key"):
            await bad
        return await good

    assert asyncio.run(main()).tolist() == [[2.0]]


def test_cancelled_requests_are_skipped():
    run = Recorder()
    batcher = MicroBatcher(run)

    async def main():
        blocker = await hold_worker(batcher, run)
        gone = asyncio.create_task(batcher("a", np.zeros((5, 1))))
        kept = asyncio.create_task(batcher("a", np.zeros((2, 1))))
        await asyncio.sleep(0.01)
        gone.cancel()  # a client that timed out
        run.gate.set()
        await blocker
        return await kept

    assert asyncio.run(main()).shape == (2, 1)
    assert run.calls == [("a", 1), ("a", 2)]
