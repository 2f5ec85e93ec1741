"""Shared circuit breakers: one Breaker row per dependency, changed only by conditional UPDATEs.

Every process (web, any number of workers) reads and changes the same row, so a failure recorded
by one worker counts for all of them and an operator override is honoured everywhere at the next
claim. No function reads a value, computes in Python and writes it back unconditionally: each
write is ``UPDATE ... WHERE <the state we expect>``; a write that matches no row lost a race and
changes nothing (see docs/README-breakers.md for the semantics).

The worker's claim (``jobs.queue.jobs_claim``) is its admission: it consults ``claim_gates``
and takes the half-open trial lease in the claim's transaction. ``jobs.outcomes`` then records
each finished job with ``breaker_record`` (skipping the healthy no-op, ``success_changes_nothing``).
``breaker_admit`` serves callers outside the worker. ``jobs.breaker_storage`` exposes the same row to plain pybreaker users.
"""

from __future__ import annotations

import enum
import logging
import os
import random
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from django.db import connection, transaction
from django.db.models import DateTimeField, F, Q
from django.utils import timezone

from jobs import conf, dependencies, events, logs, notify, retry, validation
from jobs.exceptions import BreakerNotFound, CircuitOpen, InvalidInput, JobFailure, error_text
from jobs.models import (
    Breaker,
    BreakerEvent,
    BreakerEventKind,
    BreakerOverride,
    BreakerState,
    EventKind,
    Job,
    JobStatus,
)

log = logging.getLogger("resilient.breakers")

T = TypeVar("T")

RECENT_ERRORS = 5  # failures quoted in a transition event
MAX_ERROR_CHARS = 1000
MAX_REASON_CHARS = 500
MAX_TTL_SECONDS = 30 * 24 * 3600
HELD_EVENTS_LIMIT = 1000  # held JobEvents written per transition (the first jobs in pop order)
SYSTEM = "system"


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


# --- pure rules ---------------------------------------------------------------------------------


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


def default_owner() -> str:
    """Who holds a trial lease taken outside the worker (e.g. the submission-time validation)."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


# --- rows -----------------------------------------------------------------------------------------

def breakers_ensure(names: list[str] | None = None) -> None:
    """Create the missing rows (every configured dependency by default). Idempotent, race-free."""
    wanted = set(names if names is not None else dependencies.configured())
    missing = wanted - set(Breaker.objects.filter(name__in=wanted).values_list("name", flat=True))
    if missing:
        now = timezone.now()
        Breaker.objects.bulk_create(
            [Breaker(name=n, updated_at=now) for n in sorted(missing)], ignore_conflicts=True
        )


def breaker_row(name: str, *, create_any: bool = False) -> Breaker:
    """The row of ``name``, created for a configured dependency (or for any name a job carries,
    with ``create_any``: a dependency removed from settings keeps its breaker); else
    ``BreakerNotFound``."""
    row = Breaker.objects.filter(name=name).first()
    if row is not None:
        return row
    if not create_any and name not in dependencies.configured():
        raise BreakerNotFound(f"no breaker {name!r}")
    breakers_ensure([name])
    return Breaker.objects.get(name=name)


def claim_gates(*, now: datetime) -> dict[str, tuple[Decision, Breaker]]:
    """Every breaker's decision at ``now``: one small query (the claim path's whole breaker cost).

    The worker reads the gates on every trip, so the rows are built straight from the cursor:
    through the ORM (even ``raw()``) this was a sixth of a drained job's cost (make bench: drain)."""
    rows = _all_rows()
    if not set(dependencies.configured()) <= {row.name for row in rows}:
        breakers_ensure()
        rows = _all_rows()
    return {row.name: (decide(row, now), row) for row in rows}


_FIELDS = Breaker._meta.concrete_fields
_ALL_BREAKERS = f"SELECT {', '.join(f.column for f in _FIELDS)} FROM {Breaker._meta.db_table}"  # noqa: S608
_IS_DATETIME = [isinstance(f, DateTimeField) for f in _FIELDS]


