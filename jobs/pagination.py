"""Counting without scanning: the admin's paginator estimates large counts on PostgreSQL.

``SELECT count(*)`` over a million jobs scans them all on every page view. PostgreSQL already
knows roughly how many rows there are: ``pg_class.reltuples`` for the whole table (kept by
autovacuum/ANALYZE), the planner's row estimate (``EXPLAIN``) for a filtered list. Below
``EXACT_BELOW`` rows the exact count is cheap and is used instead. Other databases count exactly.
"""

from __future__ import annotations

import json

from django.core.exceptions import EmptyResultSet
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet
from django.utils.functional import cached_property

EXACT_BELOW = 10_000


def estimated_count(queryset: QuerySet) -> int | None:
    """PostgreSQL's estimate of ``queryset.count()``, or None where there is none."""
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        if not queryset.query.where:
            cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [queryset.model._meta.db_table])
            row = cursor.fetchone()
            return int(row[0]) if row and row[0] >= 0 else None  # -1: never analysed
        try:
            sql, params = queryset.order_by().values("pk").query.sql_with_params()
        except EmptyResultSet:  # .none(), e.g. a filter value that matches nothing: no SQL at all
            return 0
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


class EstimatedCountPaginator(Paginator):
    """A Paginator whose ``count`` is PostgreSQL's estimate when that is large."""

    exact_below = EXACT_BELOW

    @cached_property
    def count(self) -> int:
        estimate = estimated_count(self.object_list) if isinstance(self.object_list, QuerySet) else None
        if estimate is None or estimate < self.exact_below:
            return super().count
        return estimate
