"""Schemathesis fuzzes every operation of /api/schema/ in-process (Django's WSGI handler: the
same URLconf, middleware and views Daphne serves) with a token: no 5xx, no answer outside the
schema. The schema is loaded eagerly: schemathesis' lazy fixture loader breaks on pytest 9."""

from __future__ import annotations

import os
import uuid

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import positive_data_acceptance

from jobs import dependencies, services
from tests.support.downstream import Downstream

MAX_EXAMPLES = int(os.environ.get("RESILIENT_FUZZ_EXAMPLES", "25"))

schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())


@pytest.fixture
def token(db, operator) -> str:
    # Like Django's test client: keep the test's connection (and its transaction) open across
    # requests instead of closing it when each request finishes.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield Token.objects.create(user=operator).key
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.fixture
def job(token):
    return services.job_submit(kind="noop")[0]


BREAKERS = sorted(dependencies.configured())


def _is_uuid(value) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_conforms_to_its_schema(case, token, job):
    if _is_uuid(case.path_parameters.get("id") if case.path_parameters else None):
        # A well-formed id: use a real job, so the 200 and 409 answers are fuzzed too (its status
        # moves between examples: cancel, retry, reprioritise). Malformed ids stay, for the 404s.
        case.path_parameters["id"] = str(job.uuid)
    name = case.path_parameters.get("name") if case.path_parameters else None
    if isinstance(name, str) and len(name) % 2 == 0:
        # Half the breaker names become real ones, so the 200 answers (and the overrides with
        # fuzzed reasons and TTLs) are fuzzed too; the others stay, for the 404s.
        case.path_parameters["name"] = BREAKERS[len(name) // 2 % len(BREAKERS)]
    # positive_data_acceptance is left out: rules OpenAPI cannot state here (a kind's payload
    # fields, priority xor emergency, no NUL or lone surrogates in text) answer a documented 400.
    case.call_and_validate(
        headers={"Authorization": f"Token {token}"}, excluded_checks=[positive_data_acceptance]
    )


@pytest.mark.parametrize("path, body", [("/api/jobs/", {"kind": "noop"}), ("/jobs", {"complexity": 0})])
def test_submission_refusals_conform_to_the_schema(token, monkeypatch, path, body):
    """The fuzz runs without VALIDATION_URL: drive the 502 and 503 answers through the schema here."""
    with Downstream() as validator:
        monkeypatch.setenv("VALIDATION_URL", validator.url("/validate"))
        validator.fail(503)
        operation = schema[path]["POST"]
        seen = []
        for _ in range(4):  # three failed validations trip the validation breaker: then 503
            # 502/503 are the documented answers here, so "not a server error" is left out.
            response = operation.Case(body=body, media_type="application/json").call_and_validate(
                headers={"Authorization": f"Token {token}"},
                excluded_checks=[positive_data_acceptance, not_a_server_error],
            )
            seen.append((response.status_code, response.json()["code"]))
    assert seen == [(502, "VALIDATION_ERROR")] * 3 + [(503, "CIRCUIT_OPEN")]
