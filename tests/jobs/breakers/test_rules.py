"""The pure rules on unsaved rows: no database, no clock but the one passed in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobs import dependencies
from jobs.breakers import flow, rules
from jobs.exceptions import DependencyFailure, InvalidInput, PermanentJobFailure
from jobs.models import Breaker, BreakerOverride, BreakerState

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
SOON, AGO = NOW + timedelta(seconds=5), NOW - timedelta(seconds=5)


def breaker(**fields) -> Breaker:
    return Breaker(name="svc", **fields)


@pytest.mark.parametrize(
    "fields, decision",
    [
        ({"state": BreakerState.CLOSED}, rules.Decision.ADMIT),
        ({"state": BreakerState.OPEN, "retry_at": SOON}, rules.Decision.REJECT),
        ({"state": BreakerState.OPEN, "retry_at": NOW}, rules.Decision.TRIAL),
        ({"state": BreakerState.OPEN, "retry_at": None}, rules.Decision.TRIAL),
        ({"state": BreakerState.HALF_OPEN, "trial_expires_at": SOON}, rules.Decision.REJECT),
        ({"state": BreakerState.HALF_OPEN, "trial_expires_at": AGO}, rules.Decision.TRIAL),
        ({"state": BreakerState.CLOSED, "override": BreakerOverride.OPEN}, rules.Decision.REJECT),
        ({"state": BreakerState.OPEN, "retry_at": SOON, "override": BreakerOverride.CLOSED}, rules.Decision.ADMIT),
        ({"state": BreakerState.CLOSED, "override": BreakerOverride.OPEN, "override_expires_at": NOW},
         rules.Decision.ADMIT),
    ],
)
def test_decide(fields, decision):
    assert rules.decide(breaker(**fields), NOW) == decision


def test_an_override_wins_until_it_expires():
    forced = breaker(state=BreakerState.OPEN, override=BreakerOverride.CLOSED, override_expires_at=SOON)
    assert rules.override_in_force(forced, NOW) == BreakerOverride.CLOSED
    assert rules.effective_state(forced, NOW) == BreakerState.CLOSED
    assert rules.override_in_force(forced, SOON) == BreakerOverride.NONE
    assert rules.effective_state(forced, SOON) == BreakerState.OPEN


def test_only_the_lease_holder_decides_the_trial_except_in_shadow_mode():
    half_open = breaker(state=BreakerState.HALF_OPEN, trial_owner="w1", trial_job=7, trial_expires_at=SOON)
    mine = rules.Admission(dependency="svc", owner="w1", trial=True, job_seq=7)
    theirs = rules.Admission(dependency="svc", owner="w2", trial=True, job_seq=7)
    assert rules.is_trial(half_open, mine, NOW) and not rules.is_trial(half_open, theirs, NOW)
    assert not rules.is_trial(half_open, None, NOW)
    shadow = breaker(state=BreakerState.OPEN, retry_at=AGO, override=BreakerOverride.CLOSED)
    assert rules.is_trial(shadow, None, NOW)


def test_classify():
    assert rules.classify(None) == rules.Outcome.SUCCESS
    assert rules.classify(DependencyFailure("HTTP 503")) == rules.Outcome.FAILURE
    assert rules.classify(PermanentJobFailure("HTTP 404")) == rules.Outcome.NEUTRAL
    assert rules.classify(InvalidInput("payload", "bad")) == rules.Outcome.NEUTRAL
    assert rules.classify(KeyboardInterrupt()) == rules.Outcome.NEUTRAL


def test_backoff_doubles_from_the_base_up_to_the_cap_with_jitter():
    dep = dependencies.Dependency(name="svc", reset_timeout=10, max_reset_timeout=40)
    assert [rules.reset_timeout_seconds(dep, level, lambda: 1.0) for level in range(4)] == [10, 20, 40, 40]
    assert rules.reset_timeout_seconds(dep, 0, lambda: 0.0) == 7.5


def test_a_healthy_success_changes_nothing_unless_slow():
    dep = dependencies.Dependency(name="svc", slow_call_seconds=1.0)
    proven = flow.SLOW_START_CEILING
    assert rules.success_changes_nothing(breaker(state=BreakerState.CLOSED, failures=0, probe_window=proven), dep, 0.5)
    assert not rules.success_changes_nothing(breaker(state=BreakerState.CLOSED, failures=0, probe_window=proven), dep, 1.5)
    assert not rules.success_changes_nothing(breaker(state=BreakerState.CLOSED, failures=1), dep, 0.5)
    assert not rules.success_changes_nothing(None, dep, 0.5)


def test_a_success_during_slow_start_grows_the_window():
    dep = dependencies.Dependency(name="svc")
    assert not rules.success_changes_nothing(breaker(state=BreakerState.CLOSED, failures=0, probe_window=0), dep, 0.1)
    assert not rules.success_changes_nothing(breaker(state=BreakerState.CLOSED, failures=0, probe_window=5), dep, 0.1)
    local = dependencies.Dependency(name=dependencies.LOCAL)
    assert rules.success_changes_nothing(breaker(state=BreakerState.CLOSED, failures=0, probe_window=0), local, 0.1)
