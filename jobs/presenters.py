"""Output shapes of breakers and jobs, one per thing: the API, ``/circuit``, ``/metrics``' peers,
the admin and the dashboard snapshot all show what these build.

Presenters read through ``jobs.selectors`` and never write: a caller that needs a configured
dependency's breaker row to exist creates it first (``breakers.breaker_row``/``breakers_ensure``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone

from jobs import access, breakers, selectors
from jobs.models import Breaker, BreakerEvent, Job, JobEvent

# Error and reason texts in dashboard rows are cut here: a full traceback would swamp a socket frame.
ERROR_CHARS = 300

# Breaker event details that name jobs or quote their errors (other users' URLs).
PRIVATE_BREAKER_DETAILS = frozenset({"recent_errors", "job", "last_error", "error"})


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


# --- breakers -----------------------------------------------------------------------------------


def breaker_view(row: Breaker, *, now: datetime, held_counts: dict[str, int],
                 in_flight: dict[str, int] | None = None, bounds: dict[str, str] | None = None) -> dict[str, Any]:
    """A breaker as the API shows it: effective state, shadow (automatic) state, override, counts,
    flow control. ``held_counts``: pending jobs by dependency; ``bounds``: how each was counted
    (``selectors.Bounded.bound``; exact when absent)."""
    dep = selectors.breaker_policy(name=row.name)
    override = breakers.override_in_force(row, now)
    decision = breakers.decide(row, now)
    retry_in = (row.retry_at - now).total_seconds() if row.retry_at and row.state == "open" else None
    trial_live = row.state == "half-open" and row.trial_expires_at and row.trial_expires_at > now
    return {
        "name": row.name,
        "state": breakers.effective_state(row, now),
        "shadow_state": row.state,
        "override": {
            "state": override,
            "reason": row.override_reason,
            "actor": row.override_actor,
            "at": _iso(row.override_at),
            "expires_at": _iso(row.override_expires_at),
        } if override else None,
        "failures": row.failures,
        "threshold": dep.failure_threshold,
        "opened_at": _iso(row.opened_at),
        "retry_at": _iso(row.retry_at),
        "retry_in_ms": max(0, round(retry_in * 1000)) if retry_in is not None else None,
        "ready_to_test": decision == breakers.Decision.TRIAL,
        "held": held_counts.get(row.name, 0) if decision != breakers.Decision.ADMIT else 0,
        "pending": held_counts.get(row.name, 0),
        "pending_bound": (bounds or {}).get(row.name, selectors.EXACT),
        "trial": {
            "owner": row.trial_owner,
            "job": selectors.job_uuid_by_seq(seq=row.trial_job),
            "expires_at": _iso(row.trial_expires_at),
        } if trial_live else None,
        "level": row.level,
        "reset_timeout": dep.reset_timeout,
        "max_reset_timeout": dep.max_reset_timeout,
        "slow_call_seconds": dep.slow_call_seconds,
        "updated_at": _iso(row.updated_at),
        "flow": selectors.breaker_flow(row=row, now=now, in_flight=(in_flight or {}).get(row.name, 0),
                                       pending=held_counts.get(row.name, 0)),
    }


def _pending(names: list[str]) -> tuple[dict[str, int], dict[str, str]]:
    """Pending jobs of each of ``names`` (bounded: exact to ``EXACT_COUNT_LIMIT``, PostgreSQL's
    estimate beyond) and how each was counted."""
    counts = selectors.pending_by_dependency_bounded(names=names)
    return {name: c.n for name, c in counts.items()}, {name: c.bound for name, c in counts.items()}


def breaker_list() -> list[dict[str, Any]]:
    """Every breaker row in the shape of ``breaker_view``, by name."""
    now = timezone.now()
    rows = selectors.breaker_rows()
    counts, bounds = _pending([row.name for row in rows])
    in_flight = selectors.in_flight_by_dependency(now=now)
    return [breaker_view(row, now=now, held_counts=counts, in_flight=in_flight, bounds=bounds) for row in rows]


def breaker_details_public(details: dict[str, Any]) -> dict[str, Any]:
    """A breaker event's details without the parts that only view-all holders may see."""
    return {k: v for k, v in details.items() if k not in PRIVATE_BREAKER_DETAILS}


def breaker_detail(*, row: Breaker, events: int = 20, user: Any = None) -> dict[str, Any]:
    """One breaker with its recent transitions and overrides, and its last counted errors.

    The errors name other users' jobs and URLs: only ``jobs.view_all_jobs`` (and the system) see them."""
    now = timezone.now()
    sees_all = access.can_view_all(user)
    counts, bounds = _pending([row.name])
    in_flight = selectors.in_flight_by_dependency(now=now, dependency=row.name)
    recent = selectors.breaker_transitions(row=row, limit=events)
    return {
        **breaker_view(row, now=now, held_counts=counts, in_flight=in_flight, bounds=bounds),
        "recent_errors": breakers.recent_errors(row.name) if sees_all else [],
        "events": [
            {"kind": e.kind, "at": e.at.isoformat(), "actor": e.actor, "from_state": e.from_state,
             "to_state": e.to_state, "reason": e.reason,
             "details": e.details if sees_all else breaker_details_public(e.details)}
            for e in recent
        ],
    }


def breaker_summary(*, row: Breaker) -> dict[str, Any]:
    """A breaker as an override's answer shows it: the detail without events or errors."""
    view = breaker_detail(row=row, events=0)
    view.pop("events")
    view.pop("recent_errors")
    return view


def circuit_status(*, row: Breaker, user: Any = None) -> dict[str, Any]:
    """The write-up's ``GET /circuit``: its state string plus the structured fields."""
    view = breaker_detail(row=row, events=0, user=user)
    view.pop("events")
    if view["override"] and view["state"] == "open":
        text = "Open (forced)"
    elif view["state"] == "closed":
        text = f"Closed (failures: {view['failures']})"
    elif view["state"] == "half-open":
        text = "Half-Open"
    elif view["ready_to_test"]:
        text = "Open (ready to test)"
    else:
        text = f"Open (reopening in {view['retry_in_ms']} ms)"
    return {**view, "status": view["state"], "state": text}


# --- dashboard rows -----------------------------------------------------------------------------


def job_row(job: Job) -> dict[str, Any]:
    """A job as the dashboard shows it (no payload or result: they can be large)."""
    return {
        "id": str(job.uuid),
        "kind": job.kind,
        "dependency": job.dependency,
        "priority": job.priority,
        "status": job.status,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "run_after": _iso(job.run_after),
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
        "last_error": job.last_error[:ERROR_CHARS],
        "lease_owner": job.lease_owner,
    }


def job_event_row(event: JobEvent) -> dict[str, Any]:
    """A job event as the dashboard's feed shows it."""
    return {
        "id": event.id,
        "source": "job",
        "job": str(event.job.uuid),
        "kind": event.kind,
        "at": _iso(event.at),
        "actor": event.actor,
        "details": event.details,
    }


def breaker_event_row(event: BreakerEvent) -> dict[str, Any]:
    """A breaker transition or override as the dashboard's feed shows it."""
    return {
        "id": f"b{event.id}",
        "source": "breaker",
        "breaker": event.breaker_id,
        "kind": event.kind,
        "at": _iso(event.at),
        "actor": event.actor,
        "from_state": event.from_state,
        "to_state": event.to_state,
        "reason": event.reason[:ERROR_CHARS],
        "expires_at": (event.details or {}).get("expires_at"),
    }
