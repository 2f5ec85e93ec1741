"""Production hardening: deploy checks, CSRF, login and submission rate limits, input bounds."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys

import pytest
from django.core.cache import cache
from django.test import override_settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from jobs.models import Job
from tests.support import processes

pytestmark = pytest.mark.django_db

PRODUCTION = {
    "DEBUG": "0",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "ALLOWED_HOSTS": "resilient.example.com",
    "RESILIENT_HTTPS": "1",
}


@pytest.fixture(autouse=True)
def fresh_cache():
    """Throttle and login counters live in the cache: start each test from zero."""
    cache.clear()
    yield
    cache.clear()


def manage(*args: str, **environ: str) -> subprocess.CompletedProcess:
    env = processes.subprocess_env(**environ)
    for name in ("SECRET_KEY", "DEBUG", "RESILIENT_HTTPS"):
        if environ.get(name) is None:
            env.pop(name, None)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=processes.ROOT, env=env, capture_output=True, text=True, timeout=120
    )


# --- settings ---------------------------------------------------------------------------------


def test_check_deploy_is_clean_with_production_settings():
    done = manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues (0 silenced)." in done.stdout


def test_check_deploy_complains_without_https():
    done = manage("check", "--deploy", "--fail-level", "WARNING", **{**PRODUCTION, "RESILIENT_HTTPS": "0"})
    assert done.returncode != 0
    for code in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert code in done.stderr


def test_debug_off_without_a_secret_key_refuses_to_start():
    done = manage("check", DEBUG="0", ALLOWED_HOSTS="resilient.example.com")
    assert done.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY is not set." in done.stderr


HTTPS_PROBE = """
from django.test import Client
c = Client(HTTP_HOST="resilient.example.com")
for path in ("/api/queue/", "/healthz", "/metrics"):
    r = c.get(path)
    print(path, r.status_code, r.get("Location", ""))
r = c.get("/healthz", secure=True)
print("hsts", r.get("Strict-Transport-Security"))
"""


@pytest.mark.django_db(transaction=True)
def test_https_mode_redirects_sends_hsts_and_spares_the_probes():
    done = processes.run_python(HTTPS_PROBE, environ=processes.subprocess_env(**PRODUCTION))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "/api/queue/ 301 https://resilient.example.com/api/queue/" in lines
    assert "/healthz 200 " in lines and "/metrics 200 " in lines
    assert "hsts max-age=31536000; includeSubDomains; preload" in lines


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


# --- login rate limit -------------------------------------------------------------------------


def login(client, username: str, password: str, address: str = "10.0.0.1"):
    return client.post("/admin/login/", {"username": username, "password": password}, REMOTE_ADDR=address)


@override_settings(RESILIENT={"LOGIN_MAX_FAILURES": 3, "LOGIN_WINDOW": 60})
def test_login_attempts_are_rate_limited(client, operator):
    assert login(client, "operator", "wrong").status_code == 200
    assert login(client, "operator", "wrong").status_code == 200
    assert login(client, "operator", "operator-pass-123").status_code == 302  # success resets
    client.logout()
    for _ in range(3):
        assert login(client, "operator", "wrong").status_code == 200
    locked = login(client, "operator", "operator-pass-123")
    assert locked.status_code == 429 and locked["Retry-After"] == "60"
    assert b"Too many failed login attempts" in locked.content
    assert login(client, "Operator ", "operator-pass-123").status_code == 429  # same user, other spelling
    assert login(client, "operator", "operator-pass-123", address="10.0.0.2").status_code == 302  # other client


@override_settings(RESILIENT={"LOGIN_MAX_FAILURES": 2, "LOGIN_WINDOW": 60})
def test_one_address_cannot_spray_many_usernames(client):
    for i in range(10):  # 2 failures x ADDRESS_FACTOR 5
        assert login(client, f"user{i}", "wrong").status_code == 200
    assert login(client, "someone-else", "wrong").status_code == 429


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


# --- found by the fuzzer (tests/test_fuzz.py) ----------------------------------------------------


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
