"""Dashboard fixtures: who may watch the dashboard (staff holding ``jobs.view_all_jobs``)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType

from jobs.models import Job


def view_all_jobs_permission() -> Permission:
    """The permission row (created here while no migration defines it yet)."""
    permission, _ = Permission.objects.get_or_create(
        codename="view_all_jobs",
        content_type=ContentType.objects.get_for_model(Job),
        defaults={"name": "Can see every user's jobs"},
    )
    return permission


@pytest.fixture
def staff_readonly(django_user_model):
    """A read-only dashboard viewer: staff with ``jobs.view_all_jobs`` and nothing else."""
    viewer = django_user_model.objects.create_user("viewer", password="viewer-pass-123", is_staff=True)
    viewer.user_permissions.add(view_all_jobs_permission())
    return viewer


@pytest.fixture
def staff_without_view(django_user_model):
    """Staff without ``jobs.view_all_jobs``: may use the admin, not the dashboard."""
    return django_user_model.objects.create_user("clerk", password="clerk-pass-123", is_staff=True)
