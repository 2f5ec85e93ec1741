"""Retention: delete finished jobs (with their events) and breaker events once they are old.

Finished means succeeded, failed or cancelled, never pending or running. Succeeded and
cancelled jobs are kept ``RESILIENT_FINISHED_RETENTION_SECONDS`` after they finished, failed ones
``RESILIENT_FAILED_RETENTION_SECONDS``, breaker events ``RESILIENT_BREAKER_EVENT_RETENTION_SECONDS``
(0: forever). The counters on ``/metrics`` (jobs.counters) do not go down when rows go.

Pruning never holds the claim up: each batch (``RESILIENT_PRUNE_BATCH`` rows) is its own short
transaction, found by an index walk (status, finished_at; the breaker events' primary key), and
on PostgreSQL it skips rows another transaction holds. The workers' housekeeping asks for the
pruning lease every poll (``prune_lease_acquire`` with ``due_after``): a lease row makes at most
one worker prune at a time, and the whole fleet at most once per ``RESILIENT_PRUNE_INTERVAL``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from jobs import conf, dialect, notify
from jobs.models import BreakerEvent, HousekeepingLease, Job, JobEvent, JobStatus

log = logging.getLogger("resilient.retention")

LEASE = "prune"
# A pruning worker renews its lease every batch; one that dies frees it after this long.
LEASE_SECONDS = 60.0
# Between batches: let waiting claims (SQLite's one write lock) and other writers in.
PAUSE_SECONDS = 0.01

# A batch of jobs goes with its history in one transaction (params: the jobs' seqs, each twice).
DELETE_JOB_EVENTS = "DELETE FROM {events} WHERE job_id IN ({seqs})"
DELETE_JOBS = "DELETE FROM {jobs} WHERE seq IN ({seqs})"
DELETE_BREAKER_EVENTS = "DELETE FROM {events} WHERE id IN ({ids})"


@dataclass
class Pruned:
    """Rows deleted (or, for a dry run, that would be): jobs by status, their events, breaker events."""

    jobs: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FINISHED, 0))
    job_events: int = 0
    breaker_events: int = 0

    def add(self, other: Pruned) -> None:
        for status, n in other.jobs.items():
            self.jobs[status] += n
        self.job_events += other.job_events
        self.breaker_events += other.breaker_events

    @property
    def total(self) -> int:
        return sum(self.jobs.values()) + self.job_events + self.breaker_events


FINISHED = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


def retention_cutoffs(*, now: datetime) -> tuple[dict[str, datetime], datetime | None]:
    """({status: delete jobs finished before this}, delete breaker events before this); a
    retention of 0 leaves its rows out (kept forever)."""
    seconds = {
        JobStatus.SUCCEEDED: conf.get("FINISHED_RETENTION_SECONDS"),
        JobStatus.CANCELLED: conf.get("FINISHED_RETENTION_SECONDS"),
        JobStatus.FAILED: conf.get("FAILED_RETENTION_SECONDS"),
    }
    jobs = {status: now - timedelta(seconds=s) for status, s in seconds.items() if s > 0}
    breaker_seconds = conf.get("BREAKER_EVENT_RETENTION_SECONDS")
    return jobs, (now - timedelta(seconds=breaker_seconds) if breaker_seconds > 0 else None)


def prune_count(*, now: datetime | None = None) -> Pruned:
    """What pruning now would delete (for ``manage.py prune --dry-run``); reads only."""
    jobs, breaker_cutoff = retention_cutoffs(now=now or timezone.now())
    counted = Pruned()
    for status, cutoff in jobs.items():
        old = Job.objects.filter(status=status, finished_at__lt=cutoff)
        counted.jobs[status] = old.count()
        counted.job_events += JobEvent.objects.filter(job__in=old.values("seq")).count()
    if breaker_cutoff is not None:
        counted.breaker_events = BreakerEvent.objects.filter(at__lt=breaker_cutoff).count()
    return counted


def prune_batch(*, now: datetime | None = None, batch: int | None = None) -> Pruned:
    """Delete at most ``batch`` old jobs of each final status with their events, and at most
    ``batch`` old breaker events: one short transaction."""
    jobs, breaker_cutoff = retention_cutoffs(now=now or timezone.now())
    batch = batch or conf.get("PRUNE_BATCH")
    pruned = Pruned()
    quote = connection.ops.quote_name
    with transaction.atomic(), connection.cursor() as cursor:
        for status, cutoff in jobs.items():
            # Locked (skipping rows others hold): a retry racing this batch either commits first,
            # and the job is no longer finished, or waits and finds it gone.
            old = dialect.current().lock_skipping(
                Job.objects.filter(status=status, finished_at__lt=cutoff).order_by("finished_at")
            )
            seqs = list(old.values_list("seq", flat=True)[:batch])
            if not seqs:
                continue
            marks = ", ".join(["%s"] * len(seqs))
            cursor.execute(DELETE_JOB_EVENTS.format(events=quote(JobEvent._meta.db_table), seqs=marks), seqs)
            pruned.job_events += cursor.rowcount
            cursor.execute(DELETE_JOBS.format(jobs=quote(Job._meta.db_table), seqs=marks), seqs)
            pruned.jobs[status] += cursor.rowcount
        if breaker_cutoff is not None:
            # The oldest events by id, not a search by time: an index walk of ``batch`` rows even
            # when none is old enough (ids grow with time; a younger one ends the batch).
            oldest = list(BreakerEvent.objects.order_by("id").values_list("id", "at")[:batch])
            ids = []
            for event_id, at in oldest:
                if at >= breaker_cutoff:
                    break
                ids.append(event_id)
            if ids:
                marks = ", ".join(["%s"] * len(ids))
                cursor.execute(DELETE_BREAKER_EVENTS.format(events=quote(BreakerEvent._meta.db_table), ids=marks), ids)
                pruned.breaker_events += cursor.rowcount
        if pruned.total:
            notify.dashboard_changed_on_commit()
    return pruned


def prune(*, now: datetime | None = None, batch: int | None = None, owner: str | None = None,
          stop: Callable[[], bool] | None = None) -> Pruned:
    """Batches until nothing old is left (or ``stop()`` says so: a worker shutting down);
    renews ``owner``'s lease between batches. Returns what was deleted."""
    batch = batch or conf.get("PRUNE_BATCH")
    pruned = Pruned()
    while True:
        step = prune_batch(now=now, batch=batch)
        pruned.add(step)
        if owner is not None:
            _lease_renew(owner)
        full = max(step.jobs.values()) >= batch or step.breaker_events >= batch
        if not full or (stop is not None and stop()):
            break
        time.sleep(PAUSE_SECONDS)
    if pruned.total:
        log.info("pruned %d jobs, %d job events, %d breaker events", sum(pruned.jobs.values()),
                 pruned.job_events, pruned.breaker_events)
    return pruned


