"""The breaker state machine, transition by transition, with an injected clock (no sleeping)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.test import override_settings

from jobs import breakers, dependencies, queue, services
from jobs.breakers import Decision, Outcome
from jobs.exceptions import CircuitOpen, DependencyFailure, InvalidInput, PermanentJobFailure
from jobs.models import Breaker, BreakerEvent, BreakerEventKind, EventKind, Job, JobEvent, JobStatus

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
SVC = "svc"
CONFIG = {
    "DEPENDENCIES": {
        SVC: {"failure_threshold": 3, "reset_timeout": 10, "max_reset_timeout": 40, "slow_call_seconds": 1.0},
        "other": {},
    },
    "LEASE_SECONDS": 60,
}

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("svc_config")]


@pytest.fixture
def svc_config():
    with override_settings(RESILIENT=CONFIG):
        yield


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def row(name: str = SVC) -> Breaker:
    return breakers.breaker_row(name)


def admit(owner: str = "w1", now: float = 0, job_seq: int | None = None) -> breakers.Admission:
    return breakers.breaker_admit(name=SVC, owner=owner, job_seq=job_seq, now=at(now))


def record(outcome: Outcome, now: float = 0, admission=None, rand=lambda: 1.0, **kw) -> Outcome:
    return breakers.breaker_record(name=SVC, outcome=outcome, admission=admission, now=at(now), rand=rand, **kw)


def trip(now: float = 0, **kw) -> None:
    for i in range(3):
        record(Outcome.FAILURE, now=now, error=f"boom {i}", job_id=f"job-{i}", **kw)


def test_every_configured_dependency_has_a_row_before_its_first_call():
    breakers.claim_gates(now=at(0))
    names = set(Breaker.objects.values_list("name", flat=True))
    assert {"local", "default", "validation", SVC, "other"} <= names
    assert all(r.state == "closed" and r.failures == 0 for r in Breaker.objects.all())


def test_unknown_breaker_is_not_found():
    from jobs.exceptions import BreakerNotFound

    with pytest.raises(BreakerNotFound):
        breakers.breaker_row("nope")


def test_consecutive_failures_trip_at_the_threshold_and_say_why():
    record(Outcome.FAILURE, error="HTTP 500", job_id="a")
    record(Outcome.FAILURE, error="HTTP 502", job_id="b")
    assert row().state == "closed" and row().failures == 2
    admit()  # still admitted below the threshold
    record(Outcome.FAILURE, error="timeout", job_id="c")
    r = row()
    assert r.state == "open" and r.opened_at == at(0) and r.retry_at == at(10) and r.period == 1
    opened = BreakerEvent.objects.get(breaker=SVC, kind=BreakerEventKind.OPENED)
    assert opened.details["rule"] == "failure_threshold"
    assert opened.details["failures"] == 3 and opened.details["threshold"] == 3
    assert [e["job"] for e in opened.details["recent_errors"]] == ["c", "b", "a"]
    assert opened.details["recent_errors"][0]["error"] == "timeout"


def test_a_success_resets_the_consecutive_count():
    record(Outcome.FAILURE)
    record(Outcome.FAILURE)
    record(Outcome.SUCCESS)
    assert row().failures == 0
    record(Outcome.FAILURE)
    record(Outcome.FAILURE)
    assert row().state == "closed"


def test_4xx_fails_the_job_but_does_not_count_nor_reset():
    assert breakers.classify(PermanentJobFailure("HTTP 404")) == Outcome.NEUTRAL
    assert breakers.classify(InvalidInput("payload", "bad")) == Outcome.NEUTRAL
    assert breakers.classify(DependencyFailure("HTTP 503")) == Outcome.FAILURE
    assert breakers.classify(TimeoutError()) == Outcome.FAILURE
    assert breakers.classify(None) == Outcome.SUCCESS
    record(Outcome.FAILURE)
    for _ in range(10):
        record(breakers.classify(PermanentJobFailure("HTTP 404")))
    assert row().failures == 1 and row().state == "closed"


def test_slow_calls_count_as_failures():
    assert record(Outcome.SUCCESS, duration=0.5) == Outcome.SUCCESS
    assert record(Outcome.SUCCESS, duration=1.5) == Outcome.FAILURE
    record(Outcome.SUCCESS, duration=2.0)
    record(Outcome.SUCCESS, duration=3.0)
    assert row().state == "open"
    assert "slow call" in BreakerEvent.objects.filter(kind=BreakerEventKind.FAILURE).last().reason


def test_open_rejects_until_retry_at_then_admits_one_trial_across_owners():
    trip()
    with pytest.raises(CircuitOpen) as info:
        admit(now=9.9)
    assert info.value.status_code == 503 and info.value.default_code == "CIRCUIT_OPEN"
    trial = admit(owner="w1", now=10)
    assert trial.trial and row().state == "half-open" and row().trial_owner == "w1"
    with pytest.raises(CircuitOpen):
        admit(owner="w2", now=11)
    assert BreakerEvent.objects.filter(kind=BreakerEventKind.HALF_OPENED).count() == 1


def test_trial_success_closes_and_resets_backoff():
    trip()
    record(Outcome.FAILURE, now=10, admission=admit(now=10))  # reopen, level 1
    trial = admit(now=40)
    record(Outcome.SUCCESS, now=40, admission=trial)
    r = row()
    assert (r.state, r.failures, r.level, r.retry_at, r.trial_owner) == ("closed", 0, 0, None, "")
    assert BreakerEvent.objects.filter(kind=BreakerEventKind.CLOSED).count() == 1
    admit(owner="w2", now=40)  # anyone may call again


def test_trial_failure_doubles_the_reset_timeout_up_to_the_cap():
    trip(now=0)  # 10 s
    assert row().retry_at == at(10)
    now, expected = 10, [20, 40, 40, 40]  # doubled, then capped at max_reset_timeout=40
    for delay in expected:
        trial = admit(now=now)
        record(Outcome.FAILURE, now=now, admission=trial)
        r = row()
        assert r.state == "open" and r.retry_at == at(now + delay), (now, delay)
        now += delay
    assert BreakerEvent.objects.filter(kind=BreakerEventKind.REOPENED).count() == 4
    assert "capped" in BreakerEvent.objects.filter(kind=BreakerEventKind.REOPENED).last().reason


@pytest.mark.parametrize("rand, low_high", [(lambda: 0.0, 0.75), (lambda: 0.999999, 1.0), (lambda: 0.5, 0.875)])
def test_jitter_stays_within_75_to_100_percent(rand, low_high):
    trip(rand=rand)
    delay = (row().retry_at - at(0)).total_seconds()
    assert delay == pytest.approx(10 * low_high, rel=1e-4)
    assert 7.5 <= delay <= 10


def test_retry_after_pushes_retry_at_out():
    record(Outcome.FAILURE)
    record(Outcome.FAILURE)
    record(Outcome.FAILURE, retry_after=120)
    assert row().retry_at == at(120)
    # A late failure of a call admitted before the trip can push it further, never closer.
    record(Outcome.FAILURE, now=1, retry_after=300)
    assert row().retry_at == at(301)
    record(Outcome.FAILURE, now=2, retry_after=5)
    assert row().retry_at == at(301)


def test_a_dead_trial_cannot_leave_the_breaker_stuck():
    trip()
    admit(owner="dead", now=10)
    with pytest.raises(CircuitOpen):
        admit(owner="w2", now=69)
    trial = admit(owner="w2", now=71)  # the 60 s trial lease expired
    assert trial.trial and row().trial_owner == "w2"
    record(Outcome.FAILURE, now=72, admission=breakers.Admission(dependency=SVC, owner="dead", trial=True))
    assert row().state == "half-open", "the dead owner's late outcome does not decide the trial"
    record(Outcome.SUCCESS, now=72, admission=trial)
    assert row().state == "closed"


def test_a_trial_without_verdict_frees_the_lease():
    trip()
    trial = admit(now=10)
    record(Outcome.NEUTRAL, now=11, admission=trial)
    r = row()
    assert r.state == "half-open" and r.trial_owner == ""
    assert admit(owner="w2", now=11).trial


def test_late_outcomes_of_non_trial_calls_do_not_move_an_open_breaker():
    trip()
    record(Outcome.SUCCESS, now=1)
    record(Outcome.FAILURE, now=1)
    r = row()
    assert r.state == "open" and r.retry_at == at(10) and r.level == 0


def test_forced_open_rejects_and_keeps_recording_with_a_shadow_state():
    breakers.breaker_force_open(name=SVC, actor="user:op", reason="maintenance", now=at(0))
    with pytest.raises(CircuitOpen) as info:
        admit(now=1)
    assert "forced open" in str(info.value)
    r = row()
    assert breakers.effective_state(r, at(1)) == "open" and r.state == "closed"
    trip(now=2)  # late failures still count: the shadow (automatic) state opens
    assert row().state == "open"
    event = BreakerEvent.objects.get(kind=BreakerEventKind.FORCED_OPEN)
    assert (event.actor, event.reason, event.to_state) == ("user:op", "maintenance", "open")
    breakers.breaker_release(name=SVC, actor="user:op", now=at(3))
    with pytest.raises(CircuitOpen):
        admit(now=3)  # back to automatic, which is open now


def test_forced_closed_admits_everything_counts_and_never_trips():
    breakers.breaker_force_closed(name=SVC, actor="user:op", reason="false alarm", now=at(0))
    for i in range(10):
        admission = admit(now=i)
        assert not admission.trial
        record(Outcome.FAILURE, now=i, admission=admission)
    r = row()
    assert breakers.effective_state(r, at(10)) == "closed"
    assert r.state == "open", "shadow state: what the automatic breaker would be"
    # In shadow mode a success when a trial would be due closes the automatic state.
    record(Outcome.SUCCESS, now=30, admission=admit(now=30))
    assert row().state == "closed"


def test_override_ttl_lifts_by_itself():
    breakers.breaker_force_open(name=SVC, actor="user:op", ttl_seconds=30, now=at(0))
    with pytest.raises(CircuitOpen):
        admit(now=29)
    admit(now=30)  # decisions ignore an expired override at once
    assert breakers.breakers_expire_overrides(now=at(31)) == 1
    r = row()
    assert r.override == "" and r.override_expires_at is None
    assert BreakerEvent.objects.filter(kind=BreakerEventKind.OVERRIDE_EXPIRED).count() == 1
    assert breakers.breakers_expire_overrides(now=at(32)) == 0


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"reason": 5}, "reason"),
        ({"reason": "x" * 501}, "reason"),
        ({"reason": "a\x00b"}, "reason"),
        ({"ttl_seconds": 0}, "ttl_seconds"),
        ({"ttl_seconds": -1}, "ttl_seconds"),
        ({"ttl_seconds": "10"}, "ttl_seconds"),
        ({"ttl_seconds": True}, "ttl_seconds"),
        ({"ttl_seconds": 10**9}, "ttl_seconds"),
    ],
)
def test_override_input_is_checked(kwargs, field):
    with pytest.raises(InvalidInput) as info:
        breakers.breaker_force_open(name=SVC, actor="user:op", **kwargs)
    assert info.value.field == field
    assert row().override == ""
    assert not BreakerEvent.objects.exists()


def test_release_takes_no_ttl():
    with pytest.raises(InvalidInput):
        breakers.breaker_release(name=SVC, actor="user:op", ttl_seconds=5)


# --- the queue --------------------------------------------------------------------------------


def submit(dependency: str, priority: int = 0) -> Job:
    job, _ = services.job_submit(kind="noop", dependency=dependency, priority=priority)
    Job.objects.filter(seq=job.seq).update(run_after=T0)  # runnable on the injected clock
    return job


def claim(worker: str = "w1", now: float = 0) -> Job | None:
    return queue.job_claim_next(worker_id=worker, now=at(now))


def claim_with_trial(worker: str = "w1", now: float = 0) -> queue.Claim | None:
    return queue.claim_next(worker_id=worker, now=at(now))


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


def test_dependency_settings_come_from_config_and_env(monkeypatch):
    dep = dependencies.get(SVC)
    assert (dep.failure_threshold, dep.reset_timeout, dep.max_reset_timeout) == (3, 10, 40)
    monkeypatch.setenv("RESILIENT_BREAKER_FAILURE_THRESHOLD", "7")
    assert dependencies.get("other").failure_threshold == 7
    assert dependencies.get(SVC).failure_threshold == 3, "per-dependency settings win"


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


def test_claim_path_reads_the_breakers_in_one_query():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    submit("other")
    trip(now=0)
    breakers.claim_gates(now=at(0))  # the first read creates rows for newly configured dependencies
    with CaptureQueriesContext(connection) as ctx:
        breakers.claim_gates(now=at(1))
    assert len(ctx.captured_queries) == 1
    with CaptureQueriesContext(connection) as ctx:
        assert claim(now=1) is not None
    breaker_reads = [q for q in ctx.captured_queries if "jobs_breaker" in q["sql"]]
    assert len(breaker_reads) == 1
