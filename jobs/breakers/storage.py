"""A pybreaker ``CircuitBreakerStorage`` backed by the Breaker row, shared by every process.

pybreaker's storage interface has no compare-and-set: ``CircuitBreaker.open()`` writes
``opened_at`` then ``state`` blindly, and two processes can both move open → half-open and both
send a trial. Here every write is a conditional UPDATE through the breakers' public transitions
(``jobs.breakers.transitions``, ``admission``):

- ``increment_counter`` is ``failures = failures + 1`` (no lost updates between processes);
- ``reset_counter`` only writes when there is something to reset;
- ``state = "open"`` trips (closed, at the threshold) or reopens (the half-open trial we hold)
  with our backoff, jitter and cap; whoever loses the race changes nothing;
- ``state = "half-open"`` takes the shared trial lease, or raises ``CircuitBreakerError`` when
  another process holds it — so exactly one trial runs across all processes;
- ``state = "closed"`` closes only from the trial we hold;
- ``opened_at`` reads as ``retry_at - reset_timeout`` so pybreaker's own timer fires at our
  (doubled, jittered) retry-at; operator overrides read as sticky states.

Use it through ``pybreaker_for(name)``; use ``calling()`` (not ``call()``, which serialises every
call in the process behind one lock). The worker does not use pybreaker's call protocol at all:
see ``jobs.breakers.transitions``.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pybreaker
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from jobs import dependencies
from jobs.breakers import admission, history, rules, store, transitions
from jobs.exceptions import JobFailure
from jobs.models import Breaker, BreakerEventKind, BreakerOverride, BreakerState

FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)


class BreakerRowStorage(pybreaker.CircuitBreakerStorage):
    """pybreaker state kept in the ``Breaker`` row named ``name``."""

    def __init__(self, name: str, *, owner: str | None = None, clock=timezone.now) -> None:
        super().__init__("database")
        self.breaker_name = name
        self._owner = owner
        self.clock = clock

    @property
    def owner(self) -> str:
        return self._owner or rules.default_owner()

    def _row(self) -> Breaker:
        return store.breaker_row(self.breaker_name)

    def _dep(self) -> dependencies.Dependency:
        return dependencies.configured().get(self.breaker_name) or dependencies.Dependency(name=self.breaker_name)

    # --- state --------------------------------------------------------------------------------

    @property
    def state(self) -> str:
        row, now = self._row(), self.clock()
        override = rules.override_in_force(row, now)
        if override:
            return pybreaker.STATE_OPEN if override == BreakerOverride.OPEN else pybreaker.STATE_CLOSED
        if row.state == BreakerState.HALF_OPEN and row.trial_owner != self.owner:
            return pybreaker.STATE_OPEN  # someone else's trial: to us it is still open
        return row.state

    @state.setter
    def state(self, state: str) -> None:
        now = self.clock()
        row = self._row()
        if state == pybreaker.STATE_HALF_OPEN:
            if not admission.trial_acquire(name=self.breaker_name, owner=self.owner, job_seq=None, now=now):
                raise pybreaker.CircuitBreakerError("another process is running the half-open trial")
        elif state == pybreaker.STATE_OPEN:
            with transaction.atomic():
                self._open(row, now)
        elif state == pybreaker.STATE_CLOSED:
            if row.state == BreakerState.HALF_OPEN and row.trial_owner == self.owner:
                transitions.breaker_close(row=row, now=now, actor=self.owner, job_id=None, duration=None)

    def _open(self, row: Breaker, now: datetime) -> None:
        if row.state == BreakerState.HALF_OPEN and row.trial_owner == self.owner:
            transitions.breaker_reopen(row=row, dep=self._dep(), now=now, actor=self.owner, retry_after=None,
                                       rand=random.random, job_id=None)
        elif row.state == BreakerState.CLOSED:
            transitions.breaker_trip(name=self.breaker_name, dep=self._dep(), now=now, actor=self.owner,
                                     retry_after=None, rand=random.random)

    # --- counters -----------------------------------------------------------------------------

    def increment_counter(self) -> None:
        now = self.clock()
        Breaker.objects.filter(name=self.breaker_name, state=BreakerState.CLOSED).update(
            failures=F("failures") + 1, updated_at=now
        )
        history.breaker_event_record(self.breaker_name, BreakerEventKind.FAILURE, actor=self.owner, at=now,
                                     reason="pybreaker: guarded call failed", job=None)

    def reset_counter(self) -> None:
        Breaker.objects.filter(name=self.breaker_name, failures__gt=0).update(failures=0)

    def increment_success_counter(self) -> None:
        Breaker.objects.filter(name=self.breaker_name).update(successes=F("successes") + 1)

    def reset_success_counter(self) -> None:
        Breaker.objects.filter(name=self.breaker_name, successes__gt=0).update(successes=0)

    @property
    def counter(self) -> int:
        return self._row().failures

    @property
    def success_counter(self) -> int:
        return self._row().successes

    # --- timer --------------------------------------------------------------------------------

    @property
    def opened_at(self) -> datetime | None:
        """Shifted so that pybreaker's ``opened_at + reset_timeout`` is our retry-at."""
        row, now = self._row(), self.clock()
        if rules.override_in_force(row, now) == BreakerOverride.OPEN:
            return FAR_FUTURE  # forced open is sticky (pybreaker's own open() lapses)
        if row.retry_at is None:
            return row.opened_at
        return row.retry_at - timedelta(seconds=self._dep().reset_timeout)

    @opened_at.setter
    def opened_at(self, value: datetime) -> None:
        """Ignored: the transition to open sets opened_at and retry_at in one conditional UPDATE."""


def pybreaker_for(name: str, *, owner: str | None = None) -> pybreaker.CircuitBreaker:
    """A pybreaker CircuitBreaker for dependency ``name`` whose state lives in the shared row."""
    dep = dependencies.get(name)
    return pybreaker.CircuitBreaker(
        fail_max=dep.failure_threshold,
        reset_timeout=dep.reset_timeout,
        state_storage=BreakerRowStorage(name, owner=owner),
        exclude=[lambda exc: isinstance(exc, JobFailure) and not exc.counts_against_dependency],
        name=name,
        throw_new_error_on_trip=False,
    )
