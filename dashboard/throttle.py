"""The socket's share of the per-user submission throttle of ``POST /api/jobs/``: one budget."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from rest_framework.exceptions import Throttled

from jobs.api import throttles


def submission_count(user: Any) -> None:
    """Count one submission by ``user`` against RESILIENT_SUBMIT_RATE; raise ``Throttled`` over it."""
    throttle = throttles.SubmitThrottle()
    # The throttle reads only request.user (a signed-in user is keyed by pk), so this is the very
    # cache entry POST /api/jobs/ counts in.
    if not throttle.allow_request(SimpleNamespace(user=user), None):
        raise Throttled(wait=throttle.wait())
