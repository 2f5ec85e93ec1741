"""jobs.errors: one description of each domain error, rendered alike for HTTP and the socket."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs import errors
from jobs.exceptions import (
    CircuitOpen,
    Forbidden,
    IdempotencyConflict,
    IllegalTransition,
    InvalidInput,
    JobNotFound,
    ValidationFailed,
)


def describe(error: BaseException) -> errors.ErrorPayload:
    payload = errors.error_describe(error=error)
    assert payload is not None
    return payload


def test_invalid_input_names_its_field_on_both_transports():
    payload = describe(InvalidInput("priority", "must be an integer"))
    assert payload.http_status == 400
    assert errors.error_http_body(payload=payload) == {"priority": ["must be an integer"]}
    assert errors.error_socket_fields(payload=payload) == {
        "type": "error", "field": "priority", "message": "must be an integer", "code": "invalid"}


def test_an_illegal_transition_says_the_current_status():
    payload = describe(IllegalTransition(action="cancel", status="running", allowed=("pending", "failed")))
    message = "cannot cancel a job that is running; it must be pending or failed"
    assert payload.http_status == 409
    assert errors.error_http_body(payload=payload) == {"detail": message, "code": "illegal_transition", "status": "running"}
    assert errors.error_socket_fields(payload=payload) == {
        "type": "error", "field": None, "message": message, "code": "illegal_transition", "status": "running"}


@pytest.mark.parametrize("error, status, code", [
    (Forbidden("needs it"), 403, "permission_denied"),
    (JobNotFound("no job x"), 404, "not_found"),
    (IdempotencyConflict("used"), 409, "idempotency_conflict"),
])
def test_other_domain_errors_have_detail_and_code(error, status, code):
    payload = describe(error)
    assert payload.http_status == status
    assert errors.error_http_body(payload=payload) == {"detail": str(error), "code": code}
    assert errors.error_http_retry_after(payload=payload) is None


def test_submission_refusals_have_the_write_ups_shape():
    refused = describe(ValidationFailed("Failed to validate job: boom"))
    assert refused.http_status == 502
    assert errors.error_http_body(payload=refused) == {
        "code": "VALIDATION_ERROR", "error": "Failed to validate job: boom", "detail": "Failed to validate job: boom"}
    assert errors.error_http_retry_after(payload=refused) is None


def test_an_open_breaker_says_when_to_retry_over_http_only():
    soon = (timezone.now() + timedelta(seconds=30)).isoformat()
    payload = describe(CircuitOpen(dependency="validation", state="open", retry_at=soon))
    assert payload.http_status == 503 and errors.error_http_body(payload=payload)["code"] == "CIRCUIT_OPEN"
    assert 29 <= errors.error_http_retry_after(payload=payload) <= 30
    assert "retry_after" not in errors.error_socket_fields(payload=payload)
    assert errors.error_http_retry_after(payload=describe(CircuitOpen(dependency="v", state="forced open"))) == 1


def test_other_exceptions_are_left_to_the_transport():
    assert errors.error_describe(error=ValueError("x")) is None


def test_a_throttles_wait_goes_into_the_socket_reply():
    payload = errors.ErrorPayload(http_status=429, code="throttled", message="slow down", retry_after=3)
    assert errors.error_socket_fields(payload=payload)["retry_after"] == 3
