"""Reads of breakers: their rows, their policies, their history, and the jobs they hold."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce

from jobs import breakers, dependencies
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


def flow_holding(*, row: Breaker, now: datetime, in_flight: int) -> str | None:
    """What of flow control holds the dependency's pending jobs right now while its breaker
    admits: ``"limit"`` (its calls in flight fill the allowance), ``"rate"`` (the next start
    waits for the rate limit), or None."""
    if breakers.decide(row, now) != breakers.Decision.ADMIT:
        return None
    allowed = breakers.flow.allowance(row, breaker_policy(name=row.name), now)
    if allowed.calls is not None and in_flight >= allowed.calls:
        return "limit"
    if not breakers.flow.rate_admits(row, allowed.rate, now.timestamp()):
        return "rate"
    return None


def breaker_flow(*, row: Breaker, now: datetime, in_flight: int, pending: int) -> dict[str, Any]:
    """A dependency's flow control as the API, /metrics and the dashboard show it: calls in
    flight, the allowance and the limit behind it, the limits in force and configured, and the
    pending jobs a limit holds now (all of them, while it admits nothing more)."""
    dep = breaker_policy(name=row.name)
    in_force = breakers.flow.limits(row, dep)
    allowed = breakers.flow.allowance(row, dep, now)
    holding = flow_holding(row=row, now=now, in_flight=in_flight)
    at_limit, rate_held = holding == "limit", holding == "rate"
    return {
        "in_flight": in_flight,
        "allowance": allowed.calls,
        "allowance_reason": allowed.why or None,
        **breakers.limits_view(in_force),
        "adaptive_limit": breakers.flow.adaptive_limit(row, in_force.adaptive) if in_force.adaptive else None,
        "adaptive_change": breakers.flow.adaptive_change(row) if in_force.adaptive else None,
        "rate_next_start": datetime.fromtimestamp(row.rate_tat, UTC).isoformat() if rate_held else None,
        "configured": breakers.limits_view(breakers.flow.limits(None, dep)),
        "live": row.limits or {},
        "held_by_limit": pending if at_limit else 0,
        "held_by_rate": pending if rate_held else 0,
    }
