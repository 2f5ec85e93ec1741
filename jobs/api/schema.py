"""Error responses for ``extend_schema``: every status a view can answer is in the schema."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse

from jobs.api.serializers import ErrorSerializer

DESCRIPTIONS = {
    400: "Invalid input: `{field: [message]}` naming the field, or `{detail, code}` for a malformed body.",
    401: "Not signed in (token or session).",
    403: "Signed in but not allowed: operator actions need staff and the action's permission; "
    "session writes need the CSRF token.",
    404: "No such job (or page).",
    409: "Illegal transition for the job's current status (given in `status`).",
    413: "Request body larger than RESILIENT_MAX_BODY_BYTES.",
    415: "Only application/json bodies are accepted.",
    429: "Too many submissions (RESILIENT_SUBMIT_RATE); retry after Retry-After seconds.",
}


def errors(*codes: int) -> dict[int, OpenApiResponse]:
    """``{status: OpenApiResponse}`` for the given error statuses (401 is always included)."""
    out = {}
    for code in sorted({401, *codes}):
        body = OpenApiTypes.OBJECT if code == 400 else ErrorSerializer
        out[code] = OpenApiResponse(response=body, description=DESCRIPTIONS[code])
    return out


WRITE = (400, 413, 415)
