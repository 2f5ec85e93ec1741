"""Production hardening of the project: deploy checks, HTTPS mode, the login rate limit."""

from __future__ import annotations

import secrets
import subprocess

import pytest
from django.core.cache import cache
from django.test import override_settings

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
    """Login counters live in the cache: start each test from zero."""
    cache.clear()
    yield
    cache.clear()


def manage(*args: str, **environ: str) -> subprocess.CompletedProcess:
    """``manage.py args`` with none of SECRET_KEY, DEBUG, RESILIENT_HTTPS but those in ``environ``."""
    unset = dict.fromkeys(("SECRET_KEY", "DEBUG", "RESILIENT_HTTPS"))
    return processes.run_manage(*args, environ=processes.subprocess_env(**{**unset, **environ}))


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
