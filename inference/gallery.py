"""The gallery page, mounted by the service at /gallery: a plain HTML/JS page (no CDN) that shows
generated videos with their seed, consecutive-frame MSE and motion figures (from POST
/generate_videos), real videos of the simulator in a section of their own, the tracked paths of
both, and each model's measured figures (Table 1, physics, two-sample test; from POST /models).

GET /gallery/                      the page
GET /gallery/real?balls&seed&count&scale&format
                                   real-data videos (the training simulator) as base64 GIF or MP4,
                                   with the same metrics as /generate_videos (tracked centres included)
"""

from __future__ import annotations

import base64
from pathlib import Path

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from balls.sequences import real_video
from inference.generate import metrics_of
from inference.media import MEDIA_TYPES, encode_video
from inference.telemetry import shed

PAGE = Path(__file__).with_name("gallery.html")
LIMITS = {"balls": (1, 5), "seed": (0, 2**31 - 1), "count": (1, 16), "scale": (1, 8)}
DEFAULTS = {"balls": 3, "seed": 0, "count": 4, "scale": 8}
FORMATS = ("gif", "mp4")


def _params(request: Request) -> dict[str, int | str] | JSONResponse:
    fmt = request.query_params.get("format", "gif")
    if fmt not in FORMATS:
        message = f"format must be one of {', '.join(FORMATS)}, got {fmt!r}"
        return JSONResponse({"error": message, "field": "format"}, status_code=400)
    values: dict[str, int | str] = {"format": fmt}
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
    params = _params(request)
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


def _real_videos(params: dict) -> dict:
    fmt, balls = params["format"], params["balls"]
    items = []
    for seed in range(params["seed"], params["seed"] + params["count"]):
        video = real_video(seed, balls)
        data = encode_video(video, fmt, 10, params["scale"])
        items.append({"seed": seed, **metrics_of(video, balls), "media_type": MEDIA_TYPES[fmt],
                      "data": base64.b64encode(data).decode("ascii")})  # fmt: skip
    return {"balls": balls, "format": fmt, "media_type": MEDIA_TYPES[fmt], "videos": items}


def make_gallery() -> Starlette:
    html = PAGE.read_text(encoding="utf-8")  # read once, when the service module loads

    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(html)

    return Starlette(routes=[Route("/", page), Route("/real", real)])