def _aware(value: Any) -> datetime | None:
    """A stored datetime as an aware one (SQLite hands back naive UTC, parsed or as text)."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _all_rows() -> list[Breaker]:
    with connection.cursor() as cursor:
        cursor.execute(_ALL_BREAKERS)
        rows = cursor.fetchall()
    names = [f.attname for f in _FIELDS]
    return [
        Breaker.from_db(connection.alias, names, [_aware(v) if dt else v for v, dt in zip(row, _IS_DATETIME, strict=True)])
        for row in rows
    ]


# --- events ---------------------------------------------------------------------------------------


WARNING_KINDS = {BreakerEventKind.OPENED, BreakerEventKind.REOPENED, BreakerEventKind.FORCED_OPEN}
# Scalar details repeated in the log line (the event keeps them all, e.g. the recent errors).
# (detail -> log field; "level" would clash with the log level.)
LOGGED_DETAILS = {k: k for k in ("rule", "failures", "threshold", "reset_timeout", "retry_after", "retry_at", "job",
                                 "ttl_seconds", "expires_at", "automatic_state", "held")} | {"level": "backoff_level"}


def _event(name: str, kind: str, *, actor: str, at: datetime, from_state: str = "", to_state: str = "",
           reason: str = "", **details: Any) -> BreakerEvent:
    """Append to the breaker's history; every transition and override also logs one line here.

    Every event (counted failure, transition, override, expiry) changes what a dashboard shows,
    so each also sends the dashboards their after-commit hint (dropped if the write rolls back)."""
    notify.dashboard_changed_on_commit()
    if kind != BreakerEventKind.FAILURE:
        logs.breaker_transition(
            name, kind=kind, from_state=from_state or "-", to_state=to_state or "-", actor=actor, reason=reason,
            level=logging.WARNING if kind in WARNING_KINDS else logging.INFO,
            **{LOGGED_DETAILS[k]: details[k] for k in LOGGED_DETAILS if details.get(k) is not None},
        )
    return BreakerEvent.objects.create(
        breaker_id=name, kind=kind, actor=actor, at=at, from_state=from_state, to_state=to_state,
        reason=reason, details=details,
    )


def recent_errors(name: str, *, limit: int = RECENT_ERRORS) -> list[dict[str, Any]]:
    """The last counted failures of ``name``: error text, job id and time."""
    rows = BreakerEvent.objects.filter(breaker_id=name, kind=BreakerEventKind.FAILURE).order_by("-id")[:limit]
    return [{"at": e.at.isoformat(), "job": e.details.get("job"), "error": e.reason} for e in rows]


def _hold_pending(name: str, *, now: datetime, actor: str, why: str, retry_at: datetime | None) -> int:
    """A ``held`` JobEvent for each pending job of ``name`` (capped): its breaker stopped admitting."""
    seqs = list(
        Job.objects.filter(status=JobStatus.PENDING, dependency=name)
        .order_by("-priority", "seq")
        .values_list("seq", flat=True)[:HELD_EVENTS_LIMIT]
    )
    details = {"dependency": name, "why": why, "retry_at": retry_at.isoformat() if retry_at else None}
    events.events_record([(seq, EventKind.HELD, actor, now, details) for seq in seqs])
    return len(seqs)


def hold_if_rejecting(*, job: Job, actor: str, now: datetime | None = None) -> bool:
    """A job that becomes pending while its breaker rejects gets its one ``held`` event now
    (the transition that started the open period could not know it). One primary-key read."""
    now = now or timezone.now()
    row = Breaker.objects.filter(name=job.dependency).first()
    if row is None or decide(row, now) == Decision.ADMIT:
        return False
    override = override_in_force(row, now)
    why = f"breaker forced {override}" if override else f"breaker {row.state}"
    retry_at = row.override_expires_at if override else row.retry_at
    events.event_record(job=job, kind=EventKind.HELD, actor=actor, at=now, dependency=job.dependency, why=why,
                        retry_at=retry_at.isoformat() if retry_at else None)
    logs.job_transition("held", job, why=why, retry_at=retry_at.isoformat() if retry_at else None, actor=actor)
    return True


def _after_transition(name: str, before: Decision, after: Decision, *, now: datetime, actor: str, why: str,
                      retry_at: datetime | None) -> int:
    """Side effects of a change in what callers experience: hold the backlog, or wake the workers."""
    held = 0
    if before == Decision.ADMIT and after != Decision.ADMIT:
        # A new hold period: every pending job gets its one held event now.
        Breaker.objects.filter(name=name).update(held_since=now)
        held = _hold_pending(name, now=now, actor=actor, why=why, retry_at=retry_at)
    if after != Decision.REJECT and before != after:
        notify.wake_workers_on_commit()
    return held


# --- admission ------------------------------------------------------------------------------------


def trial_acquire(*, name: str, owner: str, job_seq: int | None, now: datetime) -> bool:
    """Take the half-open trial lease if nobody holds a live one. One conditional UPDATE."""
    lease = timedelta(seconds=conf.get("LEASE_SECONDS"))
    no_override = Q(override=BreakerOverride.NONE) | Q(override_expires_at__lte=now)
    ready = Q(state=BreakerState.OPEN) & (Q(retry_at__isnull=True) | Q(retry_at__lte=now))
    free = Q(state=BreakerState.HALF_OPEN) & (Q(trial_expires_at__isnull=True) | Q(trial_expires_at__lte=now))
    with transaction.atomic():
        previous = Breaker.objects.filter(name=name).values("state", "trial_owner", "trial_expires_at").first()
        won = Breaker.objects.filter(no_override, ready | free, name=name).update(
            state=BreakerState.HALF_OPEN, trial_owner=owner, trial_job=job_seq, trial_expires_at=now + lease,
            successes=0, updated_at=now,
        )
        if won:
            why = "retry-at reached: one trial call admitted"
            if previous and previous["state"] == BreakerState.HALF_OPEN and previous["trial_owner"]:
                why = f"previous trial lease of {previous['trial_owner']} expired: a new trial call admitted"
            job = Job.objects.filter(seq=job_seq).values_list("uuid", flat=True).first() if job_seq else None
            _event(name, BreakerEventKind.HALF_OPENED, actor=owner, at=now,
                   from_state=previous["state"] if previous else "", to_state=BreakerState.HALF_OPEN,
                   reason=why, job=str(job) if job else None)
    return bool(won)


def trial_renew(*, name: str, owner: str, now: datetime | None = None) -> bool:
    """Push the trial lease forward while the trial job runs (with its job lease)."""
    now = now or timezone.now()
    lease = timedelta(seconds=conf.get("LEASE_SECONDS"))
    return bool(
        Breaker.objects.filter(name=name, state=BreakerState.HALF_OPEN, trial_owner=owner).update(
            trial_expires_at=now + lease
        )
    )


def breaker_admit(*, name: str, owner: str, job_seq: int | None = None, now: datetime | None = None) -> Admission:
    """Let one call to ``name`` through, or raise ``CircuitOpen``. One read when closed."""
    now = now or timezone.now()
    row = breaker_row(name, create_any=True)
    decision = decide(row, now)
    if decision == Decision.ADMIT:
        return Admission(dependency=name, owner=owner, job_seq=job_seq)
    mine = row.state == BreakerState.HALF_OPEN and row.trial_owner == owner and row.trial_job == job_seq
    if mine and not override_in_force(row, now):
        return Admission(dependency=name, owner=owner, trial=True, job_seq=job_seq)
    if decision == Decision.TRIAL and trial_acquire(name=name, owner=owner, job_seq=job_seq, now=now):
        return Admission(dependency=name, owner=owner, trial=True, job_seq=job_seq)
    state = effective_state(row, now)
    if override_in_force(row, now):
        state = f"forced {state}"
    exc = CircuitOpen(dependency=name, state=state, retry_at=row.retry_at.isoformat() if row.retry_at else None)
    exc.held_since = row.held_since
    raise exc


# --- outcomes -------------------------------------------------------------------------------------


def _is_trial(row: Breaker, admission: Admission | None, now: datetime) -> bool:
    """Does this outcome decide the half-open trial? Yes for the lease holder; and while forced
    closed, any call made when the automatic machine would have admitted a trial (shadow mode)."""
    if admission is not None and admission.trial:
        return (row.state == BreakerState.HALF_OPEN and row.trial_owner == admission.owner
                and row.trial_job == admission.job_seq)
    if override_in_force(row, now) == BreakerOverride.CLOSED:
        return automatic_decision(row, now) == Decision.TRIAL
    return False


def _slow(dep: dependencies.Dependency, duration: float | None) -> bool:
    """A call slower than the dependency's ``slow_call_seconds`` counts as a failure."""
    return dep.slow_call_seconds > 0 and duration is not None and duration > dep.slow_call_seconds


