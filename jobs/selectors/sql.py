"""Every raw statement the selectors run, named and said what it does, and the one dialect object
that holds what differs between SQLite and PostgreSQL for them.

Placeholders: ``%s`` are query parameters; ``{table}`` is the job table quoted by the
connection, ``{i}`` a subquery's number; other ``{...}`` are fragments built here.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.backends.base.base import BaseDatabaseWrapper

# One status's exact count, walking at most LIMIT index entries (params: status, limit).
BOUNDED_STATUS_COUNT = "(SELECT COUNT(*) FROM (SELECT 1 FROM {table} WHERE status = %s LIMIT %s) AS s{i})"

# One dependency's pending jobs, walking at most LIMIT entries of the (status, dependency) index
# (params: status, dependency, limit).
BOUNDED_DEPENDENCY_COUNT = (
    "(SELECT COUNT(*) FROM (SELECT 1 FROM {table} WHERE status = %s AND dependency = %s LIMIT %s) AS d{i})"
)

# Several scalar subqueries in one round trip: one row, one column each.
SELECT_ALL = "SELECT {columns}"

# PostgreSQL: the table's row count as of its last ANALYZE, -1 if never analysed (param: table name).
TABLE_ROWS_ESTIMATE = "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass"

# PostgreSQL: the plan of ``sql``; the top node's "Plan Rows" is the planner's row estimate.
EXPLAIN_JSON = "EXPLAIN (FORMAT JSON) {sql}"

# Succeeded and failed jobs per (unix second, status) since a time, bucketed by the database's
# native function (params: succeeded, failed, since).
FINISHED_PER_SECOND = (
    "SELECT {second}, status, COUNT(*) FROM {table} "
    "WHERE status IN (%s, %s) AND finished_at >= %s GROUP BY 1, 2"
)


@dataclass(frozen=True)
class Dialect:
    """What the selectors' SQL needs to know about one database vendor."""

    # The whole second of ``finished_at`` since the epoch; None: no native function (bucket in Python).
    epoch_second: str | None
    # The database keeps statistics that estimate a count without reading rows.
    estimates: bool


DIALECTS = {
    "postgresql": Dialect(epoch_second="FLOOR(EXTRACT(EPOCH FROM finished_at))::bigint", estimates=True),
    "sqlite": Dialect(epoch_second="CAST(strftime('%%s', finished_at) AS INTEGER)", estimates=False),
}
PORTABLE = Dialect(epoch_second=None, estimates=False)


def dialect_for(connection: BaseDatabaseWrapper) -> Dialect:
    """The dialect of ``connection`` (a portable, slower one for other vendors)."""
    return DIALECTS.get(connection.vendor, PORTABLE)
