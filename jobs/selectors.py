"""Reads: jobs, their history, the queue in pop order, and why a job is waiting."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from jobs import breakers, dependencies
from jobs.exceptions import InvalidInput, JobNotFound
from jobs.models import Breaker, BreakerEvent, BreakerEventKind, Job, JobStatus
from jobs.queue import pop_order

ORDERINGS = {"pop": None, "newest": ("-seq",), "oldest": ("seq",)}


def job_get(*, job_id: UUID | str) -> Job:
    try:
        return Job.objects.get(uuid=job_id)
    except (Job.DoesNotExist, ValueError):
        raise JobNotFound(f"no job {job_id}") from None


def job_list(
    *, status: str | None = None, kind: str | None = None, dependency: str | None = None, ordering: str | None = None
) -> QuerySet[Job]:
    """Jobs filtered by status, kind and dependency. ``ordering="pop"`` lists pending jobs in pop order."""
    qs = Job.objects.all()
    if status:
        if status not in JobStatus.values:
            raise InvalidInput("status", f"must be one of {', '.join(JobStatus.values)}")
        qs = qs.filter(status=status)
    if kind:
        qs = qs.filter(kind=kind)
    if dependency:
        qs = qs.filter(dependency=dependency)
    ordering = ordering or "newest"
    if ordering not in ORDERINGS:
        raise InvalidInput("ordering", f"must be one of {', '.join(ORDERINGS)}")
    if ordering == "pop":
        return pop_order(qs)
    return qs.order_by(*ORDERINGS[ordering])


def pending_count() -> int:
    return Job.objects.filter(status=JobStatus.PENDING).count()


def counts_by_status() -> dict[str, int]:
    rows = Job.objects.values("status").annotate(n=Count("seq")).order_by()
    counts = dict.fromkeys(JobStatus.values, 0)
    counts.update({row["status"]: row["n"] for row in rows})
    return counts


def pending_by_dependency() -> dict[str, int]:
    rows = Job.objects.filter(status=JobStatus.PENDING).values("dependency").annotate(n=Count("seq")).order_by()
    return {row["dependency"]: row["n"] for row in rows}


def queue_next(*, limit: int = 10) -> list[Job]:
    return list(pop_order()[:limit])


def queue_summary(*, limit: int = 10) -> dict[str, Any]:
    by_status = counts_by_status()
    return {
        "size": by_status[JobStatus.PENDING],
        "by_status": by_status,
        "by_dependency": pending_by_dependency(),
        "next": queue_next(limit=limit),
    }


def job_position(job: Job) -> int | None:
    """1-based place of a pending job in pop order (None unless pending)."""
    if job.status != JobStatus.PENDING:
        return None
    ahead = Job.objects.filter(status=JobStatus.PENDING).filter(
        Q(priority__gt=job.priority) | Q(priority=job.priority, seq__lt=job.seq)
    )
    return ahead.count() + 1


def job_waiting_for(job: Job, *, position: int | None = None) -> dict[str, Any] | None:
    """Why a pending job is not running yet, or None when it is not waiting."""
    if job.status != JobStatus.PENDING:
        return None
    now = timezone.now()
    if job.run_after > now:
        return {"reason": "retry_scheduled", "until": job.run_after.isoformat()}
    held = _breaker_holding(job.dependency, now)
    if held is not None:
        return held
    position = job_position(job) if position is None else position
    if position > 1:
        return {"reason": "jobs_ahead", "jobs_ahead": position - 1}
    return {"reason": "next", "jobs_ahead": 0}


def _breaker_holding(dependency: str, now) -> dict[str, Any] | None:
    """Why the job's breaker holds it, or None when the breaker admits calls."""
    row = Breaker.objects.filter(name=dependency).first()
    if row is None or breakers.decide(row, now) == breakers.Decision.ADMIT:
        return None
    override = breakers.override_in_force(row, now)
    until = row.override_expires_at if override else row.retry_at
    return {
        "reason": "breaker_open",
        "dependency": dependency,
        "state": f"forced {override}" if override else row.state,
        **({"until": until.isoformat()} if until else {}),
    }


# --- breakers -----------------------------------------------------------------------------------


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def breaker_view(row: Breaker, *, now, held_counts: dict[str, int]) -> dict[str, Any]:
    """A breaker as the API shows it: effective state, shadow (automatic) state, override, counts."""
    dep = dependencies.configured().get(row.name) or dependencies.Dependency(name=row.name)
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
        "trial": {
            "owner": row.trial_owner,
            "job": _job_uuid(row.trial_job),
            "expires_at": _iso(row.trial_expires_at),
        } if trial_live else None,
        "level": row.level,
        "reset_timeout": dep.reset_timeout,
        "max_reset_timeout": dep.max_reset_timeout,
        "slow_call_seconds": dep.slow_call_seconds,
        "updated_at": _iso(row.updated_at),
    }


def _job_uuid(seq: int | None) -> str | None:
    if seq is None:
        return None
    value = Job.objects.filter(seq=seq).values_list("uuid", flat=True).first()
    return str(value) if value else None


def breaker_list() -> list[dict[str, Any]]:
    """Every breaker (every configured dependency, even before its first call)."""
    now = timezone.now()
    breakers.breakers_ensure()
    counts = pending_by_dependency()
    return [breaker_view(row, now=now, held_counts=counts) for row in Breaker.objects.order_by("name")]


def breaker_detail(*, name: str, events: int = 20) -> dict[str, Any]:
    """One breaker with its recent transitions and overrides, and its last counted errors."""
    now = timezone.now()
    row = breakers.breaker_row(name)
    counts = {name: Job.objects.filter(status=JobStatus.PENDING, dependency=name).count()}
    recent = (
        BreakerEvent.objects.filter(breaker=row).exclude(kind=BreakerEventKind.FAILURE).order_by("-id")[:events]
    )
    return {
        **breaker_view(row, now=now, held_counts=counts),
        "recent_errors": breakers.recent_errors(name),
        "events": [
            {"kind": e.kind, "at": e.at.isoformat(), "actor": e.actor, "from_state": e.from_state,
             "to_state": e.to_state, "reason": e.reason, "details": e.details}
            for e in recent
        ],
    }


def circuit_status(*, name: str = dependencies.DEFAULT) -> dict[str, Any]:
    """The write-up's ``GET /circuit``: its state string plus the structured fields."""
    view = breaker_detail(name=name, events=0)
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


def breaker_metrics() -> list[dict[str, Any]]:
    """Per breaker, for Prometheus: effective and automatic state, held jobs, transitions by kind.

    Three small queries whatever the history size is not: transitions are counted over the
    BreakerEvent index (breaker, kind)."""
    now = timezone.now()
    counts = pending_by_dependency()
    transitions: dict[str, dict[str, int]] = {}
    rows = (
        BreakerEvent.objects.exclude(kind=BreakerEventKind.FAILURE)
        .values("breaker_id", "kind").annotate(n=Count("id")).order_by()
    )
    for row in rows:
        transitions.setdefault(row["breaker_id"], {})[row["kind"]] = row["n"]
    result = []
    for row in Breaker.objects.order_by("name"):
        view = breaker_view(row, now=now, held_counts=counts)
        result.append({
            "dependency": row.name, "state": view["state"], "shadow_state": view["shadow_state"],
            "held": view["held"], "failures": row.failures, "transitions": transitions.get(row.name, {}),
        })
    return result
