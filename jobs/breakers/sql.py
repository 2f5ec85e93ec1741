"""Every raw statement of the breakers, named; the rest of the package goes through the ORM."""

from __future__ import annotations

from django.db.models import DateTimeField, JSONField

from jobs.dialect import Dialect
from jobs.models import Breaker, BreakerOverride, BreakerState, Job, JobStatus

# The columns of a Breaker row, in the order the statements below select them.
BREAKER_FIELDS = Breaker._meta.concrete_fields
BREAKER_ATTNAMES = [f.attname for f in BREAKER_FIELDS]
BREAKER_IS_DATETIME = [isinstance(f, DateTimeField) for f in BREAKER_FIELDS]
BREAKER_IS_JSON = [isinstance(f, JSONField) for f in BREAKER_FIELDS]

# Every breaker row, every column: the claim path's one breaker read (``store.breakers_all``).
BREAKER_COLUMNS = ", ".join(f.column for f in BREAKER_FIELDS)
BREAKERS_SELECT_ALL = f"SELECT {BREAKER_COLUMNS} FROM {Breaker._meta.db_table}"  # noqa: S608 - constants


def breakers_lock(dialect: Dialect, *, count: int, skip_locked: bool) -> str:
    """Lock ``count`` named breaker rows for the claim's transaction, in name order (two claims
    then take them in the same order), returning the names of those locked: skipping rows another
    claim holds, or with ``skip_locked=False`` waiting for them (PostgreSQL; SQLite's IMMEDIATE
    transaction already serialises claims). Parameters: the names.

    It counts nothing: a statement reads the other tables as they were when it started, so a
    count taken beside the lock could miss the calls of a claim that committed while the lock
    was being taken — above all while waiting for it. ``breakers_counted`` counts them next, in a
    statement that starts once the rows are held."""
    return (
        f"SELECT name FROM {Breaker._meta.db_table} "  # noqa: S608 - constants
        f"WHERE name IN ({', '.join(['%s'] * count)}) ORDER BY name{dialect.lock_clause(skip_locked=skip_locked)}"
    )


def breakers_counted(*, count: int) -> str:
    """The rows of ``count`` named breakers and each one's calls in flight (a last column).

    Parameters: now, then the names. Calls in flight are running jobs whose lease is live at now:
    a dead worker's calls stop counting when its lease expires, so a crash never holds a slot for
    longer than the lease (``job_status_dependency``). Flow control counts them and takes its
    rate-limit slot while holding the rows (``breakers_lock``), so two workers never both spend
    the last free slot."""
    table = Breaker._meta.db_table
    jobs = Job._meta.db_table
    in_flight = (
        f"(SELECT COUNT(*) FROM {jobs} WHERE {jobs}.status = '{JobStatus.RUNNING.value}' "  # noqa: S608 - constants
        f"AND {jobs}.lease_expires_at > %s AND {jobs}.dependency = {table}.name)"
    )
    return (
        f"SELECT {BREAKER_COLUMNS}, {in_flight} FROM {table} "  # noqa: S608 - constants
        f"WHERE name IN ({', '.join(['%s'] * count)}) ORDER BY name"
    )


def breakers_holding(*, count: int) -> str:
    """Which of ``count`` named breakers reject a call at a time, as ``holds.holds_read`` reads
    them, for a statement that writes the ``held`` events itself (a submission on PostgreSQL):
    columns name, why, until, and until as Python's ``isoformat()`` writes it in UTC (the
    connection's zone: Django's PostgreSQL connections run in UTC unless DATABASES sets TIME_ZONE).

    The decision is ``rules.decide(row, now) != ADMIT``: an override in force (none, or its expiry
    after now) decides, else the automatic state; only closed admits. ``holds_read`` is the
    rule's Python side, and a test holds the two to the same answers. Parameters: now, then the names."""
    table = Breaker._meta.db_table
    closed, forced_closed, none = BreakerState.CLOSED.value, BreakerOverride.CLOSED.value, BreakerOverride.NONE.value
    iso = (
        "to_char(until AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS') "
        "|| CASE WHEN mod(date_part('microseconds', until)::bigint, 1000000) = 0 THEN '' "
        "ELSE to_char(until AT TIME ZONE 'UTC', '.US') END || '+00:00'"
    )
    return (
        f"SELECT name, why, until, {iso} AS until_text FROM ("  # noqa: S608 - constants
        f"SELECT name, CASE WHEN forced THEN override = '{forced_closed}' ELSE state = '{closed}' END AS admits, "
        "CASE WHEN forced THEN 'breaker forced ' || override ELSE 'breaker ' || state END AS why, "
        "CASE WHEN forced THEN override_expires_at ELSE retry_at END AS until "
        f"FROM (SELECT name, state, override, override_expires_at, retry_at, override <> '{none}' "
        "AND (override_expires_at IS NULL OR override_expires_at > %s) AS forced "
        f"FROM {table} WHERE name IN ({', '.join(['%s'] * count)})) AS named) AS decided WHERE NOT admits"
    )


# Set this transaction's lock timeout, returning the one in force before (to put back).
# Parameter: the new timeout ('100ms').
LOCK_TIMEOUT_SET = "SELECT current_setting('lock_timeout'), set_config('lock_timeout', %s, true)"


# Set the rate limit's theoretical arrival time (a claim giving back slots it did not use).
RATE_SET = f"UPDATE {Breaker._meta.db_table} SET rate_tat = %s WHERE name = %s"  # noqa: S608 - constants


# Take the rate limit's next slot (GCRA): the theoretical arrival time moves one interval on,
# only if it has not passed ``now`` (a concurrent claim that took it first makes this miss).
# Parameters: the new time, the name, now (epoch seconds).
RATE_TAKE = (
    f"UPDATE {Breaker._meta.db_table} SET rate_tat = %s WHERE name = %s "  # noqa: S608 - constants
    "AND (rate_tat IS NULL OR rate_tat <= %s)"
)
