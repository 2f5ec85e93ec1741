"""Record what a worker's finished attempts did: many per transaction, with the next claim.

The runner hands over every attempt that finished since its last trip to the database.
``record_and_claim`` stores them all and claims jobs for the slots they freed in ONE
transaction: one commit (on PostgreSQL a WAL flush, the physical limit of a queue) and one trip
to the database thread per batch instead of two per job (make bench: drain).

Successes, the hot path, are three statements whatever their number (``queue.jobs_succeed``).
A failure goes through
``queue.job_fail`` (backoff, attempt limit), one at a time: it is the rare path. Each outcome
then counts for its dependency's breaker; a success on a healthy closed breaker writes nothing
and is skipped without another read.

Outcomes are conditional on ``status = running AND lease_owner = this worker``: an attempt
whose lease was lost (it expired and another worker took the job) is discarded, never written.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from jobs import breakers, counters, dependencies, dialect, logs, queue
from jobs.exceptions import JobFailure, error_text
from jobs.models import Job

log = logging.getLogger("resilient.worker")


@dataclass(frozen=True)
class Attempt:
    """One finished run of a claimed job: its result, or the exception it raised."""

    job: Job
    result: Any = None
    error: BaseException | None = None
    duration: float = 0.0
    finished_at: datetime = field(default_factory=timezone.now)
    trial: bool = False  # the job was its dependency's half-open trial (``queue.Claim.trial``)


def record_and_claim(*, worker_id: str, finished: list[Attempt], want: int) -> tuple[list[Attempt], list[queue.Claim]]:
    """Record ``finished`` and claim up to ``want`` jobs, in one transaction.

    Returns (the attempts discarded because their lease was lost, the claims in pop order).
    On SQLite the breakers are read once for both (the IMMEDIATE transaction holds the write
    lock, so nothing changes them meanwhile) unless recording an outcome changed one. On
    PostgreSQL the claim reads them again: another worker may have tripped or forced one open
    while this trip waited for a row lock.
    """
    tally = counters.Tally()
    with transaction.atomic():
        gates = breakers.claim_gates(now=timezone.now())
        lost, changed = _record(worker_id, finished, gates, tally)
        reuse = not changed and dialect.current().serial_writes
        claimed = queue.claims_take(worker_id=worker_id, limit=want, gates=gates if reuse else None) if want > 0 else []
        # Last: the counter rows are shared with other workers' trips, so their locks are held
        # only from here to the commit.
        tally.flush(writer=worker_id)
    _log_discarded(lost, worker_id)
    return lost, claimed


def record(*, worker_id: str, finished: list[Attempt]) -> list[Attempt]:
    """Store each attempt's outcome, then its dependency's. Returns the discarded attempts."""
    if not finished:
        return []
    tally = counters.Tally()
    with transaction.atomic():
        lost, _ = _record(worker_id, finished, breakers.claim_gates(now=timezone.now()), tally)
        tally.flush(writer=worker_id)
    _log_discarded(lost, worker_id)
    return lost


def _record(
    worker_id: str, finished: list[Attempt], gates: dict, tally: counters.Tally
) -> tuple[list[Attempt], bool]:
    """(the discarded attempts, whether a breaker row was written); the finished jobs go into ``tally``."""
    successes = [
        queue.Success(job=a.job, result=a.result, duration=round(a.duration, 6), finished_at=a.finished_at)
        for a in finished if a.error is None
    ]
    unwritten = {s.job.seq for s in queue.jobs_succeed(successes=successes, worker_id=worker_id, tally=tally)}
    lost = [a for a in finished if a.error is None and a.job.seq in unwritten]
    for attempt in finished:
        if attempt.error is not None and not _fail(attempt, worker_id, tally):
            lost.append(attempt)
    changed = _count_for_breakers(finished, gates, worker_id)
    return lost, changed


def _log_discarded(lost: list[Attempt], worker_id: str) -> None:
    for attempt in lost:
        logs.job_transition(
            "outcome_discarded", attempt.job, attempt=attempt.job.attempts + 1, duration=attempt.duration,
            worker=worker_id, outcome="succeeded" if attempt.error is None else "failed", reason="lease lost",
            level=logging.WARNING,
        )


def record_each(*, worker_id: str, finished: list[Attempt]) -> list[Attempt]:
    """``record`` one attempt per transaction: the fallback when a batch fails, so one outcome the
    database refuses cannot take the others down with it. An attempt that still fails is left to
    its lease (the sweep returns the job); it is logged and counted as discarded."""
    lost = []
    for attempt in finished:
        try:
            lost += record(worker_id=worker_id, finished=[attempt])
        except Exception:
            log.exception("job %s: recording the outcome failed; its lease will expire", attempt.job.short_id)
            lost.append(attempt)
    return lost


def _fail(attempt: Attempt, worker_id: str, tally: counters.Tally) -> bool:
    error = attempt.error
    retryable = error.retryable if isinstance(error, JobFailure) else True
    return queue.job_fail(
        job=attempt.job, worker_id=worker_id, error=error_text(error), retryable=retryable,
        retry_after=getattr(error, "retry_after", None), duration=round(attempt.duration, 6), tally=tally,
    )


def _count_for_breakers(
    finished: list[Attempt], gates: dict[str, tuple[breakers.Decision, Any]], worker_id: str
) -> bool:
    """Each outcome counts for its dependency's breaker (a slow success counts as a failure).
    Returns whether any took the full path (and so may have changed a row).

    ``gates`` holds the rows as this transaction first read them. Once an outcome of a dependency
    was recorded, its row may have changed, so later ones of the same batch take the full path.

    Breaker rows are written in name order (each dependency's outcomes keeping their own order):
    two workers' batches then lock them in the same order and cannot deadlock each other on
    PostgreSQL. A failed write is retried once before it is logged and dropped.
    """
    deps = dependencies.configured()
    recorded: set[str] = set()
    for attempt in sorted(finished, key=lambda a: a.job.dependency):
        name = attempt.job.dependency
        outcome = breakers.classify(attempt.error)
        if outcome == breakers.Outcome.SUCCESS and not attempt.trial and name not in recorded:
            row = gates.get(name, (None, None))[1]
            if breakers.success_changes_nothing(row, deps.get(name), attempt.duration):
                continue
        recorded.add(name)
        admission = breakers.Admission(dependency=name, owner=worker_id, trial=attempt.trial, job_seq=attempt.job.seq)
        for tries_left in (1, 0):
            try:
                with transaction.atomic():  # a breaker hiccup must not lose the jobs' outcomes
                    breakers.breaker_record(
                        name=name, outcome=outcome, admission=admission, duration=attempt.duration,
                        error=error_text(attempt.error) if attempt.error else "", job_id=str(attempt.job.uuid),
                        retry_after=getattr(attempt.error, "retry_after", None), actor=worker_id,
                    )
                break
            except Exception:
                if not tries_left:
                    log.exception("job %s: recording the breaker outcome failed", attempt.job.short_id)
    return bool(recorded)
