"""Dashboard fixtures: who may watch the dashboard (staff holding ``jobs.view_all_jobs``), and for
the browser tests a real server and a Chromium."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from tests.support import browser as browser_support


def view_all_jobs_permission() -> Permission:
    return Permission.objects.get(codename="view_all_jobs")


@pytest.fixture
def staff_without_view(django_user_model):
    """Staff without ``jobs.view_all_jobs``: may use the admin, not the dashboard."""
    return django_user_model.objects.create_user("clerk", password="clerk-pass-123", is_staff=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real embedded server (Daphne + one worker slot) on a free port with its own SQLite file."""
    yield from browser_support.serve_dashboard(tmp_path_factory)


@pytest.fixture(scope="module")
def browser():
    """Chromium (``RESILIENT_CHROMIUM``; skipped when missing, failed in CI)."""
    yield from browser_support.launch_browser()
