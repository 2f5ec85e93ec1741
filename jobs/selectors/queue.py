"""Reads of the queue: pending jobs in pop order and a summary of how busy it is."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from jobs import access
from jobs.models import Job, JobStatus
from jobs.selectors.counts import EXACT, by_status_bounded, pending_by_dependency_bounded

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
    order among those ``user`` may see: their own, unless they hold ``jobs.view_all_jobs``.

    The counts are bounded (``bounded_counts``: exact to ``EXACT_COUNT_LIMIT``, PostgreSQL's
    estimate beyond, exact on SQLite), so the read costs the same at 10 M jobs as at 10;
    ``estimated`` names the counts that are estimates. ``by_dependency`` lists the known
    dependencies (configured, or with a breaker row) that have pending jobs."""
    by_status = by_status_bounded()
    by_dependency = pending_by_dependency_bounded()
    return {
        "size": by_status[JobStatus.PENDING].n,
        "by_status": {status: c.n for status, c in by_status.items()},
        "by_dependency": {name: c.n for name, c in by_dependency.items() if c.n},
        "estimated": {
            "by_status": [status for status, c in by_status.items() if c.bound != EXACT],
            "by_dependency": [name for name, c in by_dependency.items() if c.bound != EXACT],
        },
        "next": queue_next(limit=limit, user=user),
    }
