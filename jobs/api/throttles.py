"""Per-user throttle on job submission; its rate is a setting read at request time."""

from __future__ import annotations

from rest_framework.throttling import UserRateThrottle

from jobs import conf

OFF = {"off", "none", "0"}


class SubmitThrottle(UserRateThrottle):
    """``RESILIENT_SUBMIT_RATE`` submissions per user (per address when anonymous), e.g. 6000/min."""

    scope = "submit"

    def get_rate(self) -> str | None:
        rate = str(conf.get("SUBMIT_RATE")).strip()
        return None if rate.lower() in OFF else rate
