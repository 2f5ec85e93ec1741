"""Rejected submissions are counted by reason, whatever the body looks like."""

from __future__ import annotations

import pytest

from jobs import breakers
from jobs.ops import metrics

pytestmark = pytest.mark.django_db


@pytest.fixture
def reasons(monkeypatch) -> list[str]:
    seen: list[str] = []
    monkeypatch.setattr(metrics, "submission_rejected", lambda *, reason: seen.append(reason))
    return seen


def test_a_field_error_is_invalid_even_for_a_field_named_code(api, reasons):
    response = api.post("/api/jobs/", {"kind": "noop", "code": 1}, format="json")
    assert response.status_code == 400 and "code" in response.json()
    assert reasons == ["invalid"]


def test_an_open_validation_breaker_counts_as_circuit_open(api, reasons, monkeypatch):
    monkeypatch.setenv("VALIDATION_URL", "http://127.0.0.1:1/validate")
    breakers.breaker_force_open(name="validation", actor="system", reason="test")
    response = api.post("/api/jobs/", {"kind": "noop"}, format="json")
    assert response.status_code == 503 and response.json()["code"] == "CIRCUIT_OPEN"
    assert reasons == ["circuit_open"]


def test_a_failed_validation_counts_as_validation_error(api, reasons, monkeypatch):
    monkeypatch.setenv("VALIDATION_URL", "http://127.0.0.1:1/validate")  # nothing listens there
    response = api.post("/jobs", {"complexity": 0}, format="json")
    assert response.status_code == 502 and response.json()["code"] == "VALIDATION_ERROR"
    assert reasons == ["validation_error"]
