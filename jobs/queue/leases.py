"""Leases of running jobs: the worker pushes its own forward; a sweep returns those nobody renewed."""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from jobs import conf, counters, dialect, events, logs, notify
from jobs.models import CounterMetric, EventKind, Job, JobStatus
from jobs.queue.finish import attempt_failure_changes


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


def jobs_expire_leases(*, actor: str, now: datetime | None = None, limit: int = 100) -> int:
    """Return running jobs whose lease has expired (their worker died) to pending, counting the attempt."""
    now = now or timezone.now()
    expired = 0
    expired_jobs = []
    tally = counters.Tally()
    with transaction.atomic():
        stale = dialect.current().lock_skipping(
            Job.objects.filter(status=JobStatus.RUNNING, lease_expires_at__lt=now).order_by("lease_expires_at")
        )
        for job in stale[:limit]:
            previous_owner = job.lease_owner
            changes, kind, details = attempt_failure_changes(
                job=job, error=f"lease expired (worker {previous_owner} stopped renewing)", retryable=True,
                retry_after=None, now=now,
            )
            Job.objects.filter(seq=job.seq, status=JobStatus.RUNNING, lease_owner=previous_owner).update(**changes)
            events.event_record(job=job, kind=EventKind.LEASE_EXPIRED, actor=actor, previous_owner=previous_owner, outcome=kind, **details)
            expired_jobs.append((job, previous_owner, kind, details["attempt"]))
            expired += 1
            if changes["status"] == JobStatus.FAILED:
                tally.add(CounterMetric.FINISHED, job.dependency, JobStatus.FAILED)
        tally.flush(writer=actor)
        if expired:
            notify.wake_workers_on_commit()
            notify.dashboard_changed_on_commit()
    for job, previous_owner, outcome, attempt in expired_jobs:
        logs.job_transition(
            "lease_expired", job, attempt=attempt, previous_owner=previous_owner, outcome=str(outcome),
            level=logging.WARNING,
        )
    return expired
