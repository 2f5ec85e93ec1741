"""The queue around a breaker: held jobs stay pending, one trial, pop order, held events once."""

from __future__ import annotations

import pytest

from jobs import breakers, queue
from jobs.breakers import Decision, Outcome
from jobs.exceptions import CircuitOpen
from jobs.models import EventKind, Job, JobEvent, JobStatus
from tests.jobs.breakers.svc import SVC, at, claim, claim_with_trial, record, row, submit, trip

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("svc_config")]


def test_held_jobs_stay_pending_while_other_dependencies_flow():
    held = [submit(SVC, priority=50) for _ in range(3)]
    other = [submit("other", priority=0) for _ in range(2)]
    trip(now=0)
    assert breakers.claim_gates(now=at(1))[SVC][0] == Decision.REJECT
    claimed = [claim(now=1), claim(now=1), claim(now=1)]
    assert [j.seq if j else None for j in claimed] == [other[0].seq, other[1].seq, None]
    for job in held:
        job.refresh_from_db()
        assert job.status == JobStatus.PENDING and job.attempts == 0
        assert JobEvent.objects.filter(job=job, kind=EventKind.HELD).count() == 1
    # Another failure (a late call) and a reopen are the same open period: no second held event.
    got = claim_with_trial(now=10)
    trial = got.job
    assert trial.seq == held[0].seq and got.trial
    record(Outcome.FAILURE, now=10, admission=breakers.Admission(dependency=SVC, owner="w1", trial=True, job_seq=trial.seq))
    assert JobEvent.objects.filter(kind=EventKind.HELD).count() == 3


def test_half_open_hands_out_exactly_one_trial_its_top_job_then_drains_in_pop_order():
    jobs = [submit(SVC, priority=p) for p in (1, 5, 3)]
    trip(now=0)
    got = claim_with_trial("w1", now=10)
    trial = got.job
    assert trial.seq == jobs[1].seq and got.trial
    assert claim("w2", now=10) is None, "one trial at a time"
    assert row().trial_job == trial.seq
    admission = breakers.breaker_admit(name=SVC, owner="w1", job_seq=trial.seq, now=at(10))
    assert admission.trial
    record(Outcome.SUCCESS, now=11, admission=admission)
    assert [claim("w2", now=12).seq, claim("w2", now=12).seq] == [jobs[2].seq, jobs[0].seq]


def test_a_job_claimed_just_before_the_trip_is_rejected_at_admission():
    job = submit(SVC)
    claimed = claim(now=0)
    assert claimed.seq == job.seq
    trip(now=0)
    with pytest.raises(CircuitOpen):
        breakers.breaker_admit(name=SVC, owner="w1", job_seq=job.seq, now=at(1))
    assert queue.job_release(job=claimed, worker_id="w1", reason="breaker open")
    job.refresh_from_db()
    assert job.status == JobStatus.PENDING and job.attempts == 0
    assert list(job.events.values_list("kind", flat=True))[-1] == EventKind.RELEASED


def test_forced_open_holds_and_release_drains():
    job = submit(SVC)
    breakers.breaker_force_open(name=SVC, actor="user:op", reason="maintenance")
    assert claim(now=1) is None
    assert JobEvent.objects.filter(job=job, kind=EventKind.HELD).count() == 1
    breakers.breaker_release(name=SVC, actor="user:op")
    assert claim(now=2).seq == job.seq


def test_a_job_submitted_while_open_is_held_once():
    trip(now=0)
    job = submit(SVC)
    assert JobEvent.objects.filter(job=job, kind=EventKind.HELD).count() == 1
    fresh = submit("other")
    assert not JobEvent.objects.filter(job=fresh, kind=EventKind.HELD).exists()


def test_a_job_held_at_the_trip_and_released_by_a_racing_claim_is_held_once():
    """PostgreSQL race: a claim that read the breaker before the trip committed takes a job the
    trip already marked held; the worker's admission rejects it and hands it back."""
    job = submit(SVC)
    trip(now=0)
    assert JobEvent.objects.filter(job=job, kind=EventKind.HELD).count() == 1
    Job.objects.filter(seq=job.seq).update(status=JobStatus.RUNNING, lease_owner="w1")
    with pytest.raises(CircuitOpen) as info:
        breakers.breaker_admit(name=SVC, owner="w1", job_seq=job.seq, now=at(1))
    assert info.value.held_since == at(0)
    queue.job_release(job=job, worker_id="w1", reason="open")
    assert JobEvent.objects.filter(job=job, kind=EventKind.HELD).count() == 1


def test_other_dependencies_keep_pop_order_around_an_open_breaker():
    held = submit(SVC, priority=50)
    a = submit("other", priority=5)
    b = submit("local", priority=3)
    c = submit("other", priority=1)
    d = submit("local", priority=3)
    trip(now=0)
    assert [claim(now=1).seq for _ in range(4)] == [a.seq, b.seq, d.seq, c.seq]
    assert claim(now=1) is None
    held.refresh_from_db()
    assert held.status == JobStatus.PENDING


def test_the_trial_waits_its_turn_in_pop_order():
    trial_job = submit(SVC, priority=2)
    first = submit("other", priority=5)
    trip(now=0)
    got = claim_with_trial(now=10)
    assert got.job.seq == first.seq and not got.trial
    assert row().state == "open", "no trial lease taken for a job that was not claimed"
    got = claim_with_trial(now=10)
    assert got.job.seq == trial_job.seq and got.trial
