"""jobs.queue.claim: a claim takes the next pending, due job in pop order under a lease."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from jobs.models import EventKind, Job, JobEvent, JobStatus
from tests.jobs.queue.helpers import LEASE, claim, fresh, last_event, submit

pytestmark = pytest.mark.django_db



# --- claim ------------------------------------------------------------------------------------


def test_claim_leases_the_job_and_records_it():
    job = submit()
    now = timezone.now()
    claimed = claim("worker-a", now=now)
    assert claimed.seq == job.seq
    row = fresh(job)
    assert row.status == JobStatus.RUNNING
    assert row.lease_owner == "worker-a"
    assert row.lease_expires_at == now + timedelta(seconds=LEASE)
    assert row.started_at == now
    assert row.attempts == 0  # an attempt counts when it ends
    event = last_event(job)
    assert (event.kind, event.actor, event.details) == (
        EventKind.CLAIMED,
        "worker-a",
        {"attempt": 1},
    )


@override_settings(RESILIENT={"LEASE_SECONDS": 5})
def test_claim_uses_the_configured_lease():
    submit()
    now = timezone.now()
    job = claim(now=now)
    assert fresh(job).lease_expires_at == now + timedelta(seconds=5)


def test_claim_on_an_empty_queue_returns_none():
    assert claim() is None
    assert JobEvent.objects.count() == 0


@pytest.mark.parametrize("status", [s for s in JobStatus if s != JobStatus.PENDING])
def test_claim_takes_only_pending_jobs(status):
    job = submit()
    Job.objects.filter(seq=job.seq).update(status=status)
    assert claim() is None
    assert fresh(job).status == status


def test_claim_never_takes_the_same_job_twice():
    first, second = submit(), submit()
    assert claim("a").seq == first.seq
    assert claim("b").seq == second.seq
    assert claim("c") is None


def test_claim_skips_jobs_whose_run_after_is_in_the_future():
    later = submit(priority=50)
    ready = submit(priority=0)
    now = timezone.now()
    Job.objects.filter(seq=later.seq).update(run_after=now + timedelta(seconds=30))
    assert claim(now=now).seq == ready.seq
    assert claim(now=now) is None
    assert claim(now=now + timedelta(seconds=30)).seq == later.seq


def test_claim_can_skip_dependencies():
    local = submit(priority=5)
    default = submit(kind="http", payload={"url": "http://127.0.0.1:9/"}, priority=9)
    assert claim(exclude_dependencies={"default"}).seq == local.seq
    assert claim(exclude_dependencies=["local", "default"]) is None
    assert claim().seq == default.seq