def success_changes_nothing(row: Breaker | None, dep: dependencies.Dependency | None, duration: float | None) -> bool:
    """Would ``breaker_record`` of this (non-trial) success write nothing? True when the breaker
    is closed with no failure counted and the call was not slow: the healthy path, which the
    worker then skips without another read."""
    return (row is not None and dep is not None and row.state == BreakerState.CLOSED and not row.failures
            and not _slow(dep, duration))


def breaker_record(
    *,
    name: str,
    outcome: Outcome,
    admission: Admission | None = None,
    duration: float | None = None,
    error: str = "",
    job_id: str | None = None,
    retry_after: float | None = None,
    actor: str = SYSTEM,
    now: datetime | None = None,
    rand: Callable[[], float] = random.random,
) -> Outcome:
    """Record one call's outcome. Returns the outcome as counted (a slow success is a failure).

    The closed, healthy path costs one read and no write.
    """
    now = now or timezone.now()
    dep = dependencies.configured().get(name) or dependencies.Dependency(name=name)
    if outcome == Outcome.SUCCESS and _slow(dep, duration):
        outcome = Outcome.FAILURE
        error = f"slow call: {duration:.3f}s > slow_call_seconds {dep.slow_call_seconds:g}s"
    error = error[:MAX_ERROR_CHARS]
    for _ in range(5):  # a lost race re-reads the row and decides again
        row = breaker_row(name, create_any=True)
        done = _apply(row, dep, outcome, admission, now=now, duration=duration, error=error, job_id=job_id,
                      retry_after=retry_after, actor=actor, rand=rand)
        if done:
            return outcome
    log.warning("breaker %s: outcome %s lost 5 races in a row; dropped", name, outcome.value)
    return outcome


