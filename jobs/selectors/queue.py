"""Reads of the queue: pending jobs in pop order and a summary of how busy it is."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from jobs import access
from jobs.models import Job, JobStatus
from jobs.selectors.counts import counts_by_status, pending_by_dependency

# Large columns a summary never shows: deferring them keeps list reads cheap.
HEAVY_FIELDS = ("payload", "result")


def jobs_in_pop_order(queryset: QuerySet[Job] | None = None) -> QuerySet[Job]:
    """Pending jobs in pop order: highest priority first, then oldest (the ``job_pop_order`` index).

    The same order the claim takes (``jobs.queue``), built here so reads need no writer module."""
    qs = Job.objects.all() if queryset is None else queryset
    return qs.filter(status=JobStatus.PENDING).order_by("-priority", "seq")


def queue_next(*, limit: int = 10, light: bool = False, user: Any = None) -> list[Job]:
    """The first ``limit`` pending jobs in pop order that ``user`` may see (``light``: without
    payload and result)."""
    qs = jobs_in_pop_order(Job.objects.filter(access.visible_filter(user)))
    return list((qs.defer(*HEAVY_FIELDS) if light else qs)[:limit])


def queue_summary(*, limit: int = 10, user: Any = None) -> dict[str, Any]:
    """Counts of the whole queue (everyone may see how busy it is), and the next jobs in pop
    order among those ``user`` may see: their own, unless they hold ``jobs.view_all_jobs``."""
    by_status = counts_by_status()
    return {
        "size": by_status[JobStatus.PENDING],
        "by_status": by_status,
        "by_dependency": pending_by_dependency(),
        "next": queue_next(limit=limit, user=user),
    }
