"""Dashboard fixtures: who may watch the dashboard (staff holding ``jobs.view_all_jobs``)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission


def view_all_jobs_permission() -> Permission:
    return Permission.objects.get(codename="view_all_jobs")


@pytest.fixture
def staff_without_view(django_user_model):
    """Staff without ``jobs.view_all_jobs``: may use the admin, not the dashboard."""
    return django_user_model.objects.create_user("clerk", password="clerk-pass-123", is_staff=True)
