"""BentoML service: bouncing-ball videos and frames from the exported ONNX generators.

POST /generate_video   {"seed", "format": gif|mp4, "fps", "scale", "model"} -> the file, with headers
                       X-Seed, X-Model, X-Consecutive-Frame-MSE (the paper's metric, before encoding)
POST /generate_videos  {"count", "seed", "format", "fps", "scale", "model"} -> JSON, base64 videos
POST /generate_frame   {"seed" | "z", "scale", "model"} -> PNG
POST /models           -> the variants and their manifest entries
GET  /gallery/         -> a page of generated (and real) videos, with each model's Table 1
Models load from models/ (or $BOUNCING_MODELS_DIR). Never imports torch.

Limits for a public deployment (environment variables read at start; README "Limits"):
BOUNCING_MAX_BODY_BYTES (65536), BOUNCING_TIMEOUT_S (60, then 504), BOUNCING_MAX_CONCURRENCY
(64 requests in flight, then 429), BOUNCING_MAX_QUEUED_VIDEOS (256 waiting for the generator, then
503), and per request count x scale^2 <= 1024 (so one request cannot ask for a gigabyte of GIF).
"""

from __future__ import annotations

import base64
import logging
import math
import os
import secrets
import time
from pathlib import Path
from typing import Annotated, Literal

import anyio
import bentoml
import numpy as np
from pydantic import Field
from starlette.responses import JSONResponse, Response

from balls.metrics import consecutive_frame_mse, count_balls
from balls.pixels import to_pixels, to_signed
from inference.batching import BATCH_VIDEOS, MicroBatcher, Overloaded
from inference.gallery import make_gallery
from inference.http import RequestGuard
from inference.media import MEDIA_TYPES, encode_png, encode_video
from inference.models import MODELS_ENV, ModelError, latent_from_seed, load_variants, providers

log = logging.getLogger("bentoml.bouncing")  # under "bentoml": shown in the server log
MODELS_DIR = Path(os.environ.get(MODELS_ENV) or Path(__file__).resolve().parent / "models")
MAX_SEED = 2**63 - 1
MAX_BODY_BYTES = int(os.environ.get("BOUNCING_MAX_BODY_BYTES", 64 * 1024))
TIMEOUT_S = float(os.environ.get("BOUNCING_TIMEOUT_S", 60))
MAX_CONCURRENCY = int(os.environ.get("BOUNCING_MAX_CONCURRENCY", 64))
# one request's output: count x scale^2 <= this (64 videos at scale 4, or 4 at scale 16: ~30 MB of GIF)
PIXEL_BUDGET = 1024
MAX_QUEUED_VIDEOS = int(os.environ.get("BOUNCING_MAX_QUEUED_VIDEOS", 256))  # then 503

try:  # load at import: a bad models folder stops `bentoml serve` with one clear line, before any worker
    LOADED = load_variants(MODELS_DIR)
except ModelError as exc:
    raise SystemExit(f"cannot start: {exc}") from None

Seed = Annotated[int | None, Field(default=None, ge=0, le=MAX_SEED, description="random if absent")]
Format = Annotated[Literal["gif", "mp4"], Field(default="gif")]
Fps = Annotated[int, Field(default=10, ge=1, le=60)]
Scale = Annotated[int, Field(default=4, ge=1, le=16, description="integer upscaling of the 30x30 frames")]
Model = Annotated[str | None, Field(default=None, max_length=64, description="variant; default from the manifest")]


def bad_request(field: str, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "field": field}, status_code=400)


def overloaded(exc: Overloaded) -> JSONResponse:
    return JSONResponse({"error": f"overloaded, retry shortly: {exc}"}, status_code=503, headers={"Retry-After": "1"})


