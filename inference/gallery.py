"""The gallery page, mounted by the service at /gallery: a plain HTML/JS page (no CDN) that shows
generated videos with their seed and consecutive-frame MSE (from POST /generate_videos), real
videos of the simulator beside them, and each model's Table 1 (from POST /models).

GET /gallery/                      the page
GET /gallery/real?balls&seed&count&scale
                                   real-data videos (the training simulator) as base64 GIFs + MSE
"""

from __future__ import annotations

import base64
from pathlib import Path

import anyio
import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from balls import motion
from balls.metrics import consecutive_frame_mse
from balls.pixels import to_signed
from balls.sequences import real_video
from inference.media import encode_video
from inference.telemetry import shed

PAGE = Path(__file__).with_name("gallery.html")
LIMITS = {"balls": (1, 5), "seed": (0, 2**31 - 1), "count": (1, 16), "scale": (1, 8)}
DEFAULTS = {"balls": 3, "seed": 0, "count": 4, "scale": 3}


def _int_params(request: Request) -> dict[str, int] | JSONResponse:
    values = {}
    for name, (low, high) in LIMITS.items():
        raw = request.query_params.get(name)
        try:
            value = DEFAULTS[name] if raw is None else int(raw)
        except ValueError:
            return JSONResponse({"error": f"{name} must be an integer, got {raw!r}", "field": name}, status_code=400)
        if not low <= value <= high:
            return JSONResponse({"error": f"{name} must be in {low}..{high}, got {value}", "field": name}, 400)
        values[name] = value
    return values


# simulating and encoding real videos is CPU work: it runs in worker threads, at most this many
# requests at once (more are answered 429), so the event loop (and /readyz) never waits for it
REAL_IN_FLIGHT = 2
_in_flight = 0


async def real(request: Request) -> JSONResponse:
    global _in_flight
    params = _int_params(request)
    if isinstance(params, JSONResponse):
        return params
    if _in_flight >= REAL_IN_FLIGHT:
        shed("gallery_busy")
        return JSONResponse({"error": f"at most {REAL_IN_FLIGHT} real-video requests at once; retry shortly",
                             "field": "body"}, status_code=429, headers={"Retry-After": "1"})  # fmt: skip
    _in_flight += 1
    try:
        body = await anyio.to_thread.run_sync(_real_videos, params)
    finally:
        _in_flight -= 1
    return JSONResponse(body)


def _real_videos(params: dict[str, int]) -> dict:
    videos = [real_video(params["seed"] + i, params["balls"]) for i in range(params["count"])]
    moves = motion.per_video(to_signed(np.stack(videos)), params["balls"])
    items = [
        {
            "seed": params["seed"] + i,
            "mse": float(consecutive_frame_mse(to_signed(v))),
            "teleport_rate": moves[i]["teleport_rate"],
            "unexplained_rate": moves[i]["unexplained_rate"],
            "data": base64.b64encode(encode_video(v, "gif", 10, params["scale"])).decode("ascii"),
        }
        for i, v in enumerate(videos)
    ]
    return {"balls": params["balls"], "media_type": "image/gif", "videos": items}


def make_gallery() -> Starlette:
    html = PAGE.read_text(encoding="utf-8")  # read once, when the service module loads

    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(html)

    return Starlette(routes=[Route("/", page), Route("/real", real)])
