"""Reads of breakers: their rows, their policies, their history, and the jobs they hold."""

from __future__ import annotations

from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce

from jobs import dependencies
from jobs.models import Breaker, BreakerEvent, BreakerEventKind, Job, JobStatus


def breaker_policy(*, name: str) -> dependencies.Dependency:
    """The configured policy of dependency ``name`` (the defaults for one no longer configured)."""
    return dependencies.configured().get(name) or dependencies.Dependency(name=name)


def breaker_rows() -> list[Breaker]:
    """Every breaker row, by name."""
    return list(Breaker.objects.order_by("name"))


def breaker_rows_configured() -> dict[str, Breaker]:
    """Every breaker row by name (one query), with an unsaved default row for a configured
    dependency that has not been called yet (a read never creates rows)."""
    rows = {row.name: row for row in Breaker.objects.all()}
    for name in dependencies.configured():
        rows.setdefault(name, Breaker(name=name, updated_at=None))  # None: a stable snapshot
    return dict(sorted(rows.items()))


def breaker_transitions(*, row: Breaker, limit: int) -> list[BreakerEvent]:
    """The last ``limit`` transitions and overrides of ``row``, newest first (no counted failures)."""
    return list(
        BreakerEvent.objects.filter(breaker=row).exclude(kind=BreakerEventKind.FAILURE).order_by("-id")[:limit]
    )


def breaker_events_recent(*, limit: int) -> list[BreakerEvent]:
    """The last ``limit`` breaker events of every kind, newest first."""
    return list(BreakerEvent.objects.order_by("-id")[:limit])


def breakers_with_pending(queryset: QuerySet[Breaker] | None = None) -> QuerySet[Breaker]:
    """Breakers annotated with ``pending``: their dependency's pending jobs (one index-backed
    count per row, in the same query), for lists that show held jobs."""
    count = (
        Job.objects.filter(status=JobStatus.PENDING, dependency=OuterRef("name"))
        .order_by().values("dependency").annotate(n=Count("*")).values("n")
    )
    queryset = Breaker.objects.all() if queryset is None else queryset
    return queryset.annotate(pending=Coalesce(Subquery(count, output_field=IntegerField()), 0))
