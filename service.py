"""BentoML service: bouncing-ball videos and frames from the exported ONNX generators.

POST /generate_video   {"seed", "format": gif|mp4, "fps", "scale", "model"} -> the file, with headers
                       X-Seed, X-Model, X-Consecutive-Frame-MSE (the paper's metric, before encoding)
POST /generate_videos  {"count", "seed", "format", "fps", "scale", "model"} -> JSON, base64 videos
POST /generate_frame   {"seed" | "z", "scale", "model"} -> PNG
POST /models           -> the variants and their manifest entries
GET  /gallery/         -> a page of generated (and real) videos, with each model's Table 1
Files are typed returns (a path with its content type), so BentoML's own clients get the file;
headers go through the request context. Models load from models/ (or $BOUNCING_MODELS_DIR).
Never imports torch.

Limits for a public deployment (environment variables read at start; README "Limits"):
BOUNCING_MAX_BODY_BYTES (65536), BOUNCING_BODY_DEADLINE_S (5, then 408), BOUNCING_TIMEOUT_S (60, then
504), BOUNCING_MAX_CONCURRENCY (64 requests in flight once their body has arrived, then 429),
BOUNCING_MAX_BODY_READS (256 bodies arriving at once, then 429), BOUNCING_MAX_QUEUED_VIDEOS (256
waiting for the generator, then 503), and per request count x scale^2 <= 1024 (so one request cannot
ask for a gigabyte of GIF).
"""

from __future__ import annotations

import base64
import logging
import math
import os
import secrets
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any, Literal

import anyio
import bentoml
import numpy as np
from bentoml.validators import ContentType
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse

from balls.metrics import consecutive_frame_mse
from balls.pixels import to_pixels, to_signed
from inference.batching import BATCH_VIDEOS, MicroBatcher, Overloaded
from inference.gallery import make_gallery
from inference.generate import metrics_of
from inference.http import RequestGuard
from inference.media import MEDIA_TYPES, encode_png, encode_video
from inference.models import MODELS_ENV, ModelError, latent_from_seed, load_variants, providers
from inference.openapi import OpenAPIDocument
from inference.telemetry import ENCODE_SECONDS, GENERATE_SECONDS, REQUEST_SECONDS, TELEPORT_RATE, VIDEO_MSE, shed, timed

log = logging.getLogger("bentoml.bouncing")  # under "bentoml": shown in the server log
MODELS_DIR = Path(os.environ.get(MODELS_ENV) or Path(__file__).resolve().parent / "models")
MAX_SEED = 2**63 - 1
MAX_BODY_BYTES = int(os.environ.get("BOUNCING_MAX_BODY_BYTES", 64 * 1024))
BODY_DEADLINE_S = float(os.environ.get("BOUNCING_BODY_DEADLINE_S", 5))  # a body must arrive by then, else 408
TIMEOUT_S = float(os.environ.get("BOUNCING_TIMEOUT_S", 60))
MAX_CONCURRENCY = int(os.environ.get("BOUNCING_MAX_CONCURRENCY", 64))  # requests worked on at once, then 429
MAX_BODY_READS = int(os.environ.get("BOUNCING_MAX_BODY_READS", 256))  # bodies awaited at once, then 429
# one request's output: count x scale^2 <= this (64 videos at scale 4, or 4 at scale 16: ~30 MB of GIF)
PIXEL_BUDGET = 1024
MAX_QUEUED_VIDEOS = int(os.environ.get("BOUNCING_MAX_QUEUED_VIDEOS", 256))  # then 503
WORKERS = int(os.environ.get("BOUNCING_WORKERS", 1))  # processes, each with its own sessions, batcher and limits

try:  # load at import: a bad models folder stops `bentoml serve` with one clear line, before any worker
    VARIANTS, DEFAULT = load_variants(MODELS_DIR)
except ModelError as exc:
    raise SystemExit(f"cannot start: {exc}") from None

Z_BOUND = 1000.0  # |z_i| at most this: the prior's draws lie within +-6; far larger ones overflow inside G_F

