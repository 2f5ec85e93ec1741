"""Refuse request bodies over the limit (RESILIENT_MAX_BODY_BYTES) before anything reads them.

An ASGI middleware in front of Django: Django's ASGIHandler reads the whole body into a spooled
file before any Django middleware runs, so authentication, CSRF and the parsers all come too
late. A ``Content-Length`` over the limit is answered 413 without reading a byte; a body without
one (chunked) is read up to the limit and refused as soon as it passes it. The API's parser
keeps its own check for code that reaches Django another way (the test client, other servers).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from jobs.api import parsers
from jobs.ops import metrics
from resilient import security_headers

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

JSON_PREFIXES = ("/api/",)
WRITE_UP_PATHS = frozenset({"/jobs", "/queue", "/circuit"})
SUBMISSION_PATHS = frozenset({"/api/jobs/", "/api/jobs/bulk/", "/jobs"})


def max_body_bytes(path: str) -> int | None:
    """The largest body accepted on ``path`` (a batch may send more), or None when switched off."""
    return parsers.max_body_bytes(path)


def declared_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    """The one valid Content-Length, or None (absent, repeated or malformed: count instead)."""
    values = [value for name, value in headers if name.lower() == b"content-length"]
    if len(values) != 1 or not values[0].strip().isdigit():
        return None
    return int(values[0])


def refusal(path: str, limit: int) -> tuple[bytes, bytes]:
    """Content type and body of the 413: JSON where clients expect JSON, plain text elsewhere."""
    detail = f"request body is larger than {limit} bytes"
    if path.startswith(JSON_PREFIXES) or path in WRITE_UP_PATHS:
        return b"application/json", json.dumps({"detail": detail, "code": "too_large"}).encode()
    return (
        b"text/plain; charset=utf-8",
        f"Request body too large: the limit is {limit} bytes.\n".encode(),
    )


async def refuse(scope: Scope, send: Send, limit: int) -> None:
    """Answer 413 and ask the server to close: the rest of the body is never read."""
    path = scope.get("path", "")
    if scope.get("method") == "POST" and path in SUBMISSION_PATHS:
        metrics.submission_rejected(reason="too_large")
    content_type, body = refusal(path, limit)
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                # Django's middleware never sees this response: give it the same headers.
                (b"content-security-policy", security_headers.policy().encode()),
                (b"x-content-type-options", b"nosniff"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    """ASGI middleware: 413 for a body over the limit, before the wrapped app sees the request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = max_body_bytes(scope.get("path", "")) if scope["type"] == "http" else None
        if limit is None:
            return await self.app(scope, receive, send)
        length = declared_length(scope.get("headers", []))
        if length is not None:
            if length > limit:
                return await refuse(scope, send, limit)
            return await self.app(scope, receive, send)
        # No usable length: read at most limit + 1 bytes, then hand what was read to the app.
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break  # the client went away: let the app see the disconnect
            size += len(message.get("body", b""))
            if size > limit:
                return await refuse(scope, send, limit)
            if not message.get("more_body", False):
                break
        buffered = iter(messages)

        async def replay() -> Message:
            return next(buffered, None) or await receive()

        return await self.app(scope, replay, send)
