"""Every raw statement the selectors run, named and said what it does (what differs between
SQLite and PostgreSQL comes from ``jobs.dialect``).

Placeholders: ``%s`` are query parameters; ``{table}`` is the job table quoted by the
connection, ``{i}`` a subquery's number; other ``{...}`` are fragments built here.
"""

from __future__ import annotations

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
