"""What raw SQL must say differently on SQLite and PostgreSQL, in one small value.

``dialect.current()`` describes the default connection's database (``dialect.of(connection)``
another one); raw statements ask it for the
pieces that differ (index hints, lock clauses, a subquery's shape) instead of testing
``connection.vendor`` at each call site. No Django models here.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from django.db import connection
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import QuerySet


@dataclass(frozen=True)
class Dialect:
    """The vendor differences the queue and the selectors need; build one with ``current()``."""

    vendor: str
    # SQLite's planner needs telling: it ignores a partial index unless named (INDEXED BY) and
    # answers "status = …" from an index on status unless the unary + takes that index away.
    planner_hints: bool
    # SQLite's IMMEDIATE transaction holds the database's write lock: claims are serial, so what a
    # read saw cannot change before the same transaction writes.
    serial_writes: bool
    locks_rows: bool  # SELECT … FOR UPDATE
    skips_locked: bool  # … SKIP LOCKED: many workers claim at once without waiting on each other
    # ``col = ANY(ARRAY(subquery))`` keeps PostgreSQL's outer UPDATE a primary-key lookup whatever
    # the statistics say; SQLite has no arrays and plans ``col IN (subquery)`` well.
    array_any: bool
    # The whole second of ``finished_at`` since the epoch; None: no native function (bucket in Python).
    epoch_second: str | None
    # The database keeps statistics that estimate a count without reading rows.
    estimates: bool
    # JSON containment is native (PostgreSQL's jsonb ``@>``, GIN-indexed); else built from
    # json_each (jobs.selectors.sql.json_contains).
    json_contains: bool
    # A WITH clause may hold INSERTs (PostgreSQL): a submission writes its jobs, their events and
    # counters in one statement, one round trip; SQLite runs them one by one in a transaction.
    writes_in_with: bool

    def index_hint(self, index: str) -> str:
        """``INDEXED BY index `` where the planner must be told which index to walk, else ''."""
        return f"INDEXED BY {index} " if self.planner_hints else ""

    def unindexed(self, column: str) -> str:
        """``column`` written so that no index on it is used to answer the test (SQLite's unary +)."""
        return f"+{column}" if self.planner_hints else column

    def lock_clause(self, *, skip_locked: bool) -> str:
        """`` FOR UPDATE`` (``SKIP LOCKED`` if asked and supported), or '' where rows are not locked."""
        if skip_locked:
            return " FOR UPDATE SKIP LOCKED" if self.skips_locked else ""
        return " FOR UPDATE" if self.locks_rows else ""

    def in_subquery(self, column: str, select: str) -> str:
        """A condition: ``column`` is one of the values ``select`` returns."""
        return f"{column} = ANY(ARRAY({select}))" if self.array_any else f"{column} IN ({select})"

    def lock_skipping(self, queryset: QuerySet) -> QuerySet:
        """``queryset`` locked for this transaction where the database can skip rows others hold."""
        return queryset.select_for_update(skip_locked=True) if self.skips_locked else queryset


def current() -> Dialect:
    """The dialect of the default database connection."""
    return of(connection)


def of(db: BaseDatabaseWrapper) -> Dialect:
    """The dialect of the database behind ``db``."""
    features = db.features
    return _dialect(db.vendor, features.has_select_for_update, features.has_select_for_update_skip_locked)


@cache
def _dialect(vendor: str, locks_rows: bool, skips_locked: bool) -> Dialect:
    sqlite = vendor == "sqlite"
    epoch_second = {
        "postgresql": "FLOOR(EXTRACT(EPOCH FROM finished_at))::bigint",
        "sqlite": "CAST(strftime('%%s', finished_at) AS INTEGER)",
    }.get(vendor)
    return Dialect(
        vendor=vendor,
        planner_hints=sqlite,
        serial_writes=sqlite,
        locks_rows=locks_rows,
        skips_locked=skips_locked,
        array_any=not sqlite,
        epoch_second=epoch_second,
        estimates=vendor == "postgresql",
        json_contains=vendor == "postgresql",
        writes_in_with=vendor == "postgresql",
    )
