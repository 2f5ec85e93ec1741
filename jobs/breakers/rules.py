"""The breakers' pure rules: what a row decides at an instant, how outcomes count, how long it stays open.

No database access here: every function takes the row (or the exception) it judges. The model
module is imported only for its status vocabulary (``BreakerState``, ``BreakerOverride``).
"""

from __future__ import annotations

import enum
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from jobs import dependencies, retry
from jobs.exceptions import InvalidInput, JobFailure
from jobs.models import BreakerOverride, BreakerState

if TYPE_CHECKING:
    from jobs.models import Breaker

SYSTEM = "system"  # the actor of changes nobody asked for (expiries, records outside the worker)


class Decision(enum.Enum):
    ADMIT = "admit"  # closed, or forced closed: any call may go
    TRIAL = "trial"  # open past retry-at (or half-open with no live trial): one trial may start
    REJECT = "reject"  # open, half-open with a live trial, or forced open


class Outcome(enum.Enum):
    SUCCESS = "success"
    FAILURE = "failure"  # counts against the dependency
    NEUTRAL = "neutral"  # the job's fault (4xx, bad input) or no verdict (shutdown): not counted


@dataclass(frozen=True)
class Admission:
    """A call the breaker let through. ``trial`` means it is the half-open trial."""

    dependency: str
    owner: str
    trial: bool = False
    job_seq: int | None = None


def override_in_force(row: Breaker, now: datetime) -> str:
    """The override that applies at ``now`` ("" when none or expired)."""
    if row.override and (row.override_expires_at is None or row.override_expires_at > now):
        return row.override
    return BreakerOverride.NONE


def automatic_decision(row: Breaker, now: datetime) -> Decision:
    """What the automatic state machine alone would do with a call at ``now``."""
    if row.state == BreakerState.CLOSED:
        return Decision.ADMIT
    if row.state == BreakerState.OPEN:
        return Decision.TRIAL if row.retry_at is None or row.retry_at <= now else Decision.REJECT
    trial_live = row.trial_expires_at is not None and row.trial_expires_at > now
    return Decision.REJECT if trial_live else Decision.TRIAL


def decide(row: Breaker, now: datetime) -> Decision:
    """The effective decision: an override in force wins over the automatic state."""
    override = override_in_force(row, now)
    if override == BreakerOverride.OPEN:
        return Decision.REJECT
    if override == BreakerOverride.CLOSED:
        return Decision.ADMIT
    return automatic_decision(row, now)


def effective_state(row: Breaker, now: datetime) -> str:
    """closed / open / half-open as callers experience it (the override wins)."""
    override = override_in_force(row, now)
    return override or row.state


def reset_timeout_seconds(dep: dependencies.Dependency, level: int, rand: Callable[[], float]) -> float:
    """Open period number ``level`` (0 = first trip): base x 2^level, capped, times 75-100 %."""
    return retry.backoff_seconds(level + 1, base=dep.reset_timeout, cap=dep.max_reset_timeout, rand=rand)


def classify(exc: BaseException | None) -> Outcome:
    """How a handler's outcome counts for its dependency's breaker."""
    if exc is None:
        return Outcome.SUCCESS
    if isinstance(exc, JobFailure):
        return Outcome.FAILURE if exc.counts_against_dependency else Outcome.NEUTRAL
    if isinstance(exc, InvalidInput):  # the job's payload is wrong, not the dependency
        return Outcome.NEUTRAL
    if isinstance(exc, Exception):
        return Outcome.FAILURE
    return Outcome.NEUTRAL  # CancelledError, KeyboardInterrupt: no verdict on the dependency


def is_trial(row: Breaker, admission: Admission | None, now: datetime) -> bool:
    """Does this outcome decide the half-open trial? Yes for the lease holder; and while forced
    closed, any call made when the automatic machine would have admitted a trial (shadow mode)."""
    if admission is not None and admission.trial:
        return (row.state == BreakerState.HALF_OPEN and row.trial_owner == admission.owner
                and row.trial_job == admission.job_seq)
    if override_in_force(row, now) == BreakerOverride.CLOSED:
        return automatic_decision(row, now) == Decision.TRIAL
    return False


def is_slow(dep: dependencies.Dependency, duration: float | None) -> bool:
    """A call slower than the dependency's ``slow_call_seconds`` counts as a failure."""
    return dep.slow_call_seconds > 0 and duration is not None and duration > dep.slow_call_seconds


def success_changes_nothing(row: Breaker | None, dep: dependencies.Dependency | None, duration: float | None) -> bool:
    """Would ``breaker_record`` of this (non-trial) success write nothing? True when the breaker
    is closed with no failure counted, its slow-start window fully grown, and the call was not
    slow: the healthy path, which the worker then skips without another read."""
    from jobs.breakers import flow  # flow's rules build on these

    return (row is not None and dep is not None and row.state == BreakerState.CLOSED and not row.failures
            and not is_slow(dep, duration) and flow.success_grows_nothing(row, dep))


def default_owner() -> str:
    """Who holds a trial lease taken outside the worker (e.g. the submission-time validation)."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
