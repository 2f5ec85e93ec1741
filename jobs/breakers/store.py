"""Breaker rows: read them, and create the missing ones (one row per dependency)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from jobs import dependencies, dialect
from jobs.breakers import rules, sql
from jobs.exceptions import BreakerNotFound
from jobs.models import Breaker, Job, JobStatus


def breakers_ensure(names: list[str] | None = None) -> None:
    """Create the missing rows (every configured dependency by default). Idempotent, race-free."""
    wanted = set(names if names is not None else dependencies.configured())
    missing = wanted - set(Breaker.objects.filter(name__in=wanted).values_list("name", flat=True))
    if missing:
        now = timezone.now()
        Breaker.objects.bulk_create(
            [Breaker(name=n, updated_at=now) for n in sorted(missing)], ignore_conflicts=True
        )


def breaker_row(name: str, *, create_any: bool = False) -> Breaker:
    """The row of ``name``, created for a configured dependency (or for any name a job carries,
    with ``create_any``: a dependency removed from settings keeps its breaker); else
    ``BreakerNotFound``."""
    row = Breaker.objects.filter(name=name).first()
    if row is not None:
        return row
    if not create_any and name not in dependencies.configured():
        raise BreakerNotFound(f"no breaker {name!r}")
    breakers_ensure([name])
    return Breaker.objects.get(name=name)


def claim_gates(*, now: datetime) -> dict[str, tuple[rules.Decision, Breaker]]:
    """Every breaker's decision at ``now``: one small query (the claim path's whole breaker cost).

    The worker reads the gates on every trip, so the rows are built straight from the cursor:
    through the ORM (even ``raw()``) this was a sixth of a drained job's cost (make bench: drain)."""
    rows = breakers_all()
    if not set(dependencies.configured()) <= {row.name for row in rows}:
        breakers_ensure()
        rows = breakers_all()
    return {row.name: (rules.decide(row, now), row) for row in rows}


def breakers_all() -> list[Breaker]:
    """Every row, built from one cursor read without the ORM's per-row cost."""
    return _rows(sql.BREAKERS_SELECT_ALL, [])


def breakers_lock(names: list[str], *, now: datetime) -> dict[str, tuple[Breaker, int]]:
    """The rows of ``names`` as they are now, locked until the transaction ends, each with its
    calls in flight at ``now`` (counted once the locks are held: ``sql.breakers_lock``); a row
    another transaction holds is left out (its dependency admits nothing more in this claim)."""
    if not names:
        return {}
    rows = {row.name: row for row in _rows(sql.breakers_lock(dialect.current(), count=len(names)), list(names))}
    if not rows:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(sql.in_flight(count=len(rows)), [connection.ops.adapt_datetimefield_value(now), *sorted(rows)])
        counts = dict(cursor.fetchall())
    return {name: (row, counts.get(name, 0)) for name, row in rows.items()}


def _rows(statement: str, params: list[Any]) -> list[Breaker]:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        rows = cursor.fetchall()
    return [_row(row) for row in rows]


def _row(values: tuple[Any, ...]) -> Breaker:
    return Breaker.from_db(connection.alias, sql.BREAKER_ATTNAMES, [_value(v, i) for i, v in enumerate(values)])


def _value(value: Any, index: int) -> Any:
    if sql.BREAKER_IS_DATETIME[index]:
        return _aware(value)
    if sql.BREAKER_IS_JSON[index]:
        return _LIMITS.from_db_value(value, None, connection) if isinstance(value, str) else (value or {})
    return value


_LIMITS = Breaker._meta.get_field("limits")


def _aware(value: Any) -> datetime | None:
    """A stored datetime as an aware one (SQLite hands back naive UTC, parsed or as text)."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def jobs_in_flight(*, now: datetime, dependency: str | None = None) -> QuerySet[Job]:
    """The calls in flight flow control counts: running jobs whose lease is live at ``now`` (a
    dead worker's calls stop counting when its lease expires). The claim says the same in SQL
    (``jobs.breakers.sql.in_flight``)."""
    running = Job.objects.filter(status=JobStatus.RUNNING, lease_expires_at__gt=now)
    return running if dependency is None else running.filter(dependency=dependency)
