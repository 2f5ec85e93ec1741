"""What a domain error tells a client: one description, rendered as HTTP by ``jobs.api.errors``
and as a socket reply by ``dashboard.commands``. Pure: no DRF, no Channels."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from django.utils import timezone

from jobs.exceptions import (
    CircuitOpen,
    IllegalTransition,
    InvalidInput,
    InvalidItems,
    ResilientError,
    ValidationFailed,
)


class Shape(Enum):
    """Which body an HTTP answer has."""

    FIELD = "field"  # {field: [message]}: DRF's field errors
    ITEMS = "items"  # {field: {index: {item_field: [message]}}}: a list's bad items
    REFUSAL = "refusal"  # {code, error, detail}: the write-up's submission refusals
    DETAIL = "detail"  # {detail, code, status?}


@dataclass(frozen=True)
class ErrorPayload:
    """One error as a client sees it, whatever carries it."""

    http_status: int
    code: str
    message: str
    field: str | None = None
    status: str | None = None  # an illegal transition: the job's current status
    retry_after: int | None = None  # seconds to wait before asking again (a throttle)
    retry_at: str | None = None  # a refusing breaker's retry-at (ISO 8601), if known
    shape: Shape = Shape.DETAIL
    items: dict[str, dict[str, list[str]]] | None = None  # Shape.ITEMS: index -> field errors


def error_describe(*, error: BaseException) -> ErrorPayload | None:
    """The payload of a domain error; None for anything else (the transport decides)."""
    if isinstance(error, InvalidItems):
        return ErrorPayload(http_status=error.status_code, code=error.default_code, message=error.message,
                            field=error.field, shape=Shape.ITEMS, items=error.errors)
    if isinstance(error, InvalidInput):
        return ErrorPayload(http_status=error.status_code, code=error.default_code, message=error.message,
                            field=error.field, shape=Shape.FIELD)
    if isinstance(error, IllegalTransition):
        return ErrorPayload(http_status=error.status_code, code=error.default_code, message=str(error),
                            status=error.status)
    if isinstance(error, CircuitOpen):
        return ErrorPayload(http_status=error.status_code, code=error.default_code, message=str(error),
                            retry_at=error.retry_at, shape=Shape.REFUSAL)
    if isinstance(error, ValidationFailed):
        return ErrorPayload(http_status=error.status_code, code=error.default_code, message=str(error),
                            shape=Shape.REFUSAL)
    if isinstance(error, ResilientError):
        return ErrorPayload(http_status=error.status_code, code=error.default_code, message=str(error),
                            field=getattr(error, "field", None))
    return None


def error_http_body(*, payload: ErrorPayload) -> dict[str, Any]:
    """The JSON body of the HTTP answer."""
    if payload.shape is Shape.ITEMS:
        return {payload.field: payload.items}
    if payload.shape is Shape.FIELD:
        return {payload.field: [payload.message]}
    if payload.shape is Shape.REFUSAL:
        return {"code": payload.code, "error": payload.message, "detail": payload.message}
    body: dict[str, Any] = {"detail": payload.message, "code": payload.code}
    if payload.status is not None:
        body["status"] = payload.status
    return body


def error_http_retry_after(*, payload: ErrorPayload) -> int | None:
    """The Retry-After header (seconds) of a breaker's refusal; at least 1."""
    if payload.code != CircuitOpen.default_code:
        return None
    if not payload.retry_at:
        return 1
    return max(1, math.ceil((datetime.fromisoformat(payload.retry_at) - timezone.now()).total_seconds()))


def error_socket_fields(*, payload: ErrorPayload) -> dict[str, Any]:
    """The error part of a dashboard socket reply (the caller adds ref and action)."""
    fields: dict[str, Any] = {"type": "error", "field": payload.field, "message": payload.message, "code": payload.code}
    if payload.status is not None:
        fields["status"] = payload.status
    if payload.retry_after is not None:
        fields["retry_after"] = payload.retry_after
    return fields
