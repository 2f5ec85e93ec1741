"""The worker's primitives: claim the next job in pop order, renew its lease, record its outcome.

Every function is one short transaction that writes its JobEvent beside the change. Outcomes are
conditional UPDATEs on (status=running, lease_owner=worker): a worker that lost its lease can
never overwrite what another worker recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from jobs import breakers, conf, events, logs, notify, retry, validation
from jobs.models import EventKind, Job, JobEvent, JobStatus

MAX_ERROR_CHARS = 4000
LOG_ERROR_CHARS = 500


def pop_order(queryset: QuerySet[Job] | None = None) -> QuerySet[Job]:
    """Pending jobs in pop order: highest priority first, then oldest (by sequence)."""
    qs = Job.objects.all() if queryset is None else queryset
    return qs.filter(status=JobStatus.PENDING).order_by("-priority", "seq")


def job_claim_next(
    *,
    worker_id: str,
    exclude_dependencies: Collection[str] = (),
    now: datetime | None = None,
) -> Job | None:
    """Atomically take the next runnable job in pop order and lease it to ``worker_id``."""
    jobs = jobs_claim(worker_id=worker_id, limit=1, exclude_dependencies=exclude_dependencies, now=now)
    return jobs[0] if jobs else None


def jobs_claim(
    *,
    worker_id: str,
    limit: int,
    exclude_dependencies: Collection[str] = (),
    now: datetime | None = None,
    gates: dict[str, tuple[breakers.Decision, Any]] | None = None,
) -> list[Job]:
    """Atomically take up to ``limit`` runnable jobs in pop order and lease them to ``worker_id``.

    Jobs whose breaker rejects calls are never handed out: they stay pending, attempts unchanged.
    The breaker states cost one small query (``breakers.claim_gates``). When every breaker admits,
    the claim is ONE statement: an UPDATE of the first ``limit`` rows of the pop-order index,
    returning them. Otherwise it probes the top job of each admitting dependency through the
    per-dependency index, so a large held backlog at the head of the queue is never walked. A
    half-open dependency's highest-priority job is its trial: the trial lease is taken in the
    claim's transaction (``job.breaker_trial`` says so).

    PostgreSQL: ``FOR UPDATE SKIP LOCKED`` lets many workers claim at once without waiting on
    each other. SQLite: the IMMEDIATE transaction holds the write lock, so claims are serial.
    The returned jobs are in pop order. Call inside a transaction to join it (the worker records
    its finished jobs and claims the next ones in one, passing the ``gates`` it read there).
    """
    now = now or timezone.now()
    with transaction.atomic(savepoint=False):  # inside the worker's trip: no savepoint to pay for
        gates = gates if gates is not None else breakers.claim_gates(now=now)
        if all(decision == breakers.Decision.ADMIT for decision, _ in gates.values()):
            jobs = _take_in_pop_order(worker_id, limit, exclude_dependencies, now)
        else:
            jobs = []
            while len(jobs) < limit:
                seq, trial = _claim_by_dependency(gates, exclude_dependencies, worker_id, now)
                if seq is None:
                    break
                [job] = _take("seq = %s", [seq], worker_id, now)
                job.breaker_trial = trial
                jobs.append(job)
                if trial:  # the live trial makes its dependency reject: read the gates again
                    gates = breakers.claim_gates(now=now)
        if not jobs:
            return []
        events.events_record([
            (job.seq, EventKind.CLAIMED, worker_id, now,
             {"attempt": job.attempts + 1, **({"breaker_trial": True} if job.breaker_trial else {})})
            for job in jobs
        ])
        notify.dashboard_changed_on_commit()
    for job in jobs:
        # DEBUG: the outcome's line (INFO) carries the attempt and worker, the audit trail every
        # claim; two lines per job cost a busy worker a fifth of its throughput (make bench: drain).
        extra = {"breaker_trial": True} if job.breaker_trial else {}
        logs.job_transition("claimed", job, attempt=job.attempts + 1, worker=worker_id, level=logging.DEBUG, **extra)
    return jobs


POP_ORDER_INDEX = "job_pop_order"
POP_ORDER_BY_DEPENDENCY_INDEX = "job_pop_order_by_dependency"
PENDING_RUNNABLE = f"status = '{JobStatus.PENDING.value}' AND run_after <= %s"


def _take_in_pop_order(worker_id: str, limit: int, exclude_dependencies: Collection[str], now: datetime) -> list[Job]:
    """Claim the first ``limit`` runnable jobs of the pop-order index in one UPDATE … RETURNING.

    SQLite only uses a partial index when the query repeats its WHERE term literally, and even
    then its planner prefers ``job_status_finished`` plus a sort of every pending row: O(queue)
    per claim, 170 ms at 100 k pending (``make bench``). ``INDEXED BY`` makes each claim one
    index walk at any size, and fails loudly if the index is ever dropped. PostgreSQL picks the
    index by itself (tests/jobs/test_claim_concurrency.py checks the plan); ``= ANY(ARRAY(…))``
    keeps the outer UPDATE a primary-key lookup whatever the statistics say.
    """
    where, params = PENDING_RUNNABLE, [connection.ops.adapt_datetimefield_value(now)]
    if exclude_dependencies:
        where += f" AND dependency NOT IN ({', '.join(['%s'] * len(exclude_dependencies))})"
        params += list(exclude_dependencies)
    table = Job._meta.db_table
    if connection.vendor == "sqlite":
        select = f"SELECT seq FROM {table} INDEXED BY {POP_ORDER_INDEX} WHERE {where} ORDER BY priority DESC, seq LIMIT %s"
        return _take(f"seq IN ({select})", [*params, limit], worker_id, now)
    select = f"SELECT seq FROM {table} WHERE {where} ORDER BY priority DESC, seq LIMIT %s"
    if connection.features.has_select_for_update_skip_locked:
        select += " FOR UPDATE SKIP LOCKED"
    return _take(f"seq = ANY(ARRAY({select}))", [*params, limit], worker_id, now)


# What a claim hands the worker; the rest of the row stays deferred (loaded on access).
_CLAIMED = ("seq", "uuid", "kind", "payload", "dependency", "priority", "attempts", "max_attempts")
_FIELD_ORDER = [f.attname for f in Job._meta.concrete_fields]


def _take(condition: str, params: list[Any], worker_id: str, now: datetime) -> list[Job]:
    """Mark the pending jobs matching ``condition`` running under a lease; return them in pop order.

    One UPDATE … RETURNING, and the jobs are built from its rows directly: through the ORM
    (``raw()``, converters for every column) this was a third of a drained job's cost.
    """
    adapt = connection.ops.adapt_datetimefield_value
    expires = now + timedelta(seconds=conf.get("LEASE_SECONDS"))
    # SQLite would answer "status = 'pending'" from an index on status, i.e. walk every pending
    # row and test it against the list (1.2 ms per claim at 20 k pending); the unary + keeps the
    # check but takes the index away, so the rows are found by primary key.
    status = "+status" if connection.vendor == "sqlite" else "status"
    sql = (
        f"UPDATE {Job._meta.db_table} SET status = '{JobStatus.RUNNING.value}', lease_owner = %s, "  # noqa: S608 - constants
        f"lease_expires_at = %s, started_at = %s, updated_at = %s "
        f"WHERE {condition} AND {status} = '{JobStatus.PENDING.value}' RETURNING {', '.join(_CLAIMED)}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [worker_id, adapt(expires), adapt(now), adapt(now), *params])
        rows = cursor.fetchall()
    payload = Job._meta.get_field("payload")
    leased = {"status": JobStatus.RUNNING, "lease_owner": worker_id, "lease_expires_at": expires,
              "started_at": now, "updated_at": now}
    jobs = []
    for row in rows:
        values = dict(zip(_CLAIMED, row, strict=True), **leased)
        values["uuid"] = values["uuid"] if isinstance(values["uuid"], UUID) else UUID(values["uuid"])
        values["payload"] = payload.from_db_value(values["payload"], None, connection)
        # from_db wants the loaded values in field order; the fields left out stay deferred.
        job = Job.from_db(connection.alias, list(values), [values[n] for n in _FIELD_ORDER if n in values])
        job.breaker_trial = False
        jobs.append(job)
    jobs.sort(key=lambda job: (-job.priority, job.seq))
    return jobs


def _tops(names: list[str], now: datetime) -> list[tuple[int, int, str]]:
    """(priority, seq, dependency) of each dependency's next job: one query, one short index probe
    per dependency (``job_pop_order_by_dependency``), however many jobs are held elsewhere."""
    if not names:
        return []
    # SQLite names the index, as the claim does: its planner would sort the pending rows.
    index = f"INDEXED BY {POP_ORDER_BY_DEPENDENCY_INDEX} " if connection.vendor == "sqlite" else ""
    probe = (
        f"SELECT priority, seq, dependency FROM {Job._meta.db_table} {index}"  # noqa: S608 - constants
        f"WHERE {PENDING_RUNNABLE} AND dependency = %s ORDER BY priority DESC, seq LIMIT 1"
    )
    parts = [f"SELECT * FROM ({probe}) AS top{i}" for i in range(len(names))]  # noqa: S608
    now_param = connection.ops.adapt_datetimefield_value(now)
    params = [value for name in names for value in (now_param, name)]
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(parts), params)
        return cursor.fetchall()


def _lockable(qs: QuerySet[Job]) -> QuerySet[Job]:
    """``qs`` locked for this transaction where the database can skip rows others hold."""
    if connection.features.has_select_for_update_skip_locked:
        return qs.select_for_update(skip_locked=True)
    return qs


def _claim_by_dependency(
    gates: dict[str, tuple[breakers.Decision, Any]],
    exclude_dependencies: Collection[str],
    worker_id: str,
    now: datetime,
) -> tuple[int | None, bool]:
    """(seq, is the trial) of the next job in pop order across the dependencies whose breaker
    admits a call (or one trial); the row is locked on PostgreSQL."""
    open_to = {
        name: decision for name, (decision, _) in gates.items()
        if decision != breakers.Decision.REJECT and name not in exclude_dependencies
    }
    tops = [(-priority, seq, name, open_to[name]) for priority, seq, name in _tops(sorted(open_to), now)]
    for _, seq, name, decision in sorted(tops):
        if connection.vendor == "sqlite":
            found = seq  # the IMMEDIATE transaction holds the write lock: the probe's answer stands
        else:  # another worker may hold or have taken it: its next unlocked job instead
            candidates = pop_order().filter(dependency=name, run_after__lte=now)
            if decision == breakers.Decision.TRIAL:
                # The trial is the dependency's highest-priority job, nothing else.
                candidates = candidates.filter(seq=seq)
            found = _lockable(candidates).values_list("seq", flat=True).first()
        if found is None:
            continue  # taken by a concurrent claim
        if decision == breakers.Decision.TRIAL and not breakers.trial_acquire(
            name=name, owner=worker_id, job_seq=found, now=now
        ):
            continue  # another process started the trial first
        return found, decision == breakers.Decision.TRIAL
    return None, False


def _owned(job: Job, worker_id: str) -> QuerySet[Job]:
    return Job.objects.filter(seq=job.seq, status=JobStatus.RUNNING, lease_owner=worker_id)


def jobs_renew_leases(*, seqs: Collection[int], worker_id: str, now: datetime | None = None) -> set[int]:
    """Push the leases of ``seqs`` forward (one UPDATE). Returns the seqs whose lease was lost
    (it expired and the job was reclaimed, or it finished elsewhere)."""
    if not seqs:
        return set()
    now = now or timezone.now()
    expires = now + timedelta(seconds=conf.get("LEASE_SECONDS"))
    owned = Job.objects.filter(seq__in=list(seqs), status=JobStatus.RUNNING, lease_owner=worker_id)
    if owned.update(lease_expires_at=expires) == len(seqs):
        return set()
    return set(seqs) - set(owned.values_list("seq", flat=True))


@dataclass(frozen=True)
class Success:
    """A finished attempt that returned ``result``."""

    job: Job
    result: Any
    duration: float | None
    finished_at: datetime


_SUCCEED = (
    f"UPDATE {Job._meta.db_table} SET status = '{JobStatus.SUCCEEDED.value}', attempts = attempts + 1, "  # noqa: S608 - constants
    "result = %s, finished_at = %s, lease_owner = '', lease_expires_at = NULL, updated_at = %s "
    f"WHERE seq = %s AND status = '{JobStatus.RUNNING.value}' AND lease_owner = %s"
)


def jobs_succeed(*, successes: list[Success], worker_id: str) -> list[Success]:
    """Record successes, each with its event. Returns those NOT written because this worker no
    longer holds their lease.

    The worker's hot path, so three statements whatever the count: lock the rows still leased to
    ``worker_id``, one ``executemany`` UPDATE, one bulk INSERT of the events.
    """
    if not successes:
        return []
    with transaction.atomic(savepoint=False):
        # Wait for these locks, never skip them: another worker's claim can hold one of our
        # running rows for a moment (PostgreSQL keeps the lock it took to re-check a row that
        # stopped matching its pending filter), and skipping would discard a valid outcome.
        owned = _still_leased([s.job.seq for s in successes], worker_id)
        kept = [s for s in successes if s.job.seq in owned]
        if kept:
            adapt = connection.ops.adapt_datetimefield_value
            result_field = Job._meta.get_field("result")
            with connection.cursor() as cursor:
                cursor.executemany(_SUCCEED, [
                    # Results come from handlers and downstreams: PostgreSQL refuses NUL, lone surrogates.
                    (result_field.get_db_prep_value(validation.storable_json(s.result), connection), at, at,
                     s.job.seq, worker_id)
                    for s in kept
                    for at in [adapt(s.finished_at)]
                ])
            events.events_record([(s.job.seq, EventKind.SUCCEEDED, worker_id, s.finished_at, {"duration": s.duration})
                           for s in kept])
            notify.dashboard_changed_on_commit()
    for s in kept:
        logs.job_transition("succeeded", s.job, attempt=s.job.attempts + 1, duration=s.duration, worker=worker_id)
    return [s for s in successes if s.job.seq not in owned]


def _still_leased(seqs: list[int], worker_id: str) -> set[int]:
    """Which of ``seqs`` ``worker_id`` still leases, locked until the transaction ends."""
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT seq FROM {Job._meta.db_table} WHERE seq IN ({', '.join(['%s'] * len(seqs))}) "  # noqa: S608
            f"AND status = '{JobStatus.RUNNING.value}' AND lease_owner = %s{lock}",
            [*seqs, worker_id],
        )
        return {row[0] for row in cursor.fetchall()}


def job_succeed(*, job: Job, worker_id: str, result: Any, duration: float | None = None) -> bool:
    """Record success. False (and nothing written) if this worker no longer holds the lease."""
    success = Success(job=job, result=result, duration=duration, finished_at=timezone.now())
    return not jobs_succeed(successes=[success], worker_id=worker_id)


def _failure_changes(job: Job, *, error: str, retryable: bool, retry_after: float | None, now: datetime) -> tuple[dict, str, dict]:
    """The row changes and event for a failed attempt number ``job.attempts + 1``."""
    attempt = job.attempts + 1
    error = validation.storable_text(error[:MAX_ERROR_CHARS])
    common = {"attempts": attempt, "last_error": error, "lease_owner": "", "lease_expires_at": None, "updated_at": now}
    if retryable and attempt < job.max_attempts:
        delay = retry.backoff_seconds(
            attempt, base=conf.get("RETRY_BACKOFF_BASE"), cap=conf.get("RETRY_BACKOFF_MAX")
        )
        if retry_after is not None:
            delay = max(delay, retry_after)
        run_after = now + timedelta(seconds=delay)
        changes = {**common, "status": JobStatus.PENDING, "run_after": run_after}
        details = {"attempt": attempt, "error": error, "delay": round(delay, 3), "run_after": run_after.isoformat()}
        return changes, EventKind.RETRY_SCHEDULED, details
    changes = {**common, "status": JobStatus.FAILED, "finished_at": now}
    return changes, EventKind.FAILED, {"attempt": attempt, "error": error, "retryable": retryable}


def job_fail(
    *,
    job: Job,
    worker_id: str,
    error: str,
    retryable: bool,
    retry_after: float | None = None,
    duration: float | None = None,
) -> bool:
    """Record a failed attempt: back to pending with backoff, or failed at the attempt limit."""
    now = timezone.now()
    with transaction.atomic():
        fresh = _owned(job, worker_id).select_for_update().first()
        if fresh is None:
            return False
        changes, kind, details = _failure_changes(
            fresh, error=error, retryable=retryable, retry_after=retry_after, now=now
        )
        _owned(job, worker_id).update(**changes)
        events.event_record(job=job, kind=kind, actor=worker_id, duration=duration, **details)
        notify.dashboard_changed_on_commit()
        if changes["status"] == JobStatus.PENDING:
            notify.wake_workers_on_commit()
    logs.job_transition(
        kind, fresh, attempt=details["attempt"], duration=duration, worker=worker_id,
        error=details["error"][:LOG_ERROR_CHARS], delay=details.get("delay"), retryable=retryable,
        level=logging.WARNING,
    )
    return True


def job_release(
    *, job: Job, worker_id: str, reason: str, held: dict[str, Any] | None = None, held_since: datetime | None = None
) -> bool:
    """Hand a claimed job back to pending without spending an attempt (shutdown, open breaker).

    ``held`` (the breaker's state) also records a ``held`` event — unless the job already has one
    since ``held_since`` (the breaker stopped admitting then): one per open period.
    """
    now = timezone.now()
    with transaction.atomic():
        updated = _owned(job, worker_id).update(
            status=JobStatus.PENDING, lease_owner="", lease_expires_at=None, started_at=None, updated_at=now
        )
        if updated:
            events.event_record(job=job, kind=EventKind.RELEASED, actor=worker_id, reason=reason)
            if held is not None:
                seen = held_since is not None and JobEvent.objects.filter(
                    job=job, kind=EventKind.HELD, at__gte=held_since
                ).exists()
                if not seen:
                    events.event_record(job=job, kind=EventKind.HELD, actor=worker_id, **held)
            else:
                notify.wake_workers_on_commit()
            notify.dashboard_changed_on_commit()
    if updated:
        logs.job_transition("released", job, worker=worker_id, reason=reason)
    return bool(updated)


def jobs_expire_leases(*, actor: str, now: datetime | None = None, limit: int = 100) -> int:
    """Return running jobs whose lease has expired (their worker died) to pending, counting the attempt."""
    now = now or timezone.now()
    expired = 0
    expired_jobs = []
    with transaction.atomic():
        stale = _lockable(
            Job.objects.filter(status=JobStatus.RUNNING, lease_expires_at__lt=now).order_by("lease_expires_at")
        )
        for job in stale[:limit]:
            previous_owner = job.lease_owner
            changes, kind, details = _failure_changes(
                job, error=f"lease expired (worker {previous_owner} stopped renewing)", retryable=True, retry_after=None, now=now
            )
            Job.objects.filter(seq=job.seq, status=JobStatus.RUNNING, lease_owner=previous_owner).update(**changes)
            events.event_record(job=job, kind=EventKind.LEASE_EXPIRED, actor=actor, previous_owner=previous_owner, outcome=kind, **details)
            expired_jobs.append((job, previous_owner, kind, details["attempt"]))
            expired += 1
        if expired:
            notify.wake_workers_on_commit()
            notify.dashboard_changed_on_commit()
    for job, previous_owner, outcome, attempt in expired_jobs:
        logs.job_transition(
            "lease_expired", job, attempt=attempt, previous_owner=previous_owner, outcome=str(outcome),
            level=logging.WARNING,
        )
    return expired
