"""jobs.queue.leases: renewal, the expiry sweep, and a worker whose lease was lost."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs import queue
from jobs.models import EventKind, Job, JobEvent, JobStatus
from tests.jobs.queue.helpers import LEASE, claim, fresh, last_event, submit

pytestmark = pytest.mark.django_db



# --- leases ---------------------------------------------------------------------------------------


def test_renew_pushes_the_lease_forward():
    submit()
    start = timezone.now()
    job = claim("w1", now=start)
    later = start + timedelta(seconds=45)
    assert queue.jobs_renew_leases(seqs=[job.seq], worker_id="w1", now=later) == set()
    assert fresh(job).lease_expires_at == later + timedelta(seconds=LEASE)
    assert queue.jobs_renew_leases(seqs=[job.seq], worker_id="w2", now=later + timedelta(seconds=1)) == {job.seq}
    assert fresh(job).lease_expires_at == later + timedelta(seconds=LEASE)


def test_renew_names_exactly_the_leases_that_were_lost():
    for _ in range(3):
        submit()
    start = timezone.now()
    mine = [claim("w1", now=start) for _ in range(2)]
    theirs = claim("w2", now=start)
    later = start + timedelta(seconds=10)
    lost = queue.jobs_renew_leases(seqs=[j.seq for j in (*mine, theirs)], worker_id="w1", now=later)
    assert lost == {theirs.seq}
    assert [fresh(j).lease_expires_at for j in mine] == [later + timedelta(seconds=LEASE)] * 2
    assert fresh(theirs).lease_expires_at == start + timedelta(seconds=LEASE)


def test_expired_lease_returns_the_job_to_pending_and_counts_the_attempt():
    submit(max_attempts=3)
    start = timezone.now()
    job = claim("w1", now=start)
    assert queue.jobs_expire_leases(actor="reaper", now=start + timedelta(seconds=LEASE - 1)) == 0
    assert fresh(job).status == JobStatus.RUNNING
    expired_at = start + timedelta(seconds=LEASE + 1)
    assert queue.jobs_expire_leases(actor="reaper", now=expired_at) == 1
    row = fresh(job)
    assert row.status == JobStatus.PENDING
    assert row.attempts == 1
    assert (row.lease_owner, row.lease_expires_at) == ("", None)
    assert "lease expired" in row.last_error and "w1" in row.last_error
    assert row.run_after > expired_at
    event = last_event(job)
    assert (event.kind, event.actor) == (EventKind.LEASE_EXPIRED, "reaper")
    assert event.details["previous_owner"] == "w1"
    assert event.details["outcome"] == EventKind.RETRY_SCHEDULED
    assert event.details["attempt"] == 1


def test_expired_lease_at_the_limit_fails_the_job():
    submit(max_attempts=1)
    start = timezone.now()
    job = claim("w1", now=start)
    assert queue.jobs_expire_leases(actor="reaper", now=start + timedelta(seconds=LEASE + 1)) == 1
    row = fresh(job)
    assert (row.status, row.attempts) == (JobStatus.FAILED, 1)
    assert row.finished_at is not None
    event = last_event(job)
    assert event.kind == EventKind.LEASE_EXPIRED and event.details["outcome"] == EventKind.FAILED


def test_expire_only_touches_running_jobs_with_expired_leases():
    submit(), submit(), submit()
    start = timezone.now()
    stale = claim("old", now=start)
    live = claim("new", now=start + timedelta(seconds=30))
    pending = Job.objects.get(status=JobStatus.PENDING)
    assert queue.jobs_expire_leases(actor="reaper", now=start + timedelta(seconds=LEASE + 1)) == 1
    assert fresh(stale).status == JobStatus.PENDING
    assert fresh(live).status == JobStatus.RUNNING and fresh(live).lease_owner == "new"
    assert fresh(pending).attempts == 0


def test_expire_respects_its_limit():
    for _ in range(5):
        submit()
    start = timezone.now()
    for _ in range(5):
        claim("w", now=start)
    assert queue.jobs_expire_leases(actor="reaper", now=start + timedelta(hours=1), limit=2) == 2
    assert Job.objects.filter(status=JobStatus.RUNNING).count() == 3


def test_a_worker_that_lost_its_lease_cannot_overwrite_the_outcome():
    submit(max_attempts=5)
    start = timezone.now()
    job_a = claim("a", now=start)
    queue.jobs_expire_leases(actor="reaper", now=start + timedelta(seconds=LEASE + 1))

    # Expired but not yet reclaimed: the old worker's outcome is refused.
    assert queue.job_succeed(job=job_a, worker_id="a", result="late") is False
    assert fresh(job_a).status == JobStatus.PENDING

    job_b = claim("b", now=fresh(job_a).run_after)
    assert job_b.seq == job_a.seq
    snapshot = Job.objects.filter(seq=job_a.seq).values().get()
    n_events = JobEvent.objects.count()

    assert queue.job_succeed(job=job_a, worker_id="a", result="late") is False
    assert queue.job_fail(job=job_a, worker_id="a", error="late", retryable=True) is False
    assert queue.job_fail(job=job_a, worker_id="a", error="late", retryable=False) is False
    assert queue.jobs_renew_leases(seqs=[job_a.seq], worker_id="a") == {job_a.seq}
    assert queue.job_release(job=job_a, worker_id="a", reason="late") is False
    assert Job.objects.filter(seq=job_a.seq).values().get() == snapshot
    assert JobEvent.objects.count() == n_events

    assert queue.job_succeed(job=job_b, worker_id="b", result="on time") is True
    row = fresh(job_a)
    assert (row.status, row.result, row.attempts) == (JobStatus.SUCCEEDED, "on time", 2)
