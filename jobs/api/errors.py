"""One exception handler: domain errors and framework errors become JSON with a code."""

from __future__ import annotations

import math
from datetime import datetime

from django.core.exceptions import RequestDataTooBig
from django.utils import timezone
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

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


def exception_handler(exc, context):
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
