"""API hardening: CSRF on session writes, the submission throttle, input bounds, and what the
fuzzer found."""

from __future__ import annotations

import json

import pytest
from django.core.cache import cache
from django.test import override_settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from jobs.models import Job

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_cache():
    """Throttle counters live in the cache: start each test from zero."""
    cache.clear()
    yield
    cache.clear()


# --- CSRF -------------------------------------------------------------------------------------


def test_session_writes_need_csrf_token_writes_do_not(user):
    session = APIClient(enforce_csrf_checks=True)
    session.force_login(user)
    refused = session.post("/api/jobs/", {"kind": "noop"}, format="json")
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["detail"]
    assert not Job.objects.exists()

    session.get("/admin/login/")  # a form page sets the CSRF cookie, as a browser would get it
    secret = session.cookies["csrftoken"].value
    accepted = session.post("/api/jobs/", {"kind": "noop"}, format="json", HTTP_X_CSRFTOKEN=secret)
    assert accepted.status_code == 201

    token_client = APIClient(enforce_csrf_checks=True)
    token_client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    assert token_client.post("/api/jobs/", {"kind": "noop"}, format="json").status_code == 201
    assert Job.objects.count() == 2


# --- submission throttle ----------------------------------------------------------------------


@override_settings(RESILIENT={"SUBMIT_RATE": "3/min"})
def test_submissions_are_throttled_per_user(api, operator_api):
    for _ in range(3):
        assert api.post("/api/jobs/", {"kind": "noop"}, format="json").status_code == 201
    throttled = api.post("/api/jobs/", {"kind": "noop"}, format="json")
    assert throttled.status_code == 429
    assert throttled.json()["code"] == "throttled"
    assert "throttled" in throttled.json()["detail"]
    assert int(throttled["Retry-After"]) > 0
    assert api.post("/jobs", {"a": 1}, format="json").status_code == 429  # the write-up's route too
    assert api.get("/api/jobs/").status_code == 200  # reads are not throttled
    assert operator_api.post("/api/jobs/", {"kind": "noop"}, format="json").status_code == 201  # per user
    assert Job.objects.count() == 4


@override_settings(RESILIENT={"SUBMIT_RATE": "off"})
def test_the_submission_throttle_can_be_switched_off(api):
    for _ in range(5):
        assert api.post("/api/jobs/", {"kind": "noop"}, format="json").status_code == 201


# --- input bounds -----------------------------------------------------------------------------


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=2000)
@pytest.mark.parametrize("path", ["/api/jobs/", "/jobs"])
def test_request_bodies_are_bounded(api, path):
    body = json.dumps({"kind": "noop", "payload": {"blob": "x" * 3000}})
    response = api.post(path, body, content_type="application/json")
    assert response.status_code == 413
    assert response.json()["code"] == "too_large"
    assert response.json()["detail"].startswith("request body")
    assert not Job.objects.exists()


@override_settings(RESILIENT={"MAX_PAYLOAD_BYTES": 100})
def test_payload_size_is_bounded_with_a_400_naming_the_field(api):
    response = api.post("/api/jobs/", {"kind": "noop", "payload": {"blob": "x" * 200}}, format="json")
    assert response.status_code == 400
    # As stored: JSONField's json.dumps form, with its spaces after ":" and ",".
    assert response.json()["payload"][0] == "is 212 bytes; the limit is 100"


def nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def test_json_depth_is_bounded(api):
    response = api.post("/api/jobs/", {"kind": "noop", "payload": nested(33)}, format="json")
    assert response.status_code == 400
    assert response.json() == {"payload": ["nests deeper than 32 levels"]}
    assert api.post("/api/jobs/", {"kind": "noop", "payload": nested(32)}, format="json").status_code == 201


def test_absurdly_deep_json_is_a_400_not_a_crash(api):
    body = '{"kind": "noop", "payload": ' + "[" * 100_000 + "]" * 100_000 + "}"
    response = api.post("/api/jobs/", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["detail"] == "JSON parse error - nested too deeply"


# --- found by the fuzzer (tests/jobs/api/test_fuzz.py) -------------------------------------------


def test_a_submission_without_a_body_is_a_400_naming_kind(api):
    response = api.post("/api/jobs/")
    assert response.status_code == 400
    assert response.json() == {"kind": ["this field is required"]}


def test_a_write_up_submission_that_is_not_an_object_is_a_400(api):
    response = api.post("/jobs", "[[]]", content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {"non_field_errors": ["the body must be a JSON object"]}


def test_unknown_api_urls_answer_json_404_and_other_urls_html(api, client):
    response = api.get("/api/jobs/not-a-uuid/")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found.", "code": "not_found"}
    page = client.get("/no-such-page/")
    assert page.status_code == 404 and page["Content-Type"].startswith("text/html")


def test_an_empty_status_or_ordering_filter_is_refused(api):
    assert api.get("/api/jobs/?status=").json() == {"status": ["must be one of pending, running, succeeded, failed, cancelled"]}
    assert api.get("/api/jobs/?ordering=").status_code == 400


def test_an_empty_page_number_is_refused_like_any_non_number(api):
    assert api.get("/api/jobs/?page=").status_code == 404
    assert api.get("/api/jobs/?page=x").status_code == 404
    assert api.get("/api/jobs/?page=1").status_code == 200