def _apply(row: Breaker, dep: dependencies.Dependency, outcome: Outcome, admission: Admission | None, *,
           now: datetime, duration: float | None, error: str, job_id: str | None, retry_after: float | None,
           actor: str, rand: Callable[[], float]) -> bool:
    """One attempt at recording; False when a concurrent change made our conditional UPDATE miss."""
    trial = _is_trial(row, admission, now)
    if outcome == Outcome.NEUTRAL:
        if trial and admission is not None and admission.trial:
            _trial_abandon(row, admission, now=now, actor=actor, job_id=job_id)
        return True
    if outcome == Outcome.SUCCESS:
        if trial:
            return _close(row, now=now, actor=actor, job_id=job_id, duration=duration)
        if row.state == BreakerState.CLOSED and row.failures:
            Breaker.objects.filter(name=row.name, state=BreakerState.CLOSED, failures__gt=0).update(
                failures=0, updated_at=now
            )
        return True
    # A counted failure.
    with transaction.atomic():
        _event(row.name, BreakerEventKind.FAILURE, actor=actor, at=now, reason=error, job=job_id,
               duration=duration, state=row.state, trial=trial)
        if trial:
            if not _reopen(row, dep, now=now, actor=actor, retry_after=retry_after, rand=rand, job_id=job_id):
                transaction.set_rollback(True)
                return False
            return True
        if row.state == BreakerState.CLOSED:
            Breaker.objects.filter(name=row.name, state=BreakerState.CLOSED).update(
                failures=F("failures") + 1, updated_at=now
            )
            _trip(row.name, dep, now=now, actor=actor, retry_after=retry_after, rand=rand)
            return True
        # Open or half-open and not the trial: a call admitted before the trip finished late.
        # It says nothing new, except that Retry-After can push retry-at further out.
        if retry_after:
            Breaker.objects.filter(
                name=row.name, state=BreakerState.OPEN, retry_at__lt=now + timedelta(seconds=retry_after)
            ).update(retry_at=now + timedelta(seconds=retry_after), updated_at=now)
        return True


