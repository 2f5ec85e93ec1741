"""Every raw statement of the queue, named, each saying what it does.

The ORM is enough for the rare paths (fail, release, renew, expire); these are the hot ones, where
one statement per batch matters (``make bench``: claim, drain). Table, column and status names are
constants from the model, never input; values always travel as parameters. What differs between
SQLite and PostgreSQL comes from the ``Dialect`` passed in.
"""

from __future__ import annotations

from jobs.dialect import Dialect
from jobs.models import Job, JobStatus

TABLE = Job._meta.db_table
PENDING = JobStatus.PENDING.value
RUNNING = JobStatus.RUNNING.value
SUCCEEDED = JobStatus.SUCCEEDED.value

POP_ORDER_INDEX = "job_pop_order"
POP_ORDER_BY_DEPENDENCY_INDEX = "job_pop_order_by_dependency"

# The columns a claim hands the worker; the rest of the row stays deferred (loaded on access).
CLAIMED_COLUMNS = ("seq", "uuid", "kind", "payload", "dependency", "priority", "attempts", "max_attempts")

# Pending and due; one parameter: now. SQLite only uses the partial pop-order indexes when a query
# repeats their WHERE term literally, so this text is theirs.
PENDING_RUNNABLE = f"status = '{PENDING}' AND run_after <= %s"


def placeholders(count: int) -> str:
    """``%s, %s, …``: ``count`` parameters of an IN list."""
    return ", ".join(["%s"] * count)


def pop_order_head(dialect: Dialect, *, excluded: int) -> str:
    """The seqs of the first N runnable jobs in pop order, skipping rows other claims hold.

    Parameters: now, the ``excluded`` dependency names, N. SQLite's planner would prefer
    ``job_status_finished`` plus a sort of every pending row (O(queue) per claim, 170 ms at 100 k
    pending): naming the index makes each claim one index walk, and fails loudly if it is dropped.
    PostgreSQL picks the index by itself (tests/jobs/queue/test_claim_concurrency.py checks the plan).
    """
    where = PENDING_RUNNABLE
    if excluded:
        where += f" AND dependency NOT IN ({placeholders(excluded)})"
    return (
        f"SELECT seq FROM {TABLE} {dialect.index_hint(POP_ORDER_INDEX)}WHERE {where} "  # noqa: S608 - constants
        f"ORDER BY priority DESC, seq LIMIT %s{dialect.lock_clause(skip_locked=True)}"
    )


def pop_order_head_condition(dialect: Dialect, *, excluded: int) -> str:
    """A WHERE term: the job is among ``pop_order_head``'s rows (same parameters)."""
    return dialect.in_subquery("seq", pop_order_head(dialect, excluded=excluded))


# A WHERE term: this one job. Parameter: its seq.
ONE_JOB = "seq = %s"


def claim(dialect: Dialect, *, condition: str) -> str:
    """Lease the pending jobs matching ``condition`` to a worker, returning ``CLAIMED_COLUMNS``.

    Parameters: worker id, lease expiry, started at, updated at, then ``condition``'s. SQLite would
    answer "status = 'pending'" from an index on status, i.e. walk every pending row and test it
    against the list (1.2 ms per claim at 20 k pending); the unary + keeps the check but takes the
    index away, so the rows are found by primary key.
    """
    return (
        f"UPDATE {TABLE} SET status = '{RUNNING}', lease_owner = %s, "  # noqa: S608 - constants
        "lease_expires_at = %s, started_at = %s, updated_at = %s "
        f"WHERE {condition} AND {dialect.unindexed('status')} = '{PENDING}' RETURNING {', '.join(CLAIMED_COLUMNS)}"
    )


def dependency_heads(dialect: Dialect, *, dependencies: int) -> str:
    """(priority, seq, dependency) of the next runnable job of each of ``dependencies`` names.

    One short probe of ``job_pop_order_by_dependency`` per name, however many jobs are held
    elsewhere. Parameters: (now, name) per dependency. SQLite names the index, as the claim does.
    """
    probe = (
        f"SELECT priority, seq, dependency FROM {TABLE} {dialect.index_hint(POP_ORDER_BY_DEPENDENCY_INDEX)}"  # noqa: S608
        f"WHERE {PENDING_RUNNABLE} AND dependency = %s ORDER BY priority DESC, seq LIMIT 1"
    )
    return " UNION ALL ".join(f"SELECT * FROM ({probe}) AS top{i}" for i in range(dependencies))  # noqa: S608


def still_leased(dialect: Dialect, *, count: int) -> str:
    """Which of ``count`` seqs a worker still leases, locked until the transaction ends.

    Parameters: the seqs, the worker id. It waits for the locks, never skips them: another
    worker's claim can hold one of our running rows for a moment.
    """
    return (
        f"SELECT seq FROM {TABLE} WHERE seq IN ({placeholders(count)}) "  # noqa: S608 - constants
        f"AND status = '{RUNNING}' AND lease_owner = %s{dialect.lock_clause(skip_locked=False)}"
    )


# Record one success: the attempt counts, the result is stored, the lease ends; only while the
# worker still holds the lease. Parameters: result, finished at, updated at, seq, worker id.
SUCCEED = (
    f"UPDATE {TABLE} SET status = '{SUCCEEDED}', attempts = attempts + 1, "  # noqa: S608 - constants
    "result = %s, finished_at = %s, lease_owner = '', lease_expires_at = NULL, updated_at = %s "
    f"WHERE seq = %s AND status = '{RUNNING}' AND lease_owner = %s"
)


def dependency_run(dialect: Dialect, *, bounded: bool) -> str:
    """The seqs of one dependency's next N runnable jobs in pop order, skipping locked rows; with
    ``bounded``, only those ahead of another dependency's head (priority, seq) in pop order.

    Parameters: now, the dependency, [the bound's priority twice and seq,] N. The claim takes a
    run of one dependency's jobs in one statement while flow control or a breaker makes it probe
    dependency by dependency, so a healthy dependency's jobs still go many to a statement."""
    where = f"{PENDING_RUNNABLE} AND dependency = %s"
    if bounded:
        where += " AND (priority > %s OR (priority = %s AND seq < %s))"
    return dialect.in_subquery("seq", (
        f"SELECT seq FROM {TABLE} {dialect.index_hint(POP_ORDER_BY_DEPENDENCY_INDEX)}WHERE {where} "  # noqa: S608
        f"ORDER BY priority DESC, seq LIMIT %s{dialect.lock_clause(skip_locked=True)}"
    ))
