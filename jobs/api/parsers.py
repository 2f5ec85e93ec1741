"""A JSON parser that turns every malformed body into a 400, never a 500."""

from __future__ import annotations

from django.conf import settings
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import BaseParser, JSONParser

from jobs import conf, jsonio

# Requests whose body may be as large as a batch of jobs (``batch_body_bytes``).
BATCH_PATHS = frozenset({"/api/jobs/bulk/"})

# A batch's body limit per job it may hold, unless RESILIENT_MAX_BATCH_BODY_BYTES sets the limit:
# 1,000 jobs (the default RESILIENT_MAX_BATCH) may send 16,000 KiB; a larger batch setting brings
# a larger body limit with it.
BATCH_BODY_BYTES_PER_JOB = 16 * 1024


# The most a scaled limit grows to: a huge RESILIENT_MAX_BATCH must not let an anonymous caller
# send gigabytes before authentication (set RESILIENT_MAX_BATCH_BODY_BYTES to go beyond).
BATCH_BODY_SCALED_CEILING = 64 * 1024 * 1024


def batch_body_bytes() -> int:
    """The body limit of a batch: RESILIENT_MAX_BATCH_BODY_BYTES, or (0) it scales with the batch,
    up to ``BATCH_BODY_SCALED_CEILING``."""
    explicit = conf.get("MAX_BATCH_BODY_BYTES")
    if explicit:
        return explicit
    return min(max(conf.get("MAX_BATCH"), 0) * BATCH_BODY_BYTES_PER_JOB, BATCH_BODY_SCALED_CEILING)


def max_body_bytes(path: str) -> int | None:
    """The largest body accepted on ``path``, or None when Django's limit is switched off."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if limit is None:
        return None
    if path in BATCH_PATHS:
        return max(limit, batch_body_bytes())
    return limit


class BodyTooLarge(APIException):
    status_code = 413
    default_detail = "request body too large"
    default_code = "too_large"


def _parse_bounded(stream, limit: int):
    raw = stream.read(limit + 1) if stream is not None else b""
    if len(raw) > limit:
        raise BodyTooLarge(f"request body is larger than {limit} bytes")
    try:
        return jsonio.loads_strict(raw, max_bytes=limit)
    except jsonio.JSONRejected as exc:
        raise ParseError(f"JSON parse error - {exc}") from None


class StrictJSONParser(JSONParser):
    """Strict JSON: no NaN/Infinity, bounded nesting (deep nesting would recurse), UTF-8 only."""

    def parse(self, stream, media_type=None, parser_context=None):
        # DRF hands a JSONParser ``request.body``, bounded by DATA_UPLOAD_MAX_MEMORY_SIZE; bound
        # the stream here too for code that calls the parser another way.
        return _parse_bounded(stream, settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 1 << 62)


class BatchJSONParser(BaseParser):
    """``StrictJSONParser`` with a batch's body limit (``batch_body_bytes``).

    Not a JSONParser on purpose: DRF would read ``request.body``, which Django bounds by the
    one-request limit; this reads the request stream itself, up to the batch limit."""

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        return _parse_bounded(stream, max_body_bytes(next(iter(BATCH_PATHS))) or 1 << 62)
