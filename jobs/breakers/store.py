"""Breaker rows: read them, and create the missing ones (one row per dependency)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.db import OperationalError, connection, transaction
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


def breakers_lock(names: list[str], *, now: datetime, wait: float = 0.0) -> dict[str, tuple[Breaker, int]]:
    """The rows of ``names`` as they are now with their calls in flight at ``now``, locked until
    the transaction ends. On PostgreSQL the rows are locked first, skipping those another claim
    holds, and then, with ``wait`` (seconds), waiting that long for those (``_lock_waiting``): the
    claim holding one commits in a few milliseconds, and a claim that skipped it would take none
    of its dependency's jobs. A row still held after ``wait`` is left out (its dependency admits
    nothing more in this claim). The calls in flight are counted once the rows are held, in the
    next statement: one that started before a lock was granted would not see the calls of the
    claim that held it (``sql.breakers_lock``)."""
    if not names:
        return {}
    db = dialect.current()
    if db.skips_locked:
        with connection.cursor() as cursor:
            cursor.execute(sql.breakers_lock(db, count=len(names), skip_locked=True), names)
            held = [name for (name,) in cursor.fetchall()]
        missing = sorted(set(names) - set(held))
        if missing and wait > 0 and _lock_waiting(missing, wait):
            held += missing
        names = sorted(held)
        if not names:
            return {}
    with connection.cursor() as cursor:
        cursor.execute(sql.breakers_counted(count=len(names)), [connection.ops.adapt_datetimefield_value(now), *names])
        rows = cursor.fetchall()
    return {row.name: (row, in_flight) for row, in_flight in ((_row(r[:-1]), r[-1]) for r in rows)}


# A lock wait that ends in a lock timeout, or a deadlock PostgreSQL broke by failing this side.
_LOCK_GIVEN_UP = {"55P03", "40P01"}


def _lock_waiting(names: list[str], wait: float) -> bool:
    """Lock the rows of ``names`` (PostgreSQL), waiting at most ``wait`` seconds; whether they are
    held now. In a savepoint with its own lock timeout, so giving up undoes only the wait, never the
    transaction it is part of (the worker's trip: its recorded outcomes stay)."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql.LOCK_TIMEOUT_SET, [f"{max(1, round(wait * 1000))}ms"])
            [(previous, _)] = cursor.fetchall()
            cursor.execute(sql.breakers_lock(dialect.current(), count=len(names), skip_locked=False), names)
            cursor.fetchall()
            cursor.execute(sql.LOCK_TIMEOUT_SET, [previous])
    except OperationalError as exc:
        if getattr(exc.__cause__, "sqlstate", None) not in _LOCK_GIVEN_UP:
            raise
        return False  # the rollback to the savepoint also put the lock timeout back
    return True


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
    (``jobs.breakers.sql.breakers_counted``)."""
    running = Job.objects.filter(status=JobStatus.RUNNING, lease_expires_at__gt=now)
    return running if dependency is None else running.filter(dependency=dependency)
