"""Aggregates for ``/metrics`` and the dashboard's throughput: each one query, read at scrape time."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, Sum
from django.utils import timezone

from jobs import breakers, dependencies, dialect
from jobs.models import Breaker, BreakerEventKind, Counter, CounterMetric, Job, JobStatus
from jobs.selectors import sql
from jobs.selectors.breakers import breaker_flow, breaker_policy
from jobs.selectors.counts import (
    bounded_counts,
    in_flight_by_dependency,
    known_dependencies,
    pending_by_dependency_bounded,
)

FINISHED_STATUSES = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)
TRANSITION_KINDS = tuple(k for k in BreakerEventKind.values if k != BreakerEventKind.FAILURE)


def counter_totals(*, metric: str) -> dict[tuple[str, str], int]:
    """{(dependency, label): total} of one never-decreasing counter, its shards summed."""
    rows = Counter.objects.filter(metric=metric).values_list("dependency", "label").annotate(n=Sum("value")).order_by()
    return {(dependency, label): n for dependency, label, n in rows}


def counts_by_status_and_dependency(*, statuses: Sequence[str]) -> list[tuple[str, str, int]]:
    """(status, dependency, jobs) for each of ``statuses`` and every known dependency (configured,
    or with a breaker row): exact up to ``EXACT_COUNT_LIMIT`` a pair, PostgreSQL's estimate beyond
    (exact on SQLite), so a scrape costs the same at 10 M jobs as at 10 (``bounded_counts``)."""
    names = known_dependencies()
    counts = bounded_counts({(status, name): {"status": status, "dependency": name}
                             for status in statuses for name in names})
    return [(status, dependency, c.n) for (status, dependency), c in counts.items()]


def finished_since(*, since: datetime) -> list[tuple[str, str, int]]:
    """(outcome, dependency, jobs) for jobs that reached a final status at or after ``since``."""
    rows = (
        Job.objects.filter(status__in=FINISHED_STATUSES, finished_at__gte=since)
        .values_list("status", "dependency")
        .annotate(n=Count("*"))
        .order_by()
    )
    return [(status, dependency, n) for status, dependency, n in rows]


def duration_histogram_since(
    *, since: datetime, bounds: Sequence[float]
) -> dict[str, tuple[list[int], int, float]]:
    """Per dependency: cumulative counts of final-attempt durations ≤ each bound, the total count
    and the sum of seconds, over succeeded and failed jobs finished at or after ``since``.

    Bucketed in the database (one row per dependency), so the cost does not grow with throughput
    beyond the index range scan.
    """
    duration = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
    aggregates = {
        f"le_{i}": Count("seq", filter=Q(duration__lte=timedelta(seconds=bound)))
        for i, bound in enumerate(bounds)
    }
    rows = (
        Job.objects.filter(
            status__in=(JobStatus.SUCCEEDED, JobStatus.FAILED),
            finished_at__gte=since,
            started_at__isnull=False,
        )
        .annotate(duration=duration)
        .values("dependency")
        .annotate(total=Count("seq"), seconds=Sum("duration"), **aggregates)
        .order_by()
    )
    result = {}
    for row in rows:
        seconds = row["seconds"].total_seconds() if row["seconds"] is not None else 0.0
        counts = [row[f"le_{i}"] for i in range(len(bounds))]
        result[row["dependency"]] = (counts, row["total"], seconds)
    return result


def finished_per_second(*, since: datetime) -> dict[int, tuple[int, int]]:
    """{unix second: (succeeded, failed)} for jobs finished at or after ``since``.

    One grouped query over the (status, finished_at) index, bucketing with the database's own
    native function (Django's TruncSecond runs a Python callback per row on SQLite).
    """
    table = connection.ops.quote_name(Job._meta.db_table)
    second = dialect.of(connection).epoch_second
    if second is None:  # pragma: no cover - other backends: portable but slower
        rows = (
            Job.objects.filter(status__in=(JobStatus.SUCCEEDED, JobStatus.FAILED), finished_at__gte=since)
            .values_list("finished_at", "status")
        )
        result_rows = [(int(at.timestamp()), status, 1) for at, status in rows]
    else:
        with connection.cursor() as cursor:
            cursor.execute(
                sql.FINISHED_PER_SECOND.format(second=second, table=table),
                [JobStatus.SUCCEEDED, JobStatus.FAILED, connection.ops.adapt_datetimefield_value(since)],
            )
            result_rows = cursor.fetchall()
    buckets: dict[int, list[int]] = {}
    for sec, status, n in result_rows:
        slot = buckets.setdefault(int(sec), [0, 0])
        slot[0 if status == JobStatus.SUCCEEDED else 1] += n
    return {sec: (ok, bad) for sec, (ok, bad) in buckets.items()}


def breaker_metrics(*, pending: dict[str, int] | None = None) -> list[dict[str, Any]]:
    """Per breaker, for Prometheus: effective and automatic state, override, held jobs, failures,
    transitions by kind.

    Four small queries (the fourth: calls in flight), whatever the size of the history: transitions
    come from their counters (jobs.counters), which pruning old BreakerEvents does not lower. A
    configured dependency without a row yet (fresh database) reports closed, as its breaker would be.
    ``pending`` ({dependency: pending jobs}, e.g. what the scrape's job gauge just counted) saves
    counting them again; without it they are bounded counts like the gauge's."""
    now = timezone.now()
    in_flight = in_flight_by_dependency(now=now)
    rows = {row.name: row for row in Breaker.objects.order_by("name")}
    for name in dependencies.configured():
        rows.setdefault(name, Breaker(name=name, updated_at=now))
    if pending is None:
        pending = {name: c.n for name, c in pending_by_dependency_bounded(names=sorted(rows)).items()}
    transitions: dict[str, dict[str, int]] = {}
    for (name, kind), n in counter_totals(metric=CounterMetric.BREAKER_TRANSITIONS).items():
        transitions.setdefault(name, {})[kind] = n
    result = []
    for name, row in sorted(rows.items()):
        admits = breakers.decide(row, now) == breakers.Decision.ADMIT
        result.append({
            "dependency": name, "state": breakers.effective_state(row, now), "shadow_state": row.state,
            "override": breakers.override_in_force(row, now) or "",
            "held": 0 if admits else pending.get(name, 0), "failures": row.failures,
            "threshold": breaker_policy(name=name).failure_threshold,
            "transitions": transitions.get(name, {}),
            "flow": breaker_flow(row=row, now=now, in_flight=in_flight.get(name, 0), pending=pending.get(name, 0)),
        })
    return result
