"""The worker's primitives: claim the next job in pop order, renew its lease, record its outcome.

Every function is one short transaction that writes its JobEvent beside the change. Outcomes are
conditional UPDATEs on (status=running, lease_owner=worker): a worker that lost its lease can
never overwrite what another worker recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from jobs import breakers, conf, logs, notify, retry, validation
from jobs.models import EventKind, Job, JobEvent, JobStatus
from jobs.services import event_record

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
    """Atomically take the next runnable job in pop order and lease it to ``worker_id``.

    Jobs whose breaker rejects calls are never handed out: they stay pending, attempts unchanged.
    The breaker states cost one small query (``breakers.claim_gates``). When every breaker admits,
    the claim is one walk of the pop-order index. Otherwise it probes the top job of each
    admitting dependency through the per-dependency index, so a large held backlog at the head of
    the queue is never walked. A half-open dependency's highest-priority job is its trial: the
    trial lease is taken in the claim's transaction (``job.breaker_trial`` says so).

    PostgreSQL: ``FOR UPDATE SKIP LOCKED`` lets many workers claim at once without waiting on
    each other. SQLite: the IMMEDIATE transaction holds the write lock, so claims are serial.
    """
    now = now or timezone.now()
    lease = timedelta(seconds=conf.get("LEASE_SECONDS"))
    with transaction.atomic():
        gates = breakers.claim_gates(now=now)
        if all(decision == breakers.Decision.ADMIT for decision, _ in gates.values()):
            job, trial = _claim_in_pop_order(exclude_dependencies, now), False
        else:
            job, trial = _claim_by_dependency(gates, exclude_dependencies, worker_id, now)
        if job is None:
            return None
        job.status = JobStatus.RUNNING
        job.lease_owner = worker_id
        job.lease_expires_at = now + lease
        job.started_at = now
        job.save(update_fields=["status", "lease_owner", "lease_expires_at", "started_at", "updated_at"])
        extra = {"breaker_trial": True} if trial else {}
        event_record(job=job, kind=EventKind.CLAIMED, actor=worker_id, attempt=job.attempts + 1, **extra)
        notify.dashboard_changed_on_commit()
    job.breaker_trial = trial
    logs.job_transition("claimed", job, attempt=job.attempts + 1, worker=worker_id, **extra)
    return job


def _lockable(qs: QuerySet[Job]) -> QuerySet[Job]:
    if connection.features.has_select_for_update_skip_locked:
        return qs.select_for_update(skip_locked=True)
    return qs


def _claim_in_pop_order(exclude_dependencies: Collection[str], now: datetime) -> Job | None:
    if connection.vendor == "sqlite":
        return _sqlite_next(now=now, exclude_dependencies=exclude_dependencies)
    candidates = pop_order().filter(run_after__lte=now)
    if exclude_dependencies:
        candidates = candidates.exclude(dependency__in=list(exclude_dependencies))
    return _lockable(candidates).first()


POP_ORDER_INDEX = "job_pop_order"


def _sqlite_next(*, now: datetime, exclude_dependencies: Collection[str]) -> Job | None:
    """The next runnable job on SQLite, read through the partial pop-order index by name.

    SQLite only uses a partial index when the query repeats its WHERE term literally (the ORM
    sends ``status = %s``), and even then its planner prefers ``job_status_finished`` plus a
    sort of every pending row: O(queue) per claim, 170 ms at 100 k pending (``make bench``).
    ``INDEXED BY`` makes each claim one index step at any size, and fails loudly if the index
    is ever dropped. The caller's IMMEDIATE transaction already holds the write lock.
    """
    where = [f"status = '{JobStatus.PENDING.value}'", "run_after <= %s"]
    params: list[Any] = [connection.ops.adapt_datetimefield_value(now)]
    if exclude_dependencies:
        where.append(f"dependency NOT IN ({', '.join(['%s'] * len(exclude_dependencies))})")
        params += list(exclude_dependencies)
    query = (
        f"SELECT * FROM {Job._meta.db_table} INDEXED BY {POP_ORDER_INDEX} "  # noqa: S608 - constants
        f"WHERE {' AND '.join(where)} ORDER BY priority DESC, seq LIMIT 1"
    )
    return next(iter(Job.objects.raw(query, params)), None)


def _tops(names: list[str], now: datetime) -> list[tuple[int, int, str]]:
    """(priority, seq, dependency) of each dependency's next job: one query, one short index probe
    per dependency (``job_pop_order_by_dependency``), however many jobs are held elsewhere."""
    if not names:
        return []
    parts, params = [], []
    for i, name in enumerate(names):
        probe = pop_order().filter(dependency=name, run_after__lte=now).values_list("priority", "seq", "dependency")[:1]
        sql, probe_params = probe.query.sql_with_params()
        parts.append(f"SELECT * FROM ({sql}) AS top{i}")  # noqa: S608 - our own compiled SQL
        params.extend(probe_params)
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(parts), params)
        return cursor.fetchall()


def _claim_by_dependency(
    gates: dict[str, tuple[breakers.Decision, Any]],
    exclude_dependencies: Collection[str],
    worker_id: str,
    now: datetime,
) -> tuple[Job | None, bool]:
    """Pop order across the dependencies whose breaker admits a call (or one trial)."""
    open_to = {
        name: decision for name, (decision, _) in gates.items()
        if decision != breakers.Decision.REJECT and name not in exclude_dependencies
    }
    tops = [(-priority, seq, name, open_to[name]) for priority, seq, name in _tops(sorted(open_to), now)]
    for _, seq, name, decision in sorted(tops):
        candidates = pop_order().filter(dependency=name, run_after__lte=now)
        if decision == breakers.Decision.TRIAL:
            # The trial is the dependency's highest-priority job, nothing else.
            candidates = candidates.filter(seq=seq)
        job = _lockable(candidates).first()
        if job is None:
            continue  # taken by a concurrent claim
        if decision == breakers.Decision.TRIAL and not breakers.trial_acquire(
            name=name, owner=worker_id, job_seq=job.seq, now=now
        ):
            continue  # another process started the trial first
        return job, decision == breakers.Decision.TRIAL
    return None, False


def _owned(job: Job, worker_id: str) -> QuerySet[Job]:
    return Job.objects.filter(seq=job.seq, status=JobStatus.RUNNING, lease_owner=worker_id)


def job_renew_lease(*, job: Job, worker_id: str, now: datetime | None = None) -> bool:
    """Push the lease forward. False means the lease was lost (expired and reclaimed)."""
    now = now or timezone.now()
    expires = now + timedelta(seconds=conf.get("LEASE_SECONDS"))
    return bool(_owned(job, worker_id).update(lease_expires_at=expires))


def job_succeed(*, job: Job, worker_id: str, result: Any, duration: float | None = None) -> bool:
    """Record success. False (and nothing written) if this worker no longer holds the lease."""
    now = timezone.now()
    with transaction.atomic():
        updated = _owned(job, worker_id).update(
            status=JobStatus.SUCCEEDED,
            attempts=F("attempts") + 1,
            # Outcomes come from handlers and downstreams: PostgreSQL refuses NUL, UTF-8 lone surrogates.
            result=validation.storable_json(result),
            finished_at=now,
            lease_owner="",
            lease_expires_at=None,
            updated_at=now,
        )
        if updated:
            event_record(job=job, kind=EventKind.SUCCEEDED, actor=worker_id, duration=duration)
            notify.dashboard_changed_on_commit()
    if updated:
        logs.job_transition("succeeded", job, attempt=job.attempts + 1, duration=duration, worker=worker_id)
    return bool(updated)


def job_succeed_and_claim_next(
    *,
    job: Job,
    worker_id: str,
    result: Any,
    duration: float | None = None,
    exclude_dependencies: Collection[str] = (),
) -> tuple[bool, Job | None]:
    """``job_succeed`` then ``job_claim_next`` in ONE transaction: (kept, next job or None).

    A busy worker pays one commit per job instead of two — on PostgreSQL each commit is a WAL
    flush, the physical limit of a queue — and one trip to the database thread instead of two.
    Each change still writes its own event (the inner blocks are savepoints); the claim goes
    through the breakers exactly like ``job_claim_next``. Their log lines are written before
    the outer commit.
    """
    with transaction.atomic():
        kept = job_succeed(job=job, worker_id=worker_id, result=result, duration=duration)
        following = job_claim_next(worker_id=worker_id, exclude_dependencies=exclude_dependencies)
    return kept, following


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
        event_record(job=job, kind=kind, actor=worker_id, duration=duration, **details)
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
            event_record(job=job, kind=EventKind.RELEASED, actor=worker_id, reason=reason)
            if held is not None:
                seen = held_since is not None and JobEvent.objects.filter(
                    job=job, kind=EventKind.HELD, at__gte=held_since
                ).exists()
                if not seen:
                    event_record(job=job, kind=EventKind.HELD, actor=worker_id, **held)
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
        stale = Job.objects.filter(status=JobStatus.RUNNING, lease_expires_at__lt=now).order_by("lease_expires_at")
        if connection.features.has_select_for_update_skip_locked:
            stale = stale.select_for_update(skip_locked=True)
        for job in stale[:limit]:
            previous_owner = job.lease_owner
            changes, kind, details = _failure_changes(
                job, error=f"lease expired (worker {previous_owner} stopped renewing)", retryable=True, retry_after=None, now=now
            )
            Job.objects.filter(seq=job.seq, status=JobStatus.RUNNING, lease_owner=previous_owner).update(**changes)
            event_record(job=job, kind=EventKind.LEASE_EXPIRED, actor=actor, previous_owner=previous_owner, outcome=kind, **details)
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
