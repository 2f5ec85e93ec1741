"""Record a claimed job's outcome: success, failure (retry with backoff or fail), or hand it back.

Outcomes are conditional on (status=running, lease_owner=worker): a worker that lost its lease can
never overwrite what another worker recorded. Each is one short transaction that writes its
JobEvent beside the change.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from jobs import conf, counters, dialect, events, logs, notify, retry, validation
from jobs.models import CounterMetric, EventKind, Job, JobStatus
from jobs.queue import sql

MAX_ERROR_CHARS = 4000
LOG_ERROR_CHARS = 500


@dataclass(frozen=True)
class Success:
    """A finished attempt that returned ``result``."""

    job: Job
    result: Any
    duration: float | None
    finished_at: datetime


def jobs_succeed(*, successes: list[Success], worker_id: str, tally: counters.Tally | None = None) -> list[Success]:
    """Record successes, each with its event. Returns those NOT written because this worker no
    longer holds their lease. Each counts as finished: into ``tally`` when the caller writes the
    counters itself (the worker's trip, once for all its outcomes), else here.

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
                cursor.executemany(sql.SUCCEED, [
                    # Results come from handlers and downstreams: PostgreSQL refuses NUL, lone surrogates.
                    (result_field.get_db_prep_value(validation.storable_json(s.result), connection), at, at,
                     s.job.seq, worker_id)
                    for s in kept
                    for at in [adapt(s.finished_at)]
                ])
            events.events_record([(s.job.seq, EventKind.SUCCEEDED, worker_id, s.finished_at, {"duration": s.duration})
                           for s in kept])
            _count_finished(tally, [s.job.dependency for s in kept], JobStatus.SUCCEEDED, worker_id)
            notify.dashboard_changed_on_commit()
    for s in kept:
        logs.job_transition("succeeded", s.job, attempt=s.job.attempts + 1, duration=s.duration, worker=worker_id)
    return [s for s in successes if s.job.seq not in owned]


def _count_finished(tally: counters.Tally | None, dependencies: list[str], status: str, worker_id: str) -> None:
    own = tally is None
    tally = counters.Tally() if own else tally
    for dependency in dependencies:
        tally.add(CounterMetric.FINISHED, dependency, status)
    if own:
        tally.flush(writer=worker_id)


def _still_leased(seqs: list[int], worker_id: str) -> set[int]:
    """Which of ``seqs`` ``worker_id`` still leases, locked until the transaction ends."""
    with connection.cursor() as cursor:
        cursor.execute(sql.still_leased(dialect.current(), count=len(seqs)), [*seqs, worker_id])
        return {row[0] for row in cursor.fetchall()}


def job_succeed(*, job: Job, worker_id: str, result: Any, duration: float | None = None) -> bool:
    """Record success. False (and nothing written) if this worker no longer holds the lease."""
    success = Success(job=job, result=result, duration=duration, finished_at=timezone.now())
    return not jobs_succeed(successes=[success], worker_id=worker_id)


def attempt_failure_changes(
    *, job: Job, error: str, retryable: bool, retry_after: float | None, now: datetime
) -> tuple[dict, str, dict]:
    """The row changes, event kind and event details for a failed attempt number ``job.attempts + 1``."""
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


def _owned(job: Job, worker_id: str) -> QuerySet[Job]:
    return Job.objects.filter(seq=job.seq, status=JobStatus.RUNNING, lease_owner=worker_id)


def job_fail(
    *,
    job: Job,
    worker_id: str,
    error: str,
    retryable: bool,
    retry_after: float | None = None,
    duration: float | None = None,
    tally: counters.Tally | None = None,
) -> bool:
    """Record a failed attempt: back to pending with backoff, or failed at the attempt limit
    (counted as finished, into ``tally`` if given, as ``jobs_succeed`` does)."""
    now = timezone.now()
    with transaction.atomic():
        fresh = _owned(job, worker_id).select_for_update().first()
        if fresh is None:
            return False
        changes, kind, details = attempt_failure_changes(
            job=fresh, error=error, retryable=retryable, retry_after=retry_after, now=now
        )
        _owned(job, worker_id).update(**changes)
        events.event_record(job=job, kind=kind, actor=worker_id, duration=duration, **details)
        notify.dashboard_changed_on_commit()
        if changes["status"] == JobStatus.PENDING:
            notify.wake_workers_on_commit()
        else:
            _count_finished(tally, [fresh.dependency], JobStatus.FAILED, worker_id)
    logs.job_transition(
        kind, fresh, attempt=details["attempt"], duration=duration, worker=worker_id,
        error=details["error"][:LOG_ERROR_CHARS], delay=details.get("delay"), retryable=retryable,
        level=logging.WARNING,
    )
    return True


def job_release(*, job: Job, worker_id: str, reason: str) -> bool:
    """Hand a claimed job back to pending without spending an attempt (shutdown, open breaker)."""
    now = timezone.now()
    with transaction.atomic():
        updated = _owned(job, worker_id).update(
            status=JobStatus.PENDING, lease_owner="", lease_expires_at=None, started_at=None, updated_at=now
        )
        if updated:
            events.event_record(job=job, kind=EventKind.RELEASED, actor=worker_id, reason=reason)
            notify.wake_workers_on_commit()
            notify.dashboard_changed_on_commit()
    if updated:
        logs.job_transition("released", job, worker=worker_id, reason=reason)
    return bool(updated)
