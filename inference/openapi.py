"""The served OpenAPI document (/docs.json), completed with what BentoML cannot infer from the
handlers' types: every media type a file answer can have, the headers it carries, the error body
that every 4xx and 5xx answer of this service really has, and a link to the gallery.

``complete`` is a pure function of the document; ``OpenAPIDocument`` is the ASGI middleware that
applies it to GET /docs.json.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from inference.http import ASGIApp, Message, Receive, Scope, Send

ERROR = {
    "title": "Error",
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string", "description": "what is wrong, in one sentence"},
        "field": {"type": "string", "description": "the request field at fault ('body', 'content-type', ...)"},
        "detail": {"type": "array", "items": {"type": "object"}, "description": "every validation error"},
    },
}
ERROR_ANSWERS = {
    400: "Invalid input: the field and the problem (unknown fields, out-of-range values, unknown model)",
    405: "An API answers POST only",
    408: "The request body did not arrive within BOUNCING_BODY_DEADLINE_S",
    413: "Request body over the limit (BOUNCING_MAX_BODY_BYTES)",
    415: "The body must be application/json",
    429: "Too many requests in flight (BOUNCING_MAX_CONCURRENCY); retry",
    503: "Too many videos queued for the generator (BOUNCING_MAX_QUEUED_VIDEOS); retry after Retry-After",
    504: "The request took longer than BOUNCING_TIMEOUT_S",
}
DESCRIPTION = (
    "Two-step bouncing-balls video GAN served from ONNX. Videos, frames and their metrics below; "
    "the [gallery](/gallery/) shows generated videos beside real ones, with each model's Table 1."
)


def complete(
    spec: dict[str, Any],
    apis: list[str],
    files: Mapping[str, list[str]],
    headers: Mapping[str, Mapping[str, str]],
) -> dict[str, Any]:
    """``spec`` with, for each API path: every media type of its file answer (``files``), the headers
    of its 200 answer (``headers``: name -> description) and the error answers with the real body."""
    spec.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR
    spec.setdefault("info", {})["description"] = DESCRIPTION
    error_ref = {"$ref": "#/components/schemas/Error"}
    for api in apis:
        post = spec.get("paths", {}).get(f"/{api}", {}).get("post")
        if post is None:
            continue
        ok = post["responses"].setdefault("200", {"description": "Successful Response", "content": {}})
        if api in files:
            schema = {"type": "string", "format": "binary"}
            ok["content"] = {media: {"schema": schema} for media in files[api]}
        if api in headers:
            ok["headers"] = {
                name: {"description": text, "schema": {"type": "string"}} for name, text in headers[api].items()
            }
        for status, text in ERROR_ANSWERS.items():
            post["responses"][str(status)] = {
                "description": text,
                "content": {"application/json": {"schema": error_ref}},
            }
        for status in list(post["responses"]):
            if status != "200" and int(status) not in ERROR_ANSWERS:
                del post["responses"][status]  # BentoML's generic errors that this service never sends
    return spec


class OpenAPIDocument:
    """Rewrites the body of GET /docs.json through ``complete``; every other request passes untouched."""

    def __init__(self, app: ASGIApp, apis: list[str], files: Mapping[str, list[str]],
                 headers: Mapping[str, Mapping[str, str]]) -> None:  # fmt: skip
        self.app, self.apis, self.files, self.headers = app, apis, files, headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") != "/docs.json" or scope.get("method") != "GET":
            return await self.app(scope, receive, send)
        start: Message | None = None
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = b"".join(chunks)
            if start["status"] == 200:
                body = json.dumps(complete(json.loads(body), self.apis, self.files, self.headers)).encode()
            raw = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
            raw.append((b"content-length", str(len(body)).encode()))
            await send({**start, "headers": raw})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, capture)
