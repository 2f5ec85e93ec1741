"""Admission: let a call through a breaker, the half-open trial lease (take it, renew it), and the
rate limit's next slot."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from jobs import conf, dependencies
from jobs.breakers import flow, history, rules, sql, store
from jobs.exceptions import CircuitOpen
from jobs.models import Breaker, BreakerEventKind, BreakerOverride, BreakerState, Job


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
            history.breaker_event_record(
                name, BreakerEventKind.HALF_OPENED, actor=owner, at=now,
                from_state=previous["state"] if previous else "", to_state=BreakerState.HALF_OPEN,
                reason=why, job=str(job) if job else None,
            )
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


def breaker_admit(*, name: str, owner: str, job_seq: int | None = None, now: datetime | None = None) -> rules.Admission:
    """Let one call to ``name`` through, or raise ``CircuitOpen``. One read when closed."""
    now = now or timezone.now()
    row = store.breaker_row(name, create_any=True)
    decision = rules.decide(row, now)
    if decision == rules.Decision.ADMIT:
        return rules.Admission(dependency=name, owner=owner, job_seq=job_seq)
    mine = row.state == BreakerState.HALF_OPEN and row.trial_owner == owner and row.trial_job == job_seq
    if mine and not rules.override_in_force(row, now):
        return rules.Admission(dependency=name, owner=owner, trial=True, job_seq=job_seq)
    if decision == rules.Decision.TRIAL and trial_acquire(name=name, owner=owner, job_seq=job_seq, now=now):
        return rules.Admission(dependency=name, owner=owner, trial=True, job_seq=job_seq)
    state = rules.effective_state(row, now)
    if rules.override_in_force(row, now):
        state = f"forced {state}"
    exc = CircuitOpen(dependency=name, state=state, retry_at=row.retry_at.isoformat() if row.retry_at else None)
    exc.held_since = row.held_since
    raise exc


def rate_settle(*, row: Breaker, rate: dependencies.Rate, now: datetime, starts: int) -> None:
    """A claim that took ``rate_take``'s slots but started only ``starts`` calls gives the rest
    back: the rate limit's time is set to ``starts`` slots after the row's (none: the row's own).
    The claim holds the row's lock (SQLite: its write transaction), so nothing took slots since."""
    value = row.rate_tat if starts == 0 else flow.rate_next(row, rate, now.timestamp(), starts)
    with connection.cursor() as cursor:
        cursor.execute(sql.RATE_SET, [value, row.name])


def rate_take(*, row: Breaker, rate: dependencies.Rate, now: datetime, starts: int = 1) -> bool:
    """Take the rate limit's next ``starts`` start slots of ``row``'s dependency. One conditional
    UPDATE: of two claims that read the same free slot, only one moves it on (exact across processes)."""
    epoch = now.timestamp()
    with connection.cursor() as cursor:
        cursor.execute(sql.RATE_TAKE, [flow.rate_next(row, rate, epoch, starts), row.name, epoch])
        return cursor.rowcount == 1