def _trip(name: str, dep: dependencies.Dependency, *, now: datetime, actor: str, retry_after: float | None,
          rand: Callable[[], float]) -> bool:
    """closed -> open once the consecutive failures reach the threshold. Only one process wins."""
    delay = reset_timeout_seconds(dep, 0, rand)
    if retry_after:
        delay = max(delay, retry_after)
    retry_at = now + timedelta(seconds=delay)
    row = Breaker.objects.get(name=name)
    won = Breaker.objects.filter(
        name=name, state=BreakerState.CLOSED, failures__gte=dep.failure_threshold
    ).update(state=BreakerState.OPEN, opened_at=now, retry_at=retry_at, level=0, period=F("period") + 1,
             trial_owner="", trial_job=None, trial_expires_at=None, updated_at=now)
    if not won:
        return False
    before = decide(row, now)
    row.state, row.retry_at = BreakerState.OPEN, retry_at
    after = decide(row, now)
    held = _after_transition(name, before, after, now=now, actor=actor, why="breaker opened", retry_at=retry_at)
    failures = row.failures
    _event(name, BreakerEventKind.OPENED, actor=actor, at=now, from_state=BreakerState.CLOSED,
           to_state=BreakerState.OPEN,
           reason=f"{failures} consecutive failures reached the threshold of {dep.failure_threshold}",
           rule="failure_threshold", failures=failures, threshold=dep.failure_threshold,
           reset_timeout=round(delay, 3), retry_after=retry_after, retry_at=retry_at.isoformat(),
           recent_errors=recent_errors(name), held=held, shadow=after == Decision.ADMIT)
    return True


def _reopen(row: Breaker, dep: dependencies.Dependency, *, now: datetime, actor: str, retry_after: float | None,
            rand: Callable[[], float], job_id: str | None) -> bool:
    """The trial failed: open again with the reset timeout doubled (capped, jittered)."""
    level = row.level + 1
    delay = reset_timeout_seconds(dep, level, rand)
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
    _event(row.name, BreakerEventKind.REOPENED, actor=actor, at=now, from_state=row.state,
           to_state=BreakerState.OPEN,
           reason=f"trial call failed; reset timeout doubled to {min(uncapped, dep.max_reset_timeout):g}s"
           + (" (capped)" if uncapped >= dep.max_reset_timeout else "") + " before jitter",
           rule="trial_failed", level=level, reset_timeout=round(delay, 3), retry_after=retry_after,
           retry_at=retry_at.isoformat(), job=job_id, recent_errors=recent_errors(row.name))
    return True


