"""The breaker state machine, transition by transition, with an injected clock (no sleeping)."""

from __future__ import annotations

import pytest

from jobs import breakers
from jobs.breakers import Outcome
from jobs.exceptions import CircuitOpen, DependencyFailure, InvalidInput, PermanentJobFailure
from jobs.models import BreakerEvent, BreakerEventKind
from tests.jobs.breakers.svc import SVC, admit, at, record, row, trip

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("svc_config")]


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
