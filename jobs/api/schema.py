"""Error responses for ``extend_schema``: every status a view can answer is in the schema."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse

from jobs.api.serializers import ErrorSerializer, SubmissionRefusedSerializer

DESCRIPTIONS = {
    400: "Invalid input: `{field: [message]}` naming the field, or `{detail, code}` for a malformed body.",
    401: "Not signed in (token or session).",
    403: "Signed in but not allowed: acting on another user's job needs staff and the action's "
    "permission; a priority above the ceiling or a privileged payload option needs its permission; "
    "session writes need the CSRF token.",
    404: "No such job or breaker (or page); another user's job is not found either.",
    409: "Illegal transition for the job's current status (given in `status`), or an idempotency key "
    "reused with different parameters (`idempotency_conflict`).",
    413: "Request body larger than RESILIENT_MAX_BODY_BYTES.",
    415: "Only application/json bodies are accepted.",
    429: "Too many submissions (RESILIENT_SUBMIT_RATE; retry after Retry-After seconds), or too many "
    "pending jobs of yours (`too_many_pending`, RESILIENT_MAX_PENDING_PER_USER).",
    502: "`VALIDATION_ERROR`: the submission-time validation call (VALIDATION_URL) failed, timed out "
    "or refused the job; nothing was stored.",
    503: "`CIRCUIT_OPEN`: the `validation` breaker rejects calls (VALIDATION_URL set); nothing was "
    "stored; retry after Retry-After seconds.",
}

BODIES = {400: OpenApiTypes.OBJECT, 502: SubmissionRefusedSerializer, 503: SubmissionRefusedSerializer}


def errors(*codes: int) -> dict[int, OpenApiResponse]:
    """``{status: OpenApiResponse}`` for the given error statuses (401 is always included)."""
    out = {}
    for code in sorted({401, *codes}):
        out[code] = OpenApiResponse(response=BODIES.get(code, ErrorSerializer), description=DESCRIPTIONS[code])
    return out


WRITE = (400, 413, 415)
# Submissions: input errors, throttling, and the submission-time validation's refusals.
SUBMIT = (*WRITE, 403, 409, 429, 502, 503)
