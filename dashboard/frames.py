"""Frames a dashboard sends: one JSON object per text frame, bounded. Pure.

64 KiB is far above any command the page sends (a submitted payload over the socket is bounded
by it too; the REST API takes up to RESILIENT_MAX_PAYLOAD_BYTES) and far below Daphne's own 1 MiB
websocket message limit, which stays the outer bound. Depth 64 leaves the payload's own limit
(RESILIENT_MAX_JSON_DEPTH, 32) to the service, which answers with the REST API's field error.
"""

from __future__ import annotations

from typing import Any

from jobs import jsonio

MAX_BYTES = 64 * 1024
MAX_DEPTH = 64


class FrameRejected(ValueError):
    """A frame that is not a command; ``code`` is the error reply's code."""

    def __init__(self, message: str, *, code: str = "invalid") -> None:
        super().__init__(message)
        self.code = code


def frame_decode(text: str | None, binary: bytes | None) -> Any:
    """The JSON value of a text frame (the command layer checks it is an object)."""
    if text is None:
        raise FrameRejected("binary frames are not accepted" if binary is not None else "empty frame")
    try:
        return jsonio.loads_strict(text, max_bytes=MAX_BYTES, max_depth=MAX_DEPTH)
    except jsonio.JSONRejected as exc:
        if exc.code == "too_large":
            raise FrameRejected(f"a frame is at most {MAX_BYTES} bytes", code="too_large") from None
        raise FrameRejected(f"not a JSON command: {exc}") from None


def frame_error(exc: FrameRejected) -> dict[str, Any]:
    """The reply to a frame that is not a command."""
    return {"type": "error", "ref": None, "action": None, "field": None, "message": str(exc), "code": exc.code}
