"""An ASGI middleware that checks every API request before BentoML sees it.

- bodies over ``max_body_bytes`` are refused with 413 (from Content-Length, or while streaming);
- a body that has not fully arrived ``body_deadline_s`` after the request started is answered 408
  (a client's stall is the client's error, not a 504);
- at most ``max_concurrency`` requests are worked on at once (then 429), counted from the moment
  their body has arrived: a client that trickles its body holds no slot, so slow clients cannot
  starve normal ones; at most ``max_body_reads`` bodies are awaited at once (then 429), which bounds
  the memory they hold (each at most ``max_body_bytes``). Health and metrics paths bypass both, as
  they bypass BentoML's own limiter (which this replaces: BentoML's counts a request from its first
  byte);
- API bodies must be JSON objects (or empty): other media types get 415;
- the body is validated against the API's own input model, unknown fields included, then by the
  API's own check (e.g. an unknown model name), so every 4xx names the field and the problem:
  ``{"error": "seed: Input should be ...", "field": "seed"}``;
- API paths answer 405 with a JSON body to anything but POST.

Valid requests reach BentoML byte for byte as they came.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio
from pydantic import BaseModel, ValidationError

from inference.telemetry import shed

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


BYPASS_PATHS = frozenset({"/metrics", "/healthz", "/livez", "/readyz"})  # never limited, as in BentoML


class BodyTooLarge(Exception):
    pass


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(p) for p in loc) or "body"


def validation_error(exc: ValidationError) -> dict[str, Any]:
    """Pydantic's first error as this project's JSON error body (all errors kept under 'detail')."""
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    first = errors[0]
    field = _field(first["loc"])
    return {"error": f"{field}: {first['msg']}", "field": field, "detail": [
        {"field": _field(e["loc"]), "message": e["msg"], "type": e["type"]} for e in errors
    ]}  # fmt: skip


async def _respond(send: Send, status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None) -> None:
    payload = json.dumps(body, ensure_ascii=True).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})


class RequestGuard:
    """See the module docstring. ``models`` maps an API path ('/generate_video') to its input model,
    ``checks`` an API path to a function of the validated input that returns (field, message) for a
    request to refuse with 400, or None."""

    def __init__(
        self,
        app: ASGIApp,
        models: Mapping[str, type[BaseModel]],
        max_body_bytes: int,
        checks: Mapping[str, Callable[[BaseModel], tuple[str, str] | None]] | None = None,
        body_deadline_s: float = 5.0,
        max_concurrency: int | None = None,
        max_body_reads: int | None = None,
    ) -> None:
        self.app = app
        self.max_concurrency, self.max_body_reads = max_concurrency, max_body_reads
        self.in_flight = self.reading = 0
        self.body_deadline_s = body_deadline_s
        self.models = dict(models)
        self.checks = dict(checks or {})
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in BYPASS_PATHS:
            return await self.app(scope, receive, send)
        if path not in self.models:
            return await self._limited(scope, receive, send)
        if scope["method"] != "POST":
            return await _respond(
                send, 405, {"error": f"{path} accepts POST only, not {scope['method']}", "field": "method"},
                {"Allow": "POST"},
            )  # fmt: skip
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        too_large = {"error": f"request body over {self.max_body_bytes} bytes", "field": "body"}
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
            return await _respond(send, 413, too_large)
        if self.max_body_reads is not None and self.reading >= self.max_body_reads:
            shed("body_reads")
            busy = f"over {self.max_body_reads} request bodies are arriving at once; retry shortly"
            return await _respond(send, 429, {"error": busy, "field": "body"}, {"Retry-After": "1"})
        self.reading += 1
        try:
            with anyio.move_on_after(self.body_deadline_s) as deadline:
                body, more = await self._read(receive)
        except BodyTooLarge:
            return await _respond(send, 413, too_large)
        finally:
            self.reading -= 1
        if deadline.cancelled_caught:
            shed("body_deadline")
            return await _respond(
                send,
                408,
                {"error": f"the request body did not arrive within {self.body_deadline_s:g} s", "field": "body"},
            )
        if not more:
            return  # the client went away
        media = headers.get("content-type", "").split(";")[0].strip().lower()
        if media not in ("application/json", ""):  # with or without a body: BentoML would parse it as its type
            return await _respond(
                send, 415, {"error": f"send the body as application/json, not {media!r}", "field": "content-type"}
            )
        try:
            validated = self.models[path].model_validate_json(body or b"{}")
            unknown = sorted(set(json.loads(body or b"{}")) - set(self.models[path].model_fields))
        except ValidationError as exc:
            return await _respond(send, 400, validation_error(exc))
        except (ValueError, RecursionError) as exc:
            return await _respond(send, 400, {"error": f"body: not valid JSON ({exc})", "field": "body"})
        if unknown:
            known = ", ".join(self.models[path].model_fields)
            return await _respond(
                send, 400, {"error": f"unknown field {unknown[0]!r}; fields: {known}", "field": unknown[0]}
            )
        if path in self.checks and (problem := self.checks[path](validated)) is not None:
            return await _respond(send, 400, {"error": problem[1], "field": problem[0]})
        await self._limited(scope, self._replay(body, receive), send)

    async def _limited(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The request, if fewer than ``max_concurrency`` are being worked on; else 429."""
        if self.max_concurrency is not None and self.in_flight >= self.max_concurrency:
            shed("concurrency")
            return await _respond(send, 429, {"error": f"{self.max_concurrency} requests in flight; retry shortly",
                                              "field": "body"}, {"Retry-After": "1"})  # fmt: skip
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1

    async def _read(self, receive: Receive) -> tuple[bytes, bool]:
        """The whole body, refused beyond the limit; (body, False) if the client disconnected."""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b"", False
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), True

    @staticmethod
    def _replay(body: bytes, receive: Receive) -> Receive:
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # later messages (a disconnect) come from the server

        return replay
