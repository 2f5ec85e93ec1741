"""Counting jobs without scanning them: exact small counts, bounded counts and PostgreSQL's estimates.

``SELECT count(*)`` over a million jobs scans them all. PostgreSQL already knows roughly how many
rows there are: ``pg_class.reltuples`` for the whole table (kept by autovacuum/ANALYZE), the
planner's row estimate (``EXPLAIN``) for a filtered list. Other databases have no estimate.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import connection, connections
from django.db.models import Count, QuerySet

from jobs import breakers, dialect
from jobs.models import Job, JobStatus
from jobs.selectors import sql

EXACT_COUNT_LIMIT = 10_000


def pending_count() -> int:
    return Job.objects.filter(status=JobStatus.PENDING).count()


def pending_count_of(*, dependency: str) -> int:
    """Pending jobs of one dependency (one index-backed count)."""
    return Job.objects.filter(status=JobStatus.PENDING, dependency=dependency).count()


def counts_by_status() -> dict[str, int]:
    rows = Job.objects.values("status").annotate(n=Count("*")).order_by()  # *: index-only on PostgreSQL
    counts = dict.fromkeys(JobStatus.values, 0)
    counts.update({row["status"]: row["n"] for row in rows})
    return counts


def pending_by_dependency() -> dict[str, int]:
    rows = Job.objects.filter(status=JobStatus.PENDING).values("dependency").annotate(n=Count("*")).order_by()
    return {row["dependency"]: row["n"] for row in rows}


def in_flight_by_dependency(*, now: datetime, dependency: str | None = None) -> dict[str, int]:
    """Calls in flight per dependency: running jobs whose lease is live (what flow control counts)."""
    rows = breakers.jobs_in_flight(now=now, dependency=dependency).values("dependency").annotate(n=Count("*")).order_by()
    return {row["dependency"]: row["n"] for row in rows}


def count_exact(*, status: str) -> int:
    return Job.objects.filter(status=status).count()


def estimated_count(queryset: QuerySet) -> int | None:
    """PostgreSQL's estimate of ``queryset.count()`` (no rows read), or None where there is none."""
    db = connections[queryset.db]
    if not dialect.of(db).estimates:
        return None
    with db.cursor() as cursor:
        if not queryset.query.where:
            cursor.execute(sql.TABLE_ROWS_ESTIMATE, [queryset.model._meta.db_table])
            row = cursor.fetchone()
            return int(row[0]) if row and row[0] >= 0 else None  # -1: never analysed
        try:
            query, params = queryset.order_by().values("pk").query.sql_with_params()
        except EmptyResultSet:  # .none(), e.g. a filter value that matches nothing: no SQL at all
            return 0
        cursor.execute(sql.EXPLAIN_JSON.format(sql=query), params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


def pending_estimate(*, dependency: str) -> int | None:
    """PostgreSQL's planner estimate of ``dependency``'s pending jobs (no rows read); None elsewhere."""
    return estimated_count(Job.objects.filter(status=JobStatus.PENDING, dependency=dependency))


def count_estimate(*, status: str) -> int | None:
    """PostgreSQL's planner estimate of the jobs in ``status`` (no rows read); None elsewhere."""
    return estimated_count(Job.objects.filter(status=status))


def counts_by_status_bounded(*, limit: int = EXACT_COUNT_LIMIT) -> dict[str, int | None]:
    """Exact counts by status in one round trip, each a walk of at most ``limit`` + 1 index
    entries; ``None`` for a status with more than ``limit`` jobs (count it another way)."""
    table = connection.ops.quote_name(Job._meta.db_table)
    statuses = JobStatus.values
    bounded = ", ".join(sql.BOUNDED_STATUS_COUNT.format(table=table, i=i) for i in range(len(statuses)))
    params: list[Any] = []
    for status in statuses:
        params += [status, limit + 1]
    with connection.cursor() as cursor:
        cursor.execute(sql.SELECT_ALL.format(columns=bounded), params)
        values = cursor.fetchone()
    return {status: (n if n <= limit else None) for status, n in zip(statuses, values, strict=True)}


def pending_counts_bounded(*, dependencies: Sequence[str], limit: int = EXACT_COUNT_LIMIT) -> dict[str, int | None]:
    """Pending jobs per dependency in one round trip, each a walk of at most ``limit`` + 1 entries
    of the (status, dependency) index; ``None`` for a dependency with more than ``limit``."""
    names = list(dependencies)
    if not names:
        return {}
    table = connection.ops.quote_name(Job._meta.db_table)
    bounded = ", ".join(sql.BOUNDED_DEPENDENCY_COUNT.format(table=table, i=i) for i in range(len(names)))
    params: list[Any] = []
    for name in names:
        params += [JobStatus.PENDING, name, limit + 1]
    with connection.cursor() as cursor:
        cursor.execute(sql.SELECT_ALL.format(columns=bounded), params)
        values = cursor.fetchone()
    return {name: (n if n <= limit else None) for name, n in zip(names, values, strict=True)}


def counts_by_status_and_dependency_bounded(
    *, statuses: Sequence[str], dependencies: Sequence[str], limit: int = EXACT_COUNT_LIMIT
) -> dict[tuple[str, str], int]:
    """{(status, dependency): jobs} for every pair, as cheap to read at 10 M rows as at 10.

    One round trip of bounded counts (each a walk of at most ``limit`` + 1 entries of the
    (status, dependency) index); a pair with more than ``limit`` jobs is PostgreSQL's planner
    estimate instead (no rows read), or an exact count where there is no estimate (SQLite)."""
    pairs = [(status, name) for status in statuses for name in dependencies]
    if not pairs:
        return {}
    table = connection.ops.quote_name(Job._meta.db_table)
    bounded = ", ".join(sql.BOUNDED_DEPENDENCY_COUNT.format(table=table, i=i) for i in range(len(pairs)))
    params: list[Any] = []
    for status, name in pairs:
        params += [status, name, limit + 1]
    with connection.cursor() as cursor:
        cursor.execute(sql.SELECT_ALL.format(columns=bounded), params)
        values = cursor.fetchone()
    counts: dict[tuple[str, str], int] = {}
    for (status, name), n in zip(pairs, values, strict=True):
        if n > limit:
            many = Job.objects.filter(status=status, dependency=name)
            estimate = estimated_count(many)
            # An estimate below what was just walked is stale statistics: the walk is the floor.
            n = max(estimate, n) if estimate is not None else many.count()
        counts[(status, name)] = n
    return counts
