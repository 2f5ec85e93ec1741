"""Shared fixtures. In CI's PostgreSQL + Redis run (RESILIENT_REQUIRE_SERVICES=1) a missing service
fails the run at once instead of letting its tests skip."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

import pytest
from django.db import connection
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

REQUIRE_SERVICES = os.environ.get("RESILIENT_REQUIRE_SERVICES") == "1"


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=2):
            return True
    except OSError:
        return False


def pytest_sessionstart(session):
    if not REQUIRE_SERVICES:
        return
    problems = []
    db_url = os.environ.get("DATABASE_URL", "")
    if not db_url.startswith(("postgres://", "postgresql://")):
        problems.append("DATABASE_URL must point at PostgreSQL")
    elif not _reachable(db_url, 5432):
        problems.append(f"PostgreSQL is not reachable at {db_url}")
    redis_url = os.environ.get("REDIS_URL", "")
    if not redis_url:
        problems.append("REDIS_URL is not set")
    elif not _reachable(redis_url, 6379):
        problems.append(f"Redis is not reachable at {redis_url}")
    if problems:
        pytest.exit("RESILIENT_REQUIRE_SERVICES=1 but: " + "; ".join(problems), returncode=3)


def requires(condition: bool, reason: str):
    """Skip when ``condition`` is false, except in a run that requires every service: fail there."""
    if condition:
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"required service missing: {reason}")
    pytest.skip(reason)


@pytest.fixture
def postgres(db):
    """Use in tests that only make sense on PostgreSQL (SKIP LOCKED concurrency)."""
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only: run with DATABASE_URL=postgres://... (CI does)")


@pytest.fixture
def redis_url():
    url = os.environ.get("REDIS_URL", "")
    requires(bool(url), "needs REDIS_URL (CI's PostgreSQL + Redis run sets it)")
    return url


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user("client", password="client-pass-123")


@pytest.fixture
def staff_readonly(django_user_model):
    """A read-only operator: staff who sees every job and may change none."""
    from django.contrib.auth.models import Permission

    viewer = django_user_model.objects.create_user("viewer", password="viewer-pass-123", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_all_jobs"))
    return viewer


@pytest.fixture
def operator(django_user_model):
    return django_user_model.objects.create_superuser("operator", password="operator-pass-123")


@pytest.fixture
def anon_api():
    return APIClient()


def _client_for(user) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def api(user):
    return _client_for(user)


@pytest.fixture
def operator_api(operator):
    return _client_for(operator)


@pytest.fixture
def readonly_api(staff_readonly):
    return _client_for(staff_readonly)
