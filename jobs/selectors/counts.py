"""Counting jobs without scanning them: exact small counts, bounded counts and PostgreSQL's estimates.

``SELECT count(*)`` over a million jobs scans them all. PostgreSQL already knows roughly how many
rows there are: ``pg_class.reltuples`` for the whole table (kept by autovacuum/ANALYZE), the
planner's row estimate (``EXPLAIN``) for a filtered list. Other databases have no estimate.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

from django.core.exceptions import EmptyResultSet
from django.db import connection, connections
from django.db.models import Count, QuerySet

from jobs import breakers, dependencies, dialect
from jobs.models import Breaker, Job, JobStatus
from jobs.selectors import sql

EXACT_COUNT_LIMIT = 10_000

K = TypeVar("K")


def pending_count() -> int:
    return Job.objects.filter(status=JobStatus.PENDING).count()


def counts_by_status() -> dict[str, int]:
    rows = Job.objects.values("status").annotate(n=Count("*")).order_by()  # *: index-only on PostgreSQL
    counts = dict.fromkeys(JobStatus.values, 0)
    counts.update({row["status"]: row["n"] for row in rows})
    return counts


def in_flight_by_dependency(*, now: datetime, dependency: str | None = None) -> dict[str, int]:
    """Calls in flight per dependency: running jobs whose lease is live (what flow control counts)."""
    rows = breakers.jobs_in_flight(now=now, dependency=dependency).values("dependency").annotate(n=Count("*")).order_by()
    return {row["dependency"]: row["n"] for row in rows}


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


class Bounded(NamedTuple):
    """A count that never cost more than a bounded walk: ``n`` and how far it can be trusted."""

    n: int
    bound: str  # EXACT, ESTIMATE or AT_LEAST


EXACT, ESTIMATE, AT_LEAST = "exact", "estimate", "at_least"

# Past the limit where the database keeps no estimate (SQLite): what to say for one group.
Beyond = Callable[[Any, QuerySet], Bounded]


def count_all(key: Any, queryset: QuerySet) -> Bounded:
    """``Beyond`` that counts every row: for a read that must be exact on SQLite (small tables)."""
    return Bounded(queryset.count(), EXACT)


def at_least(limit: int) -> Beyond:
    """``Beyond`` that reads nothing more: "more than ``limit``"."""
    return lambda key, queryset: Bounded(limit + 1, AT_LEAST)


def bounded_counts(groups: Mapping[K, Mapping[str, str]], *, limit: int | None = None,
                   beyond: Beyond = count_all) -> dict[K, Bounded]:
    """Jobs in each group (``{key: {field: value}}``, equality on indexed columns), as cheap to read
    at 10 M rows as at 10.

    One round trip of bounded counts, each a walk of at most ``limit`` (default
    ``EXACT_COUNT_LIMIT``) + 1 index entries: exact up to ``limit``. A group with more is
    PostgreSQL's planner estimate (no rows read; never below the walk, so stale statistics cannot
    show fewer than ``limit`` + 1), and where the database keeps no estimate (SQLite) whatever
    ``beyond(key, queryset)`` says (by default: every row counted)."""
    limit = EXACT_COUNT_LIMIT if limit is None else limit
    keys = list(groups)
    if not keys:
        return {}
    table = connection.ops.quote_name(Job._meta.db_table)
    columns, params = [], []
    for i, key in enumerate(keys):
        where = " AND ".join(f"{connection.ops.quote_name(Job._meta.get_field(f).column)} = %s" for f in groups[key])
        columns.append(sql.BOUNDED_COUNT.format(table=table, where=where or "1 = 1", i=i))
        params += [*groups[key].values(), limit + 1]
    with connection.cursor() as cursor:
        cursor.execute(sql.SELECT_ALL.format(columns=", ".join(columns)), params)
        values = cursor.fetchone()
    counts: dict[K, Bounded] = {}
    for key, n in zip(keys, values, strict=True):
        if n <= limit:
            counts[key] = Bounded(n, EXACT)
            continue
        many = Job.objects.filter(**groups[key])
        estimate = estimated_count(many)
        counts[key] = Bounded(max(estimate, n), ESTIMATE) if estimate is not None else beyond(key, many)
    return counts


def known_dependencies() -> list[str]:
    """Every dependency a count covers: the configured ones and any with a breaker row (one that
    was configured once and may still have jobs)."""
    return sorted({*dependencies.configured(), *Breaker.objects.values_list("name", flat=True)})


def pending_by_dependency_bounded(*, names: Sequence[str] | None = None, limit: int | None = None,
                                  beyond: Beyond = count_all) -> dict[str, Bounded]:
    """Pending jobs of each dependency (``names``, by default every known one), bounded."""
    names = known_dependencies() if names is None else names
    return bounded_counts({name: {"status": JobStatus.PENDING, "dependency": name} for name in names},
                          limit=limit, beyond=beyond)


def by_status_bounded(*, limit: int | None = None, beyond: Beyond = count_all) -> dict[str, Bounded]:
    """Jobs in each status, bounded."""
    return bounded_counts({status: {"status": status} for status in JobStatus.values}, limit=limit, beyond=beyond)