def _close(row: Breaker, *, now: datetime, actor: str, job_id: str | None, duration: float | None) -> bool:
    """The trial succeeded: closed, counters and backoff reset; the backlog drains."""
    with transaction.atomic():
        won = Breaker.objects.filter(
            name=row.name, state=row.state, level=row.level, trial_owner=row.trial_owner,
            trial_job=row.trial_job,
        ).update(state=BreakerState.CLOSED, failures=0, successes=0, level=0, opened_at=None, retry_at=None,
                 trial_owner="", trial_job=None, trial_expires_at=None, updated_at=now)
        if not won:
            return False
        shadow = override_in_force(row, now) == BreakerOverride.CLOSED
        _event(row.name, BreakerEventKind.CLOSED, actor=actor, at=now, from_state=row.state,
               to_state=BreakerState.CLOSED,
               reason="a call succeeded while forced closed (shadow state closes)" if shadow
               else "trial call succeeded", rule="trial_succeeded", job=job_id, duration=duration,
               level=row.level)
        notify.wake_workers_on_commit()
    return True


def _trial_abandon(row: Breaker, admission: Admission, *, now: datetime, actor: str, job_id: str | None) -> None:
    """The trial ended without a verdict (a 4xx, a shutdown): free the lease for the next trial."""
    with transaction.atomic():
        freed = Breaker.objects.filter(
            name=row.name, state=BreakerState.HALF_OPEN, trial_owner=admission.owner, trial_job=admission.job_seq
        ).update(trial_owner="", trial_job=None, trial_expires_at=None, updated_at=now)
        if freed:
            _event(row.name, BreakerEventKind.TRIAL_ABANDONED, actor=actor, at=now,
                   from_state=BreakerState.HALF_OPEN, to_state=BreakerState.HALF_OPEN,
                   reason="the trial call ended without a verdict on the dependency", job=job_id)
            notify.wake_workers_on_commit()


def call_protected(name: str, func: Callable[[], T], *, owner: str | None = None, actor: str = SYSTEM) -> T:
    """Run the sync ``func`` through ``name``'s breaker (admit, call, record). Raises CircuitOpen.

    No lock is held during the call (unlike pybreaker's ``call()``), so concurrent callers in a
    process do not serialise.
    """
    import time

    admission = breaker_admit(name=name, owner=owner or default_owner())
    started = time.monotonic()
    try:
        result = func()
    except BaseException as exc:
        outcome = classify(exc)
        breaker_record(name=name, outcome=outcome, admission=admission, duration=time.monotonic() - started,
                       error=error_text(exc),
                       retry_after=getattr(exc, "retry_after", None), actor=actor)
        raise
    breaker_record(name=name, outcome=Outcome.SUCCESS, admission=admission,
                   duration=time.monotonic() - started, actor=actor)
    return result


# --- operator overrides ---------------------------------------------------------------------------


def _check_override_input(reason: Any, ttl_seconds: Any) -> tuple[str, float | None]:
    if reason is None:
        reason = ""
    if not isinstance(reason, str):
        raise InvalidInput("reason", "must be a string")
    if len(reason) > MAX_REASON_CHARS:
        raise InvalidInput("reason", f"must be at most {MAX_REASON_CHARS} characters")
    validation.check_text("reason", reason)
    if ttl_seconds is not None:
        if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int | float):
            raise InvalidInput("ttl_seconds", "must be a number of seconds")
        if not 0 < ttl_seconds <= MAX_TTL_SECONDS:
            raise InvalidInput("ttl_seconds", f"must be more than 0 and at most {MAX_TTL_SECONDS}")
        ttl_seconds = float(ttl_seconds)
    return reason, ttl_seconds


