"""Every raw statement the selectors run, named and said what it does (what differs between
SQLite and PostgreSQL comes from ``jobs.dialect``).

Placeholders: ``%s`` are query parameters; ``{table}`` is the job table quoted by the
connection, ``{i}`` a subquery's number; other ``{...}`` are fragments built here.
"""

from __future__ import annotations

import itertools

# One group's exact count, walking at most LIMIT index entries (params: the WHERE's values, then
# the limit): ``where`` is "status = %s" or "status = %s AND dependency = %s", backed by the
# (status, dependency) index.
BOUNDED_COUNT = "(SELECT COUNT(*) FROM (SELECT 1 FROM {table} WHERE {where} LIMIT %s) AS b{i})"

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


# SQLite: JSON containment as PostgreSQL's ``@>`` defines it, built for one needle (Django's
# ``__contains`` on a JSONField is PostgreSQL-only). An object contains another when each of the
# needle's keys is present with a value that contains the needle's value; an array contains
# another when each needle element is contained by some element (order and repeats do not
# matter); scalars must be equal and of the same JSON type (1 equals 1.0; true is not 1). Keys
# and values are query parameters, never spliced into the text or a JSON path.
JSON_TYPE_IS = "json_type({doc}) = '{type}'"
JSON_MEMBER = "EXISTS (SELECT 1 FROM json_each({doc}) AS {alias} WHERE {alias}.key = %s AND {match})"
JSON_ELEMENT = "EXISTS (SELECT 1 FROM json_each({doc}) AS {alias} WHERE {match})"


def json_contains(doc: str, needle: dict | list) -> tuple[str, list]:
    """A condition true when the JSON text ``doc`` (an SQL expression) contains ``needle``, and its params."""
    params: list = []
    aliases = itertools.count()

    def container(doc: str, value: dict | list) -> str:
        if isinstance(value, dict):
            parts = [JSON_TYPE_IS.format(doc=doc, type="object")]
            for key, child in value.items():
                alias = f"jc{next(aliases)}"
                params.append(key)  # its %s comes before the match's own in the text
                parts.append(JSON_MEMBER.format(doc=doc, alias=alias, match=element(alias, child)))
        else:
            parts = [JSON_TYPE_IS.format(doc=doc, type="array")]
            for child in value:
                alias = f"jc{next(aliases)}"
                parts.append(JSON_ELEMENT.format(doc=doc, alias=alias, match=element(alias, child)))
        return "(" + " AND ".join(parts) + ")"

    def element(alias: str, value) -> str:
        """``alias`` (a json_each row: its type and value) contains ``value``."""
        if isinstance(value, dict | list):
            kind = "object" if isinstance(value, dict) else "array"
            return f"{alias}.type = '{kind}' AND {container(f'{alias}.value', value)}"
        if value is None:
            return f"{alias}.type = 'null'"
        if isinstance(value, bool):
            return f"{alias}.type = '{'true' if value else 'false'}'"
        params.append(value)
        if isinstance(value, int | float):
            return f"{alias}.type IN ('integer', 'real') AND {alias}.value = %s"
        return f"{alias}.type = 'text' AND {alias}.value = %s"

    return container(doc, needle), params
