"""One exception handler: domain errors and framework errors become JSON with a code."""

from __future__ import annotations

import math
from datetime import datetime

from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse
from django.utils import timezone
from django.views.defaults import page_not_found
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from jobs import metrics
from jobs.exceptions import (
    CircuitOpen,
    IllegalTransition,
    InvalidInput,
    ResilientError,
    ValidationFailed,
)


def _seconds_until(iso: str | None) -> int:
    if not iso:
        return 1
    return max(1, math.ceil((datetime.fromisoformat(iso) - timezone.now()).total_seconds()))


# Error codes folded into one rejection reason for the metrics.
REJECTION_REASONS = {"parse_error": "invalid", "invalid": "invalid"}


def exception_handler(exc, context):
    response = _handle(exc, context)
    view = context.get("view")
    if response is not None and getattr(view, "is_submission", lambda: False)():
        code = response.data.get("code", "invalid") if isinstance(response.data, dict) else "invalid"
        metrics.submission_rejected(reason=REJECTION_REASONS.get(code, code))
    return response


def _handle(exc, context):
    if isinstance(exc, InvalidInput):
        return Response({exc.field: [exc.message]}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, IllegalTransition):
        return Response(
            {"detail": str(exc), "code": exc.default_code, "status": exc.status},
            status=exc.status_code,
        )
    if isinstance(exc, CircuitOpen | ValidationFailed):
        # The write-up's shape: {"code": "CIRCUIT_OPEN" | "VALIDATION_ERROR", "error": ...}.
        response = Response({"code": exc.default_code, "error": str(exc), "detail": str(exc)}, status=exc.status_code)
        if isinstance(exc, CircuitOpen):
            response["Retry-After"] = str(_seconds_until(exc.retry_at))
        return response
    if isinstance(exc, ResilientError):
        return Response({"detail": str(exc), "code": exc.default_code}, status=exc.status_code)
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
