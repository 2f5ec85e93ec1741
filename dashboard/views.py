"""The dashboard page. The page is a shell; everything live arrives over /ws/dashboard/."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import render

from dashboard import access
from jobs import dependencies
from jobs.handlers import registry
from jobs.models import PRIORITY_MAX, PRIORITY_MIN, JobStatus


@login_required
def dashboard(request):
    """Anonymous users go to the login page; the rest need staff and ``jobs.view_all_jobs`` (else 403)."""
    if not access.dashboard_allowed(request.user):
        raise PermissionDenied("the dashboard is for staff accounts that may see every job")
    context = {
        "options": {
            "kinds": registry.names(),
            # The submit form's kind: one whose defaults (empty payload, priority 0) run as they are.
            "default_kind": "noop",
            "dependencies": sorted(dependencies.configured()),
            "statuses": JobStatus.values,
            "priority_min": PRIORITY_MIN,
            "priority_max": PRIORITY_MAX,
        }
    }
    return render(request, "dashboard/index.html", context)
