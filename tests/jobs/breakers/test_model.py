"""Hypothesis drives the real breaker and a small reference model of docs/breakers.md's semantics
with the same random operations and clock; after every step they must agree."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from django.test import override_settings
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from jobs import breakers
from jobs.breakers import Outcome
from jobs.exceptions import CircuitOpen
from jobs.models import Breaker, BreakerEvent

NAME = "svc"
THRESHOLD, BASE, CAP, LEASE = 3, 10.0, 40.0, 60.0
T0 = datetime(2026, 1, 1, tzinfo=UTC)
OWNERS = ("a", "b")


@dataclass
class Model:
    """The semantics, written as plainly as possible."""

    state: str = "closed"
    failures: int = 0
    level: int = 0
    retry_at: float | None = None
    trial_owner: str | None = None
    trial_expires: float | None = None
    override: str = ""
    override_expires: float | None = None

    def override_now(self, now: float) -> str:
        if self.override and (self.override_expires is None or self.override_expires > now):
            return self.override
        return ""

    def automatic(self, now: float) -> str:
        if self.state == "closed":
            return "admit"
        if self.state == "open":
            return "trial" if self.retry_at <= now else "reject"
        live = self.trial_expires is not None and self.trial_expires > now
        return "reject" if live else "trial"

    def decision(self, now: float) -> str:
        override = self.override_now(now)
        if override:
            return "reject" if override == "open" else "admit"
        return self.automatic(now)

    def effective(self, now: float) -> str:
        return self.override_now(now) or self.state

    def admit(self, owner: str, now: float) -> str:
        decision = self.decision(now)
        if decision == "admit":
            return "admit"
        if self.state == "half-open" and self.trial_owner == owner and not self.override_now(now):
            return "trial"
        if decision == "trial":
            self.state, self.trial_owner, self.trial_expires = "half-open", owner, now + LEASE
            return "trial"
        return "reject"

    def record(self, outcome: Outcome, owner: str | None, was_trial: bool, now: float) -> None:
        trial = (was_trial and self.state == "half-open" and self.trial_owner == owner) or (
            self.override_now(now) == "closed" and self.automatic(now) == "trial"
        )
        if outcome == Outcome.NEUTRAL:
            if was_trial and trial:
                self.trial_owner = self.trial_expires = None
        elif outcome == Outcome.SUCCESS:
            if trial:
                self.state, self.failures, self.level, self.retry_at = "closed", 0, 0, None
                self.trial_owner = self.trial_expires = None
            elif self.state == "closed":
                self.failures = 0
        elif trial:
            self.level += 1
            self.state, self.retry_at = "open", now + min(CAP, BASE * 2**self.level)
            self.trial_owner = self.trial_expires = None
        elif self.state == "closed":
            self.failures += 1
            if self.failures >= THRESHOLD:
                self.state, self.level, self.retry_at = "open", 0, now + BASE


class BreakerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        BreakerEvent.objects.all().delete()
        Breaker.objects.filter(name=NAME).delete()
        breakers.breakers_ensure([NAME])
        self.model = Model()
        self.now = 0.0
        self.calls: dict[str, breakers.Admission] = {}

    def at(self) -> datetime:
        return T0 + timedelta(seconds=self.now)

    @rule(seconds=st.sampled_from([1, 4, 9, 10, 15, 30, 61]))
    def tick(self, seconds):
        self.now += seconds

    @rule(owner=st.sampled_from(OWNERS))
    def admit(self, owner):
        if owner in self.calls:
            return
        expected = self.model.admit(owner, self.now)
        try:
            admission = breakers.breaker_admit(name=NAME, owner=owner, now=self.at())
        except CircuitOpen:
            assert expected == "reject"
            return
        assert expected == ("trial" if admission.trial else "admit")
        self.calls[owner] = admission

    @precondition(lambda self: self.calls)
    @rule(data=st.data(), outcome=st.sampled_from(list(Outcome)))
    def finish(self, data, outcome):
        owner = data.draw(st.sampled_from(sorted(self.calls)))
        admission = self.calls.pop(owner)
        self.model.record(outcome, owner, admission.trial, self.now)
        breakers.breaker_record(name=NAME, outcome=outcome, admission=admission, now=self.at(), rand=lambda: 1.0)

    @rule(outcome=st.sampled_from(list(Outcome)))
    def late_outcome(self, outcome):
        """An outcome of a call admitted long ago, e.g. before the breaker tripped."""
        self.model.record(outcome, None, False, self.now)
        breakers.breaker_record(name=NAME, outcome=outcome, now=self.at(), rand=lambda: 1.0)

    @rule(kind=st.sampled_from(["open", "closed"]), ttl=st.sampled_from([None, 20]))
    def force(self, kind, ttl):
        service = breakers.breaker_force_open if kind == "open" else breakers.breaker_force_closed
        service(name=NAME, actor="op", ttl_seconds=ttl, now=self.at())
        self.model.override, self.model.override_expires = kind, (self.now + ttl if ttl else None)

    @rule()
    def release(self):
        breakers.breaker_release(name=NAME, actor="op", now=self.at())
        self.model.override, self.model.override_expires = "", None

    @rule()
    def expire_overrides(self):
        breakers.breakers_expire_overrides(now=self.at())
        if self.model.override and not self.model.override_now(self.now):
            self.model.override, self.model.override_expires = "", None

    @invariant()
    def agrees_with_the_model(self):
        row = Breaker.objects.get(name=NAME)
        m = self.model
        assert (row.state, row.failures, row.level) == (m.state, m.failures, m.level)
        assert row.retry_at == (T0 + timedelta(seconds=m.retry_at) if m.retry_at is not None else None) or m.state == "closed"
        assert (row.trial_owner or None) == (m.trial_owner if m.state == "half-open" else None)
        assert breakers.effective_state(row, self.at()) == m.effective(self.now)
        assert breakers.decide(row, self.at()).value == m.decision(self.now)


@pytest.mark.django_db
def test_breaker_matches_the_reference_model():
    with override_settings(
        RESILIENT={
            "LEASE_SECONDS": LEASE,
            "DEPENDENCIES": {NAME: {"failure_threshold": THRESHOLD, "reset_timeout": BASE, "max_reset_timeout": CAP}},
        }
    ):
        run_state_machine_as_test(
            BreakerMachine,
            settings=settings(
                max_examples=60, stateful_step_count=40, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
            ),
        )
