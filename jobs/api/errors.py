"""One exception handler: domain errors (as jobs.errors describes them) and framework errors become JSON."""

from __future__ import annotations

from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse
from django.views.defaults import page_not_found
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from jobs import errors
from jobs.ops import metrics

# Error codes folded into one rejection reason for the metrics.
REJECTION_REASONS = {"parse_error": "invalid", "invalid": "invalid"}


def exception_handler(exc, context):
    response = _handle(exc, context)
    view = context.get("view")
    if response is not None and getattr(view, "is_submission", lambda: False)():
        metrics.submission_rejected(reason=_rejection_reason(response))
    return response


def _rejection_reason(response: Response) -> str:
    code = response.data.get("code") if isinstance(response.data, dict) else None
    if not isinstance(code, str):  # field errors: {field: [message]}, even for a field named "code"
        return "invalid"
    return REJECTION_REASONS.get(code, code.lower())  # CIRCUIT_OPEN -> circuit_open


def _handle(exc, context):
    payload = errors.error_describe(error=exc)
    if payload is not None:
        response = Response(errors.error_http_body(payload=payload), status=payload.http_status)
        retry_after = errors.error_http_retry_after(payload=payload)
        if retry_after is not None:
            response["Retry-After"] = str(retry_after)
        return response
    if isinstance(exc, RequestDataTooBig):
        return Response(
            {"detail": "request body too large", "code": "too_large"},
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(response.data, dict) and "detail" in response.data:
        response.data.setdefault("code", getattr(exc, "default_code", "error"))
    return response


def not_found(request, exception=None):
    """handler404: JSON under the API's paths (an id that is no UUID, an unknown route), HTML elsewhere."""
    if request.path.startswith(JSON_PREFIXES) or request.path in WRITE_UP_PATHS:
        return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)
    return page_not_found(request, exception)


JSON_PREFIXES = ("/api/",)
WRITE_UP_PATHS = {"/jobs", "/queue", "/circuit"}
