"""A breaker's history: BreakerEvents, the log line of each transition, the recent counted failures."""

from __future__ import annotations

import functools
import logging
from datetime import datetime
from typing import Any

from django.db import transaction

from jobs import counters, logs, notify
from jobs.models import BreakerEvent, BreakerEventKind, CounterMetric

RECENT_ERRORS = 5  # failures quoted in a transition event

WARNING_KINDS = {BreakerEventKind.OPENED, BreakerEventKind.REOPENED, BreakerEventKind.FORCED_OPEN}
# Scalar details repeated in the log line (the event keeps them all, e.g. the recent errors).
# (detail -> log field; "level" would clash with the log level.)
LOGGED_DETAILS = {k: k for k in ("rule", "failures", "threshold", "reset_timeout", "retry_after", "retry_at", "job",
                                 "ttl_seconds", "expires_at", "automatic_state", "held")} | {"level": "backoff_level"}


def breaker_event_record(name: str, kind: str, *, actor: str, at: datetime, from_state: str = "",
                         to_state: str = "", reason: str = "", **details: Any) -> BreakerEvent:
    """Append to the breaker's history; every transition and override also logs one line.

    Every event (counted failure, transition, override, expiry) changes what a dashboard shows,
    so each also sends the dashboards their after-commit hint. The log line too leaves after
    commit: a transition whose transaction rolls back (a lost race) never happened."""
    notify.dashboard_changed_on_commit()
    if kind != BreakerEventKind.FAILURE:
        counters.counter_add(CounterMetric.BREAKER_TRANSITIONS, name, kind)  # pruning events must not lower it
        transaction.on_commit(functools.partial(
            logs.breaker_transition,
            name, kind=kind, from_state=from_state or "-", to_state=to_state or "-", actor=actor, reason=reason,
            level=logging.WARNING if kind in WARNING_KINDS else logging.INFO,
            **{LOGGED_DETAILS[k]: details[k] for k in LOGGED_DETAILS if details.get(k) is not None},
        ))
    return BreakerEvent.objects.create(
        breaker_id=name, kind=kind, actor=actor, at=at, from_state=from_state, to_state=to_state,
        reason=reason, details=details,
    )


def recent_errors(name: str, *, limit: int = RECENT_ERRORS) -> list[dict[str, Any]]:
    """The last counted failures of ``name``: error text, job id and time."""
    rows = BreakerEvent.objects.filter(breaker_id=name, kind=BreakerEventKind.FAILURE).order_by("-id")[:limit]
    return [{"at": e.at.isoformat(), "job": e.details.get("job"), "error": e.reason} for e in rows]