@bentoml.asgi_app(make_gallery(), path="/gallery")
@bentoml.service(traffic={"timeout": TIMEOUT_S, "max_concurrency": MAX_CONCURRENCY}, workers=1)
class BouncingBalls:
    def __init__(self) -> None:
        self.variants, self.default = LOADED
        self.latent = self.variants[self.default].latent
        # concurrent requests' videos run as one ONNX call per variant (inference/batching.py)
        self.batcher = MicroBatcher(self._generate, max_rows=64, max_queued_rows=MAX_QUEUED_VIDEOS,
                                    on_batch=BATCH_VIDEOS.observe)  # fmt: skip
        log.info("ONNX Runtime providers: %s; default model %s", providers(), self.default)

    def _generate(self, name: str, z: np.ndarray) -> np.ndarray:
        """z_v rows (B, latent) of one variant -> video pixels uint8 (B, T, 30, 30); run by the batcher."""
        return to_pixels(self.variants[name].generate_videos(z))

    def _unknown(self, name: str) -> JSONResponse | None:
        """The 400 answer for a model name that is not a loaded variant; None when it is one."""
        if name in self.variants:
            return None
        return bad_request("model", f"unknown model {name!r}; available: {', '.join(self.variants)}")

    async def _videos(self, seeds: list[int], name: str) -> np.ndarray:
        z = np.stack([latent_from_seed(s, self.latent) for s in seeds])
        return await self.batcher(name, z)

    @bentoml.api
    async def generate_video(
        self, seed: Seed = None, format: Format = "gif", fps: Fps = 10, scale: Scale = 4, model: Model = None
    ):  # a starlette Response (the file); BentoML cannot describe one as a return type
        """One video as a GIF or MP4 file; headers X-Seed, X-Model, X-Consecutive-Frame-MSE."""
        name = model or self.default
        if (unknown := self._unknown(name)) is not None:
            return unknown
        seed = secrets.randbelow(2**31) if seed is None else seed
        t0 = time.perf_counter()
        try:
            video = (await self._videos([seed], name))[0]
        except Overloaded as exc:
            return overloaded(exc)
        t1 = time.perf_counter()
        body = await anyio.to_thread.run_sync(encode_video, video, format, fps, scale)
        t2 = time.perf_counter()
        headers = {
            # generate: z -> frames, through the batching queue; encode: GIF/MP4 (milliseconds)
            "Server-Timing": f"generate;dur={(t1 - t0) * 1e3:.1f}, encode;dur={(t2 - t1) * 1e3:.1f}",
            "X-Seed": str(seed),
            "X-Model": name,
            "X-Consecutive-Frame-MSE": f"{consecutive_frame_mse(to_signed(video)):.6f}",
            "Content-Disposition": f'inline; filename="bouncing-{name}-{seed}.{format}"',
        }
        return Response(body, media_type=MEDIA_TYPES[format], headers=headers)

    @bentoml.api
    async def generate_videos(
        self,
        count: Annotated[int, Field(default=8, ge=1, le=64)] = 8,
        seed: Seed = None,
        format: Format = "gif",
        fps: Fps = 10,
        scale: Scale = 4,
        model: Model = None,
    ):  # a JSONResponse
        """``count`` videos with seeds seed, seed+1, ...: JSON with base64 files and their metrics."""
        name = model or self.default
        if (unknown := self._unknown(name)) is not None:
            return unknown
        first = secrets.randbelow(2**31) if seed is None else seed
        if first + count - 1 > MAX_SEED:
            return bad_request("seed", f"seed + count - 1 must be at most {MAX_SEED}")
        if count * scale**2 > PIXEL_BUDGET:
            return bad_request(
                "count", f"count x scale^2 must be at most {PIXEL_BUDGET} (got {count} x {scale}^2); lower either"
            )
        seeds = list(range(first, first + count))
        try:
            videos = await self._videos(seeds, name)
        except Overloaded as exc:
            return overloaded(exc)
        return await anyio.to_thread.run_sync(self._videos_json, name, format, fps, scale, seeds, videos)

    @staticmethod
    def _videos_json(name: str, format: str, fps: int, scale: int, seeds: list[int], videos: np.ndarray) -> Response:
        signed = to_signed(videos)
        mse = consecutive_frame_mse(signed)
        items = [
            {
                "seed": s,
                "mse": float(m),
                "balls_per_frame": count_balls(f).tolist(),
                "media_type": MEDIA_TYPES[format],
                "data": base64.b64encode(encode_video(v, format, fps, scale)).decode("ascii"),
            }
            for s, m, v, f in zip(seeds, mse, videos, signed, strict=True)
        ]
        return JSONResponse(
            {"model": name, "format": format, "videos": items,
             "mse_mean": float(np.mean(mse)), "mse_std": float(np.std(mse))}
        )  # fmt: skip

    @bentoml.api
    def generate_frame(
        self,
        seed: Seed = None,
        z: Annotated[list[float] | None, Field(default=None, max_length=4096)] = None,
        scale: Scale = 4,
        model: Model = None,
    ):  # a starlette Response (the PNG)
        """One frame of G_F as a PNG, from a seed or an explicit latent vector z."""
        name = model or self.default
        if (unknown := self._unknown(name)) is not None:
            return unknown
        if seed is not None and z is not None:
            return bad_request("z", "give either seed or z, not both")
        variant = self.variants[name]
        if z is not None:
            if len(z) != variant.latent:
                return bad_request("z", f"z must hold {variant.latent} numbers, got {len(z)}")
            if not all(math.isfinite(v) for v in z):
                return bad_request("z", "z must hold finite numbers (no NaN or infinity)")
            vec, shown = np.asarray(z, dtype=np.float32), "z"
        else:
            seed = secrets.randbelow(2**31) if seed is None else seed
            vec, shown = latent_from_seed(seed, variant.latent), str(seed)
        frame = to_pixels(variant.generate_frames(vec[None])[0])
        return Response(encode_png(frame, scale), media_type="image/png", headers={"X-Seed": shown, "X-Model": name})

    @bentoml.api
    def models(self) -> dict:
        """The model variants and their manifest entries (provenance, Table 1)."""
        return {"default": self.default, "variants": {n: v.entry for n, v in self.variants.items()}}


# every API request is checked (size, media type, fields) before BentoML parses it; see inference/http.py
BouncingBalls.add_asgi_middleware(
    RequestGuard,
    models={f"/{name}": api.input_spec for name, api in BouncingBalls.apis.items()},
    max_body_bytes=MAX_BODY_BYTES,
)
