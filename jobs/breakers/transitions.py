"""The automatic state machine: an outcome recorded moves the row (trip, reopen, close, free the trial).

No function reads a value, computes in Python and writes it back unconditionally: each write is
``UPDATE ... WHERE <the state we expect>``; a write that matches no row lost a race and changes
nothing. ``breaker_record`` is the entry point; the transitions are public so that the pybreaker
storage (``jobs.breakers.storage``) moves the same row the same way.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Case, F, Value, When
from django.db.models.functions import Coalesce, Floor, Greatest, Least
from django.db.models.lookups import GreaterThan, LessThan
from django.utils import timezone

from jobs import dependencies, notify
from jobs.breakers import flow, history, holds, rules, store
from jobs.models import Breaker, BreakerEventKind, BreakerOverride, BreakerState

log = logging.getLogger("resilient.breakers")

MAX_ERROR_CHARS = 1000


def breaker_record(
    *,
    name: str,
    outcome: rules.Outcome,
    admission: rules.Admission | None = None,
    duration: float | None = None,
    error: str = "",
    job_id: str | None = None,
    retry_after: float | None = None,
    actor: str = rules.SYSTEM,
    now: datetime | None = None,
    rand: Callable[[], float] = random.random,
) -> rules.Outcome:
    """Record one call's outcome. Returns the outcome as counted (a slow success is a failure).

    The closed, healthy path costs one read and no write.
    """
    now = now or timezone.now()
    dep = dependencies.configured().get(name) or dependencies.Dependency(name=name)
    if outcome == rules.Outcome.SUCCESS and rules.is_slow(dep, duration):
        outcome = rules.Outcome.FAILURE
        error = f"slow call: {duration:.3f}s > slow_call_seconds {dep.slow_call_seconds:g}s"
    error = error[:MAX_ERROR_CHARS]
    for _ in range(5):  # a lost race re-reads the row and decides again
        row = store.breaker_row(name, create_any=True)
        done = _apply(row, dep, outcome, admission, now=now, duration=duration, error=error, job_id=job_id,
                      retry_after=retry_after, actor=actor, rand=rand)
        if done:
            _adapt(row, dep, outcome, now=now, error=error)
            return outcome
    log.warning("breaker %s: outcome %s lost 5 races in a row; dropped", name, outcome.value)
    return outcome


def _adapt(row: Breaker, dep: dependencies.Dependency, outcome: rules.Outcome, *, now: datetime, error: str) -> None:
    """Adaptive concurrency (AIMD, ``flow``): one UPDATE computed in SQL from the stored limit, so
    concurrent workers' outcomes all count and none is lost. When the limit crosses a whole number
    of calls the same UPDATE keeps the change (when, from, to, why): no extra statement."""
    bounds = flow.limits(row, dep).adaptive
    if bounds is None or outcome == rules.Outcome.NEUTRAL:
        return
    current = Coalesce(F("adaptive_limit"), Value(float(bounds.min)))
    limit = row.adaptive_limit or float(bounds.min)
    in_flight = store.jobs_in_flight(now=now, dependency=row.name).count()
    if outcome == rules.Outcome.FAILURE:
        if not flow.adaptive_cut_due(limit, in_flight):
            return
        new = Greatest(Value(float(bounds.min)), current * Value(flow.ADAPTIVE_BACKOFF))
        crossed = LessThan(Floor(new), Floor(current))
    else:
        if not flow.adaptive_in_use(limit, in_flight):
            return
        new = Least(Value(float(bounds.max)), current + Value(1.0) / current)
        crossed = GreaterThan(Floor(new), Floor(current))
    cause = flow.adaptive_cause(success=outcome == rules.Outcome.SUCCESS, error=error)

    def if_crossed(value: Any, field: str) -> Case:
        return Case(When(crossed, then=value), default=F(field))

    Breaker.objects.filter(name=row.name).update(
        adaptive_limit=new,
        adaptive_changed_at=if_crossed(Value(now), "adaptive_changed_at"),
        adaptive_change_from=if_crossed(current, "adaptive_change_from"),
        adaptive_change_to=if_crossed(new, "adaptive_change_to"),
        adaptive_change_cause=if_crossed(Value(cause), "adaptive_change_cause"),
    )


def _apply(row: Breaker, dep: dependencies.Dependency, outcome: rules.Outcome, admission: rules.Admission | None, *,
           now: datetime, duration: float | None, error: str, job_id: str | None, retry_after: float | None,
           actor: str, rand: Callable[[], float]) -> bool:
    """One attempt at recording; False when a concurrent change made our conditional UPDATE miss."""
    trial = rules.is_trial(row, admission, now)
    if outcome == rules.Outcome.NEUTRAL:
        if trial and admission is not None and admission.trial:
            breaker_trial_abandon(row=row, admission=admission, now=now, actor=actor, job_id=job_id)
        return True
    if outcome == rules.Outcome.SUCCESS:
        if trial:
            return breaker_close(row=row, now=now, actor=actor, job_id=job_id, duration=duration)
        if row.state == BreakerState.CLOSED and not flow.success_grows_nothing(row, dep):
            # Slow start: the window grows by one per success; conditional on the counters read, so
            # a concurrent change makes it miss and the outcome is decided again on the new row.
            widened = Breaker.objects.filter(
                name=row.name, state=BreakerState.CLOSED, failures=row.failures, probe_window=row.probe_window
            ).update(failures=0, probe_window=flow.window_after_success(row, dep), updated_at=now)
            if widened and flow.probe_allowance(row, dep) is not None:
                # The probe limit just widened: a worker whose claim it cut short waits for a
                # wake-up or its next poll, and the backlog would idle until then.
                notify.wake_workers_on_commit()
            return bool(widened)
        return True
    # A counted failure.
    with transaction.atomic():
        history.breaker_event_record(row.name, BreakerEventKind.FAILURE, actor=actor, at=now, reason=error,
                                     job=job_id, duration=duration, state=row.state, trial=trial)
        if trial:
            if not breaker_reopen(row=row, dep=dep, now=now, actor=actor, retry_after=retry_after, rand=rand,
                                  job_id=job_id):
                transaction.set_rollback(True)
                return False
            return True
        if row.state == BreakerState.CLOSED:
            Breaker.objects.filter(name=row.name, state=BreakerState.CLOSED).update(
                failures=F("failures") + 1, updated_at=now  # probing until the next success
            )
            breaker_trip(name=row.name, dep=dep, now=now, actor=actor, retry_after=retry_after, rand=rand)
            return True
        # Open or half-open and not the trial: a call admitted before the trip finished late.
        # It says nothing new, except that Retry-After can push retry-at further out.
        if retry_after:
            Breaker.objects.filter(
                name=row.name, state=BreakerState.OPEN, retry_at__lt=now + timedelta(seconds=retry_after)
            ).update(retry_at=now + timedelta(seconds=retry_after), updated_at=now)
        return True


def breaker_trip(*, name: str, dep: dependencies.Dependency, now: datetime, actor: str, retry_after: float | None,
                 rand: Callable[[], float]) -> bool:
    """closed -> open once the consecutive failures reach the threshold. Only one process wins."""
    delay = rules.reset_timeout_seconds(dep, 0, rand)
    if retry_after:
        delay = max(delay, retry_after)
    retry_at = now + timedelta(seconds=delay)
    row = Breaker.objects.get(name=name)
    won = Breaker.objects.filter(
        name=name, state=BreakerState.CLOSED, failures__gte=dep.failure_threshold
    ).update(state=BreakerState.OPEN, opened_at=now, retry_at=retry_at, level=0, period=F("period") + 1,
             trial_owner="", trial_job=None, trial_expires_at=None, probe_window=0, updated_at=now)
    if not won:
        return False
    before = rules.decide(row, now)
    row.state, row.retry_at = BreakerState.OPEN, retry_at
    after = rules.decide(row, now)
    held = holds.decision_changed(name=name, before=before, after=after, now=now, actor=actor,
                                  why="breaker opened", retry_at=retry_at)
    failures = row.failures
    history.breaker_event_record(
        name, BreakerEventKind.OPENED, actor=actor, at=now, from_state=BreakerState.CLOSED,
        to_state=BreakerState.OPEN,
        reason=f"{failures} consecutive failures reached the threshold of {dep.failure_threshold}",
        rule="failure_threshold", failures=failures, threshold=dep.failure_threshold,
        reset_timeout=round(delay, 3), retry_after=retry_after, retry_at=retry_at.isoformat(),
        recent_errors=history.recent_errors(name), held=held, shadow=after == rules.Decision.ADMIT,
    )
    return True


def breaker_reopen(*, row: Breaker, dep: dependencies.Dependency, now: datetime, actor: str,
                   retry_after: float | None, rand: Callable[[], float], job_id: str | None) -> bool:
    """The trial failed: open again with the reset timeout doubled (capped, jittered)."""
    level = row.level + 1
    delay = rules.reset_timeout_seconds(dep, level, rand)
    if retry_after:
        delay = max(delay, retry_after)
    retry_at = now + timedelta(seconds=delay)
    won = Breaker.objects.filter(
        name=row.name, state=row.state, level=row.level, trial_owner=row.trial_owner, trial_job=row.trial_job
    ).update(state=BreakerState.OPEN, opened_at=now, retry_at=retry_at, level=level, successes=0,
             trial_owner="", trial_job=None, trial_expires_at=None, updated_at=now)
    if not won:
        return False
    uncapped = dep.reset_timeout * 2**min(level, 63)
    history.breaker_event_record(
        row.name, BreakerEventKind.REOPENED, actor=actor, at=now, from_state=row.state,
        to_state=BreakerState.OPEN,
        reason=f"trial call failed; reset timeout doubled to {min(uncapped, dep.max_reset_timeout):g}s"
        + (" (capped)" if uncapped >= dep.max_reset_timeout else "") + " before jitter",
        rule="trial_failed", level=level, reset_timeout=round(delay, 3), retry_after=retry_after,
        retry_at=retry_at.isoformat(), job=job_id, recent_errors=history.recent_errors(row.name),
    )
    return True


def breaker_close(*, row: Breaker, now: datetime, actor: str, job_id: str | None, duration: float | None) -> bool:
    """The trial succeeded: closed, counters and backoff reset; the backlog drains."""
    with transaction.atomic():
        won = Breaker.objects.filter(
            name=row.name, state=row.state, level=row.level, trial_owner=row.trial_owner,
            trial_job=row.trial_job,
        ).update(state=BreakerState.CLOSED, failures=0, successes=0, level=0, opened_at=None, retry_at=None,
                 trial_owner="", trial_job=None, trial_expires_at=None, probe_window=0, updated_at=now)
        if not won:
            return False
        shadow = rules.override_in_force(row, now) == BreakerOverride.CLOSED
        history.breaker_event_record(
            row.name, BreakerEventKind.CLOSED, actor=actor, at=now, from_state=row.state,
            to_state=BreakerState.CLOSED,
            reason="a call succeeded while forced closed (shadow state closes)" if shadow
            else "trial call succeeded", rule="trial_succeeded", job=job_id, duration=duration,
            level=row.level,
        )
        notify.wake_workers_on_commit()
    return True


def breaker_trial_abandon(*, row: Breaker, admission: rules.Admission, now: datetime, actor: str,
                          job_id: str | None) -> None:
    """The trial ended without a verdict (a 4xx, a shutdown): free the lease for the next trial."""
    with transaction.atomic():
        freed = Breaker.objects.filter(
            name=row.name, state=BreakerState.HALF_OPEN, trial_owner=admission.owner, trial_job=admission.job_seq
        ).update(trial_owner="", trial_job=None, trial_expires_at=None, updated_at=now)
        if freed:
            history.breaker_event_record(
                row.name, BreakerEventKind.TRIAL_ABANDONED, actor=actor, at=now,
                from_state=BreakerState.HALF_OPEN, to_state=BreakerState.HALF_OPEN,
                reason="the trial call ended without a verdict on the dependency", job=job_id,
            )
            notify.wake_workers_on_commit()