def prune_lease_acquire(*, owner: str, now: datetime | None = None, due_after: float = 0.0) -> bool:
    """Take the pruning lease: free (or expired) and, with ``due_after``, not run for that long.
    One conditional UPDATE: two workers asking at once cannot both win."""
    now = now or timezone.now()
    free = Q(expires_at__isnull=True) | Q(expires_at__lt=now) | Q(owner=owner)
    due = Q(last_run_at__isnull=True) | Q(last_run_at__lte=now - timedelta(seconds=due_after))
    with transaction.atomic():
        taken = HousekeepingLease.objects.filter(free & due, name=LEASE).update(
            owner=owner, expires_at=now + timedelta(seconds=LEASE_SECONDS)
        )
    if taken:
        return True
    if HousekeepingLease.objects.filter(name=LEASE).exists():
        return False
    try:
        with transaction.atomic():
            HousekeepingLease.objects.create(name=LEASE, owner=owner, expires_at=now + timedelta(seconds=LEASE_SECONDS))
    except IntegrityError:
        return False  # another worker created it first: it prunes
    return True


def prune_lease_holder(*, now: datetime | None = None) -> str | None:
    """Who prunes now (None: no one)."""
    now = now or timezone.now()
    row = HousekeepingLease.objects.filter(name=LEASE, expires_at__gte=now).exclude(owner="").first()
    return row.owner if row else None


def _lease_renew(owner: str) -> None:
    with transaction.atomic():
        HousekeepingLease.objects.filter(name=LEASE, owner=owner).update(
            expires_at=timezone.now() + timedelta(seconds=LEASE_SECONDS)
        )


def prune_lease_release(*, owner: str) -> None:
    """Free the lease and note when pruning last ran."""
    with transaction.atomic():
        HousekeepingLease.objects.filter(name=LEASE, owner=owner).update(
            owner="", expires_at=None, last_run_at=timezone.now()
        )
