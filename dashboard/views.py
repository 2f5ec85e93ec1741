"""The dashboard page. The page is a shell; everything live arrives over /ws/dashboard/."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import render

from jobs import dependencies
from jobs.handlers import registry
from jobs.models import PRIORITY_MAX, PRIORITY_MIN, JobStatus


@login_required
def dashboard(request):
    """Staff only: anonymous users go to the login page, signed-in non-staff get 403."""
    if not request.user.is_staff:
        raise PermissionDenied("the dashboard is for staff accounts")
    context = {
        "options": {
            "kinds": registry.names(),
            "dependencies": sorted(dependencies.configured()),
            "statuses": JobStatus.values,
            "priority_min": PRIORITY_MIN,
            "priority_max": PRIORITY_MAX,
        }
    }
    return render(request, "dashboard/index.html", context)