def _set_override(*, name: Any, override: str, actor: str, reason: Any, ttl_seconds: Any,
                  now: datetime | None) -> Breaker:
    if not isinstance(name, str):
        raise BreakerNotFound(f"no breaker {name!r}")
    reason, ttl = _check_override_input(reason, ttl_seconds)
    now = now or timezone.now()
    expires = now + timedelta(seconds=ttl) if ttl is not None else None
    with transaction.atomic():
        row = breaker_row(name)
        before = decide(row, now)
        previous = override_in_force(row, now)
        before_state = f"forced {previous}" if previous else row.state
        Breaker.objects.filter(name=name).update(
            override=override, override_reason=reason if override else "",
            override_actor=actor if override else "", override_at=now if override else None,
            override_expires_at=expires, updated_at=now,
        )
        row.refresh_from_db()
        after = decide(row, now)
        kind = {BreakerOverride.OPEN: BreakerEventKind.FORCED_OPEN, BreakerOverride.CLOSED: BreakerEventKind.FORCED_CLOSED}
        why = {BreakerOverride.OPEN: f"forced open by {actor}", BreakerOverride.CLOSED: f"forced closed by {actor}"}
        held = _after_transition(name, before, after, now=now, actor=actor,
                                 why=why.get(override, f"released by {actor}"), retry_at=expires or row.retry_at)
        _event(name, kind.get(override, BreakerEventKind.RELEASED), actor=actor, at=now,
               from_state=before_state, to_state=effective_state(row, now), reason=reason,
               ttl_seconds=ttl, expires_at=expires.isoformat() if expires else None,
               automatic_state=row.state, held=held)
    return row


def breaker_force_open(*, name: Any, actor: str, reason: Any = "", ttl_seconds: Any = None,
                       now: datetime | None = None) -> Breaker:
    """Reject every call to ``name`` until released (or ``ttl_seconds`` pass). Outcomes still count."""
    return _set_override(name=name, override=BreakerOverride.OPEN, actor=actor, reason=reason,
                         ttl_seconds=ttl_seconds, now=now)


def breaker_force_closed(*, name: Any, actor: str, reason: Any = "", ttl_seconds: Any = None,
                         now: datetime | None = None) -> Breaker:
    """Admit every call to ``name``; failures are still counted (shadow state) but never trip it."""
    return _set_override(name=name, override=BreakerOverride.CLOSED, actor=actor, reason=reason,
                         ttl_seconds=ttl_seconds, now=now)


def breaker_release(*, name: Any, actor: str, reason: Any = "", ttl_seconds: Any = None,
                    now: datetime | None = None) -> Breaker:
    """Back to the automatic state."""
    if ttl_seconds is not None:
        raise InvalidInput("ttl_seconds", "a release takes effect at once; ttl_seconds is not allowed")
    return _set_override(name=name, override=BreakerOverride.NONE, actor=actor, reason=reason,
                         ttl_seconds=None, now=now)


def breakers_expire_overrides(*, actor: str = SYSTEM, now: datetime | None = None) -> int:
    """Lift overrides whose TTL has passed (record it). Decisions already ignore expired overrides;
    this makes the row and the audit trail say so."""
    now = now or timezone.now()
    lifted = 0
    for row in Breaker.objects.filter(override_expires_at__lte=now).exclude(override=BreakerOverride.NONE):
        with transaction.atomic():
            won = Breaker.objects.filter(
                name=row.name, override=row.override, override_expires_at=row.override_expires_at
            ).update(override=BreakerOverride.NONE, override_reason="", override_actor="", override_at=None,
                     override_expires_at=None, updated_at=now)
            if not won:
                continue
            before = Decision.REJECT if row.override == BreakerOverride.OPEN else Decision.ADMIT
            row.override = BreakerOverride.NONE
            after = decide(row, now)
            held = _after_transition(row.name, before, after, now=now, actor=actor,
                                     why="override expired", retry_at=row.retry_at)
            _event(row.name, BreakerEventKind.OVERRIDE_EXPIRED, actor=actor, at=now,
                   from_state=f"forced {'open' if before == Decision.REJECT else 'closed'}",
                   to_state=row.state, reason=f"the override set by {row.override_actor or 'an operator'} expired",
                   automatic_state=row.state, held=held)
            lifted += 1
    return lifted
