"""Operator overrides: force a breaker open or closed (optionally for a while), release it, expire it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from jobs import validation
from jobs.breakers import history, holds, rules, store
from jobs.exceptions import BreakerNotFound, InvalidInput
from jobs.models import Breaker, BreakerEventKind, BreakerOverride

MAX_REASON_CHARS = 500
MAX_TTL_SECONDS = 30 * 24 * 3600


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


def _override_set(*, name: Any, override: str, actor: str, reason: Any, ttl_seconds: Any,
                  now: datetime | None) -> Breaker:
    if not isinstance(name, str):
        raise BreakerNotFound(f"no breaker {name!r}")
    reason, ttl = _check_override_input(reason, ttl_seconds)
    now = now or timezone.now()
    expires = now + timedelta(seconds=ttl) if ttl is not None else None
    with transaction.atomic():
        row = store.breaker_row(name)
        before = rules.decide(row, now)
        previous = rules.override_in_force(row, now)
        before_state = f"forced {previous}" if previous else row.state
        Breaker.objects.filter(name=name).update(
            override=override, override_reason=reason if override else "",
            override_actor=actor if override else "", override_at=now if override else None,
            override_expires_at=expires, updated_at=now,
        )
        row.refresh_from_db()
        after = rules.decide(row, now)
        kind = {BreakerOverride.OPEN: BreakerEventKind.FORCED_OPEN, BreakerOverride.CLOSED: BreakerEventKind.FORCED_CLOSED}
        why = {BreakerOverride.OPEN: f"forced open by {actor}", BreakerOverride.CLOSED: f"forced closed by {actor}"}
        held = holds.decision_changed(name=name, before=before, after=after, now=now, actor=actor,
                                      why=why.get(override, f"released by {actor}"), retry_at=expires or row.retry_at)
        history.breaker_event_record(
            name, kind.get(override, BreakerEventKind.RELEASED), actor=actor, at=now,
            from_state=before_state, to_state=rules.effective_state(row, now), reason=reason,
            ttl_seconds=ttl, expires_at=expires.isoformat() if expires else None,
            automatic_state=row.state, held=held,
        )
    return row


def breaker_force_open(*, name: Any, actor: str, reason: Any = "", ttl_seconds: Any = None,
                       now: datetime | None = None) -> Breaker:
    """Reject every call to ``name`` until released (or ``ttl_seconds`` pass). Outcomes still count."""
    return _override_set(name=name, override=BreakerOverride.OPEN, actor=actor, reason=reason,
                         ttl_seconds=ttl_seconds, now=now)


def breaker_force_closed(*, name: Any, actor: str, reason: Any = "", ttl_seconds: Any = None,
                         now: datetime | None = None) -> Breaker:
    """Admit every call to ``name``; failures are still counted (shadow state) but never trip it."""
    return _override_set(name=name, override=BreakerOverride.CLOSED, actor=actor, reason=reason,
                         ttl_seconds=ttl_seconds, now=now)


def breaker_release(*, name: Any, actor: str, reason: Any = "", ttl_seconds: Any = None,
                    now: datetime | None = None) -> Breaker:
    """Back to the automatic state."""
    if ttl_seconds is not None:
        raise InvalidInput("ttl_seconds", "a release takes effect at once; ttl_seconds is not allowed")
    return _override_set(name=name, override=BreakerOverride.NONE, actor=actor, reason=reason,
                         ttl_seconds=None, now=now)


def breakers_expire_overrides(*, actor: str = rules.SYSTEM, now: datetime | None = None) -> int:
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
            before = rules.Decision.REJECT if row.override == BreakerOverride.OPEN else rules.Decision.ADMIT
            row.override = BreakerOverride.NONE
            after = rules.decide(row, now)
            held = holds.decision_changed(name=row.name, before=before, after=after, now=now, actor=actor,
                                          why="override expired", retry_at=row.retry_at)
            history.breaker_event_record(
                row.name, BreakerEventKind.OVERRIDE_EXPIRED, actor=actor, at=now,
                from_state=f"forced {'open' if before == rules.Decision.REJECT else 'closed'}",
                to_state=row.state, reason=f"the override set by {row.override_actor or 'an operator'} expired",
                automatic_state=row.state, held=held,
            )
            lifted += 1
    return lifted
