"""Operators change a dependency's flow-control limits live: the cap, the rate limit, the adaptive
bounds, or back to the configured ones. Audited; every worker honours it at its next claim."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from jobs import dependencies, notify, validation
from jobs.breakers import flow, history, store
from jobs.breakers.overrides import MAX_REASON_CHARS
from jobs.exceptions import BreakerNotFound, InvalidInput
from jobs.models import Breaker, BreakerEventKind

FIELDS = ("max_concurrency", "rate_limit", "adaptive_min", "adaptive_max", "reset")


def limits_view(limits: flow.Limits) -> dict[str, Any]:
    """Limits as JSON: what the API, the events and the dashboard show."""
    return {
        "max_concurrency": limits.max_concurrency,
        "rate_limit": str(limits.rate) if limits.rate else None,
        "adaptive": {"min": limits.adaptive.min, "max": limits.adaptive.max} if limits.adaptive else None,
    }


def _checked(dep: dependencies.Dependency, changes: dict[str, Any]) -> dict[str, Any]:
    """``changes`` as live limits to store, each value checked (InvalidInput names the field)."""
    unknown = set(changes) - set(FIELDS)
    if unknown:
        raise InvalidInput(sorted(unknown)[0], f"unknown field; known: {', '.join(FIELDS)}")
    live: dict[str, Any] = {}
    if "max_concurrency" in changes and changes["max_concurrency"] is not None:
        try:
            live["max_concurrency"] = dependencies.parse_max_concurrency(changes["max_concurrency"])
        except ValueError as exc:
            raise InvalidInput("max_concurrency", f"{exc} (null: no cap)") from None
    elif "max_concurrency" in changes:
        live["max_concurrency"] = None
    if "rate_limit" in changes and changes["rate_limit"] is not None:
        try:
            live["rate_limit"] = str(dependencies.parse_rate(changes["rate_limit"]))
        except ValueError as exc:
            raise InvalidInput("rate_limit", f"{exc} (null: no limit)") from None
    elif "rate_limit" in changes:
        live["rate_limit"] = None
    for key in ("adaptive_min", "adaptive_max"):
        if key not in changes:
            continue
        if dep.concurrency is None:
            raise InvalidInput(key, f"dependency {dep.name!r} has no adaptive concurrency configured")
        try:
            live[key] = dependencies.parse_max_concurrency(changes[key])
        except ValueError as exc:
            raise InvalidInput(key, str(exc)) from None
    return live


def _reason(reason: Any) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("reason", "is required: say why the limits change")
    if len(reason) > MAX_REASON_CHARS:
        raise InvalidInput("reason", f"must be at most {MAX_REASON_CHARS} characters")
    validation.check_text("reason", reason)
    return reason


def breaker_limits_change(*, name: Any, actor: str, reason: Any, changes: dict[str, Any],
                          now: datetime | None = None) -> Breaker:
    """Set ``name``'s live limits (``changes``: fields of ``FIELDS``; null lifts a limit;
    ``reset: true`` goes back to the configured limits). One transaction, one LIMITS_CHANGED event
    with the old and new limits in force; the workers read the row at their next claim."""
    if not isinstance(name, str):
        raise BreakerNotFound(f"no breaker {name!r}")
    reason = _reason(reason)
    reset = changes.get("reset", False)
    if not isinstance(reset, bool):
        raise InvalidInput("reset", "must be true or false")
    now = now or timezone.now()
    with transaction.atomic():
        store.breaker_row(name)  # BreakerNotFound for an unknown name; creates a configured one's row
        row = Breaker.objects.select_for_update().get(name=name)
        dep = dependencies.configured().get(name) or dependencies.Dependency(name=name)
        wanted = {k: v for k, v in changes.items() if k != "reset"}
        if reset and wanted:
            raise InvalidInput("reset", "goes back to the configured limits: send no other limit with it")
        if not reset and not wanted:
            raise InvalidInput("non_field_errors", f"nothing to change: send one of {', '.join(FIELDS)}")
        live = {} if reset else {**row.limits, **_checked(dep, wanted)}
        before = flow.limits(row, dep)
        candidate = Breaker(name=name, limits=live)
        after = flow.limits(candidate, dep)
        if after.adaptive is not None and after.adaptive.min > after.adaptive.max:
            raise InvalidInput("adaptive_min", f"must not be above adaptive_max ({after.adaptive.max})")
        Breaker.objects.filter(name=name).update(limits=live, updated_at=now)
        row.limits = live
        old, new = limits_view(before), limits_view(after)
        history.breaker_event_record(
            name, BreakerEventKind.LIMITS_CHANGED, actor=actor, at=now, reason=reason,
            old=old, new=new, live=live, back_to_configured=reset,
        )
        notify.wake_workers_on_commit()  # a raised limit admits more at once
    return row