# strict: numbers must be JSON numbers (no "7", no true), strings strings
Seed = Annotated[int | None, Field(default=None, ge=0, le=MAX_SEED, strict=True, description="random if absent")]
Format = Annotated[Literal["gif", "mp4"], Field(default="gif")]  # a literal: only these two strings
Fps = Annotated[int, Field(default=10, ge=1, le=60, strict=True)]
Scale = Annotated[int, Field(default=4, ge=1, le=16, strict=True, description="integer upscaling of the 30x30 frames")]
Model = Annotated[
    str | None, Field(default=None, max_length=64, strict=True, description="variant; default from the manifest")
]
Latent = Annotated[
    list[Annotated[float, Field(strict=True, allow_inf_nan=False, ge=-Z_BOUND, le=Z_BOUND)]] | None,
    Field(default=None, max_length=4096, description=f"G_F's input instead of seed: numbers within +-{Z_BOUND:g}"),
]
VideoFile = Annotated[Path, ContentType("image/gif")]  # or video/mp4 with "format": "mp4"
PngFile = Annotated[Path, ContentType("image/png")]


class Video(BaseModel):
    seed: int
    mse: float = Field(description="consecutive-frame MSE (Table 1) of the 30x30 frames")
    balls_per_frame: list[int]
    teleport_rate: float = Field(description="share of tracked frame pairs in which a ball jumps more than 4 px")
    unexplained_rate: float = Field(description="share of accelerations of balls clear of walls and balls (> 0.5 px)")
    centres: list[list[list[float]]] = Field(
        description="tracked ball centres per frame, [x, y] px in the 30x30 frame, each ball in the same place of the "
        "list while it is tracked; empty for frames that do not show the model's ball count"
    )
    media_type: str
    data: str = Field(description="the file, base64")


class Videos(BaseModel):
    model: str
    format: str
    videos: list[Video]
    mse_mean: float
    mse_std: float


def request_problem(api: str, req: Any) -> tuple[str, str] | None:
    """What is wrong with a request beyond each field's own bounds, as (field, message); None if nothing.
    The request guard answers it with 400 before BentoML parses the body (inference/http.py)."""
    model = getattr(req, "model", None)
    if model is not None and model not in VARIANTS:
        return "model", f"unknown model {model!r}; available: {', '.join(VARIANTS)}"
    if api == "generate_videos":
        if req.seed is not None and req.seed + req.count - 1 > MAX_SEED:
            return "seed", f"seed + count - 1 must be at most {MAX_SEED}"
        if req.count * req.scale**2 > PIXEL_BUDGET:
            return (
                "count",
                f"count x scale^2 must be at most {PIXEL_BUDGET} (got {req.count} x {req.scale}^2); lower either",
            )
    if api == "generate_frame" and req.z is not None:
        latent = VARIANTS[model or DEFAULT].latent
        if req.seed is not None:
            return "z", "give either seed or z, not both"
        if len(req.z) != latent:
            return "z", f"z must hold {latent} numbers, got {len(req.z)}"
        if not all(math.isfinite(v) for v in req.z):
            return "z", "z must hold finite numbers (no NaN or infinity)"
    return None


