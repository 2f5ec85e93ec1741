"""Every raw statement of the breakers, named; the rest of the package goes through the ORM."""

from __future__ import annotations

from django.db.models import DateTimeField, JSONField

from jobs.dialect import Dialect
from jobs.models import Breaker, Job, JobStatus

# The columns of a Breaker row, in the order the statements below select them.
BREAKER_FIELDS = Breaker._meta.concrete_fields
BREAKER_ATTNAMES = [f.attname for f in BREAKER_FIELDS]
BREAKER_IS_DATETIME = [isinstance(f, DateTimeField) for f in BREAKER_FIELDS]
BREAKER_IS_JSON = [isinstance(f, JSONField) for f in BREAKER_FIELDS]

# Every breaker row, every column: the claim path's one breaker read (``store.breakers_all``).
BREAKER_COLUMNS = ", ".join(f.column for f in BREAKER_FIELDS)
BREAKERS_SELECT_ALL = f"SELECT {BREAKER_COLUMNS} FROM {Breaker._meta.db_table}"  # noqa: S608 - constants


def breakers_lock(dialect: Dialect, *, count: int) -> str:
    """The rows of ``count`` named breakers, locked for the claim's transaction, skipping rows
    another claim holds (PostgreSQL; SQLite's IMMEDIATE transaction already serialises claims).

    Parameters: the names. The calls in flight are counted by the next statement
    (``in_flight``), never in this one: under READ COMMITTED a statement reads the jobs as they
    were when it started, which may be before the commit of the claim whose lock it then takes —
    a count in the locking statement could miss that claim's calls and exceed the limit."""
    return (
        f"SELECT {BREAKER_COLUMNS} FROM {Breaker._meta.db_table} "  # noqa: S608 - constants
        f"WHERE name IN ({', '.join(['%s'] * count)}){dialect.lock_clause(skip_locked=True)}"
    )


def in_flight(*, count: int) -> str:
    """(dependency, calls in flight) for ``count`` names: running jobs whose lease is live at now.

    Parameters: now, the names. A dead worker's calls stop counting when its lease expires, so a
    crash never holds a slot for longer than the lease (``job_status_dependency``). Run after
    ``breakers_lock`` in the same transaction: its snapshot then includes every claim that held
    those rows before."""
    jobs = Job._meta.db_table
    return (
        f"SELECT dependency, COUNT(*) FROM {jobs} WHERE status = '{JobStatus.RUNNING.value}' "  # noqa: S608
        f"AND lease_expires_at > %s AND dependency IN ({', '.join(['%s'] * count)}) GROUP BY dependency"
    )


# Set the rate limit's theoretical arrival time (a claim giving back slots it did not use).
RATE_SET = f"UPDATE {Breaker._meta.db_table} SET rate_tat = %s WHERE name = %s"  # noqa: S608 - constants

# Take the rate limit's next slot (GCRA): the theoretical arrival time moves one interval on,
# only if it has not passed ``now`` (a concurrent claim that took it first makes this miss).
# Parameters: the new time, the name, now (epoch seconds).
RATE_TAKE = (
    f"UPDATE {Breaker._meta.db_table} SET rate_tat = %s WHERE name = %s "  # noqa: S608 - constants
    "AND (rate_tat IS NULL OR rate_tat <= %s)"
)
