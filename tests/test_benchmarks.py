"""The benchmarks' own plumbing still fits the service (a figure from a broken harness is no figure)."""

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import http_load  # noqa: E402


def test_in_process_http_baseline_calls_the_real_handler():
    result = asyncio.run(http_load.in_process(2, 6, {"format": "gif", "scale": 2}))
    assert result["errors"] == 0 and result["statuses"] == {200: 6} and result["p50_ms"] > 0