def refuse(ctx: bentoml.Context, status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
    """An error answer from a handler: the context carries the status (BentoML applies it last)."""
    ctx.response.status_code = status
    ctx.response.headers.update(headers or {})
    return JSONResponse(body, status_code=status)


@bentoml.asgi_app(make_gallery(), path="/gallery")
# no BentoML max_concurrency: the request guard limits requests in flight itself, counted once their
# body has arrived, so clients that trickle their bodies cannot hold every slot (inference/http.py)
@bentoml.service(traffic={"timeout": TIMEOUT_S}, workers=WORKERS)
class BouncingBalls:
    def __init__(self) -> None:
        self.variants, self.default = VARIANTS, DEFAULT
        self.latent = self.variants[self.default].latent
        # concurrent requests' videos run as one ONNX call per variant (inference/batching.py)
        self.batcher = MicroBatcher(self._generate, max_rows=64, max_queued_rows=MAX_QUEUED_VIDEOS,
                                    on_batch=BATCH_VIDEOS.observe)  # fmt: skip
        log.info("ONNX Runtime providers: %s; default model %s", providers(), self.default)

    def _generate(self, name: str, z: np.ndarray) -> np.ndarray:
        """z_v rows (B, latent) of one variant -> video pixels uint8 (B, T, 30, 30); run by the batcher."""
        with timed(GENERATE_SECONDS, model=name):
            return to_pixels(self.variants[name].generate_videos(z))

    async def _videos(self, ctx: bentoml.Context, seeds: list[int], name: str) -> np.ndarray | JSONResponse:
        z = np.stack([latent_from_seed(s, self.latent) for s in seeds])
        try:
            return await self.batcher(name, z)
        except Overloaded as exc:
            shed("queue_full")
            return refuse(
                ctx, 503, {"error": f"overloaded, retry shortly: {exc}", "field": "body"}, {"Retry-After": "1"}
            )

    @staticmethod
    def _checked(ctx: bentoml.Context, api: str, **fields: Any) -> JSONResponse | None:
        """The guard's check again, for calls that do not come through HTTP."""
        problem = request_problem(api, SimpleNamespace(**fields))
        return None if problem is None else refuse(ctx, 400, {"error": problem[1], "field": problem[0]})

    @bentoml.api
    async def generate_video(
        self, ctx: bentoml.Context, seed: Seed = None, format: Format = "gif", fps: Fps = 10, scale: Scale = 4,
        model: Model = None,
    ) -> VideoFile:  # fmt: skip
        """One video as a GIF or MP4 file; headers X-Seed, X-Model, X-Consecutive-Frame-MSE."""
        if (refused := self._checked(ctx, "generate_video", model=model)) is not None:
            return refused
        name = model or self.default
        seed = secrets.randbelow(2**31) if seed is None else seed
        t0 = time.perf_counter()
        videos = await self._videos(ctx, [seed], name)
        if isinstance(videos, JSONResponse):
            return videos
        t1 = time.perf_counter()
        path = Path(ctx.temp_dir) / f"bouncing-{name}-{seed}.{format}"
        await anyio.to_thread.run_sync(lambda: path.write_bytes(encode_video(videos[0], format, fps, scale)))
        t2 = time.perf_counter()
        ENCODE_SECONDS.labels(format).observe(t2 - t1)
        mse = consecutive_frame_mse(to_signed(videos[0]))
        VIDEO_MSE.labels(name).observe(mse)
        REQUEST_SECONDS.labels("generate_video", format).observe(t2 - t0)
        ctx.response.headers.update({
            # generate: z -> frames, through the batching queue; encode: GIF/MP4 (milliseconds)
            "Server-Timing": f"generate;dur={(t1 - t0) * 1e3:.1f}, encode;dur={(t2 - t1) * 1e3:.1f}",
            "X-Seed": str(seed),
            "X-Model": name,
            "X-Consecutive-Frame-MSE": f"{mse:.6f}",
        })  # fmt: skip
        return path

    @bentoml.api
    async def generate_videos(
        self,
        ctx: bentoml.Context,
        count: Annotated[int, Field(default=8, ge=1, le=64, strict=True)] = 8,
        seed: Seed = None,
        format: Format = "gif",
        fps: Fps = 10,
        scale: Scale = 4,
        model: Model = None,
    ) -> Videos:
        """``count`` videos with seeds seed, seed+1, ...: JSON with base64 files and their metrics."""
        if refused := self._checked(ctx, "generate_videos", model=model, seed=seed, count=count, scale=scale):
            return refused
        name = model or self.default
        first = secrets.randbelow(2**31) if seed is None else seed
        seeds = list(range(first, first + count))
        t0 = time.perf_counter()
        videos = await self._videos(ctx, seeds, name)
        if isinstance(videos, JSONResponse):  # shed (503): counted by bouncing_shed_total, not timed
            return videos
        answer = await anyio.to_thread.run_sync(self._videos_answer, name, format, fps, scale, seeds, videos)
        REQUEST_SECONDS.labels("generate_videos", format).observe(time.perf_counter() - t0)
        return answer

    def _videos_answer(
        self, name: str, format: str, fps: int, scale: int, seeds: list[int], videos: np.ndarray
    ) -> Videos:
        n_balls = int(self.variants[name].entry.get("frames_balls", 3))
        items = []
        for s, v in zip(seeds, videos, strict=True):
            with timed(ENCODE_SECONDS, format=format):
                data = encode_video(v, format, fps, scale)
            item = Video(seed=s, media_type=MEDIA_TYPES[format], **metrics_of(v, n_balls),
                         data=base64.b64encode(data).decode("ascii"))  # fmt: skip
            VIDEO_MSE.labels(name).observe(item.mse)
            if math.isfinite(item.teleport_rate):  # NaN: no ball tracked across two frames
                TELEPORT_RATE.labels(name).observe(item.teleport_rate)
            items.append(item)
        mse = [item.mse for item in items]
        return Videos(model=name, format=format, videos=items, mse_mean=float(np.mean(mse)), mse_std=float(np.std(mse)))

    @bentoml.api
    def generate_frame(
        self, ctx: bentoml.Context, seed: Seed = None, z: Latent = None, scale: Scale = 4, model: Model = None
    ) -> PngFile:
        """One frame of G_F as a PNG, from a seed or an explicit latent vector z."""
        if (refused := self._checked(ctx, "generate_frame", model=model, seed=seed, z=z)) is not None:
            return refused
        name = model or self.default
        variant = self.variants[name]
        if z is not None:
            vec, shown = np.asarray(z, dtype=np.float32), "z"
        else:
            seed = secrets.randbelow(2**31) if seed is None else seed
            vec, shown = latent_from_seed(seed, variant.latent), str(seed)
        with timed(REQUEST_SECONDS, endpoint="generate_frame", format="png"):
            frame = to_pixels(variant.generate_frames(vec[None])[0])
            path = Path(ctx.temp_dir) / f"bouncing-{name}-frame-{shown}.png"
            with timed(ENCODE_SECONDS, format="png"):
                path.write_bytes(encode_png(frame, scale))
        ctx.response.headers.update({"X-Seed": shown, "X-Model": name})
        return path

    @bentoml.api
    def models(self) -> dict:
        """The model variants and their manifest entries (provenance, Table 1)."""
        return {"default": self.default, "variants": {n: v.entry for n, v in self.variants.items()}}


# every API request is checked (size, media type, fields, request_problem) before BentoML parses it
BouncingBalls.add_asgi_middleware(
    RequestGuard,
    models={f"/{name}": api.input_spec for name, api in BouncingBalls.apis.items()},
    checks={f"/{name}": (lambda req, api=name: request_problem(api, req)) for name in BouncingBalls.apis},
    max_body_bytes=MAX_BODY_BYTES,
    body_deadline_s=BODY_DEADLINE_S,
    max_concurrency=math.ceil(MAX_CONCURRENCY / WORKERS),  # per worker process, as BentoML splits its own
    max_body_reads=MAX_BODY_READS,
)
# /docs.json completed with what BentoML cannot infer: file media types, headers, the real error body
BouncingBalls.add_asgi_middleware(
    OpenAPIDocument,
    apis=list(BouncingBalls.apis),
    files={"generate_video": [MEDIA_TYPES["gif"], MEDIA_TYPES["mp4"]], "generate_frame": [MEDIA_TYPES["png"]]},
    headers={
        "generate_video": {
            "X-Seed": "the seed of the video's z_v",
            "X-Model": "the variant that made it",
            "X-Consecutive-Frame-MSE": "the paper's Table 1 metric of the 30x30 frames, before encoding",
            "Server-Timing": "generate and encode times (ms)",
        },
        "generate_frame": {"X-Seed": "the seed of z, or 'z' when z was given", "X-Model": "the variant"},
    },
)
