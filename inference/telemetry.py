"""The service's own Prometheus metrics, served on /metrics beside BentoML's (whose
``bentoml_service_request_duration_seconds`` already times every endpoint as a whole):

- ``bouncing_request_seconds{endpoint, format}``: a handler's time from its start to its answer
  (queueing for a batch, generating, encoding, metrics), by output format;
- ``bouncing_generate_seconds{model}``: one ONNX run of a video generator (one batch);
- ``bouncing_encode_seconds{format}``: encoding one video (gif, mp4) or frame (png);
- ``bouncing_shed_total{reason}``: requests answered without work: ``queue_full`` (503, the batcher's
  queue), ``body_deadline`` (408, a body that stalled), ``gallery_busy`` (429, /gallery/real),
  ``concurrency`` (429, too many requests in flight) and ``body_reads`` (429, too many bodies
  arriving at once; inference/http.py);
- ``bouncing_video_mse{model}`` and ``bouncing_video_teleport_rate{model}``: the consecutive-frame MSE
  of every generated video, and the teleport rate of every video whose motion is measured
  (/generate_videos items);
- ``bouncing_batch_videos``: videos per ONNX run (inference/batching.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Histogram

SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
REQUEST_SECONDS = Histogram("bouncing_request_seconds", "handler time of a request, by endpoint and output format",
                            ["endpoint", "format"], buckets=SECONDS)  # fmt: skip
GENERATE_SECONDS = Histogram("bouncing_generate_seconds", "seconds per ONNX run of a video generator (one batch)",
                             ["model"], buckets=SECONDS)  # fmt: skip
ENCODE_SECONDS = Histogram("bouncing_encode_seconds", "seconds to encode one video or frame", ["format"],
                           buckets=SECONDS)  # fmt: skip
SHED = Counter("bouncing_shed", "requests answered without work, by reason", ["reason"])
SHED_REASONS = ("queue_full", "body_deadline", "gallery_busy", "concurrency", "body_reads")
for _reason in SHED_REASONS:  # every series exists from the start, at 0
    SHED.labels(_reason)
VIDEO_MSE = Histogram("bouncing_video_mse", "consecutive-frame MSE of each generated video", ["model"],
                      buckets=(0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.035, 0.04, 0.05, 0.075, 0.1, 0.2))  # fmt: skip
TELEPORT_RATE = Histogram("bouncing_video_teleport_rate", "teleport steps per tracked step of each measured video",
                          ["model"], buckets=(0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0))  # fmt: skip


@contextmanager
def timed(histogram: Histogram, **labels: str) -> Iterator[None]:
    t0 = time.perf_counter()
    try:
        yield
    finally:
        histogram.labels(**labels).observe(time.perf_counter() - t0)


def shed(reason: str) -> None:
    SHED.labels(reason).inc()
