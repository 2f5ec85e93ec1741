"""A JSON parser that turns every malformed body into a 400, never a 500."""

from __future__ import annotations

from django.conf import settings
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import JSONParser

from jobs import conf, jsonio

# Requests whose body may be as large as RESILIENT_MAX_BATCH_BODY_BYTES (a batch of jobs).
BATCH_PATHS = frozenset({"/api/jobs/bulk/"})


def max_body_bytes(path: str) -> int | None:
    """The largest body accepted on ``path``, or None when Django's limit is switched off."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if limit is None:
        return None
    if path in BATCH_PATHS:
        return max(limit, conf.get("MAX_BATCH_BODY_BYTES"))
    return limit


class BodyTooLarge(APIException):
    status_code = 413
    default_detail = "request body too large"
    default_code = "too_large"


class StrictJSONParser(JSONParser):
    """Strict JSON: no NaN/Infinity, bounded nesting (deep nesting would recurse), UTF-8 only."""

    def parse(self, stream, media_type=None, parser_context=None):
        # DRF reads the raw request stream, bypassing DATA_UPLOAD_MAX_MEMORY_SIZE: bound it here.
        request = (parser_context or {}).get("request")
        limit = max_body_bytes(request.path if request is not None else "")
        if limit is None:
            limit = 1 << 62  # switched off: Django's own setting says so
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise BodyTooLarge(f"request body is larger than {limit} bytes")
        try:
            return jsonio.loads_strict(raw, max_bytes=limit)
        except jsonio.JSONRejected as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
