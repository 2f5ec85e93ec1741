"""The dashboard's whole state as one JSON-ready dict, built by a handful of indexed queries.

Every message the dashboard sends is such a snapshot: the client replaces what it shows, so no
update can be lost or applied twice. Built in sync code (``database_sync_to_async`` from the
broadcaster), once per tick per process, whatever the number of connected dashboards.
"""

from __future__ import annotations

from typing import Any

from dashboard.counts import StatusCounter
from jobs import selectors
from jobs.models import Job, JobEvent

QUEUE_LIMIT = 100
RUNNING_LIMIT = 100
FINISHED_LIMIT = 50
EVENTS_LIMIT = 50
ERROR_CHARS = 300


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


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


def event_row(event: JobEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "job": str(event.job.uuid),
        "kind": event.kind,
        "at": _iso(event.at),
        "actor": event.actor,
        "details": event.details,
    }


def breakers_snapshot() -> list[dict[str, Any]]:
    """Every breaker in the shape of ``GET /api/breakers/`` (name, state, override, failures,
    threshold, opened_at, retry_at, held).

    TODO(breakers, issue 4): return the breaker selector's rows here once the Breaker model has
    landed; the page already renders cards and Force open / Force closed / Release buttons from
    this list, and ``held_dependencies`` below marks queue rows held by an open breaker.
    """
    return []


def held_dependencies(breakers: list[dict[str, Any]]) -> set[str]:
    """Dependencies whose breaker rejects calls right now (their pending jobs are held)."""
    return {
        b["name"]
        for b in breakers
        if (b.get("override") or {}).get("state") == "open"
        or (b.get("state") == "open" and (b.get("override") or {}).get("state") != "closed")
    }


def queue_rows(*, limit: int = QUEUE_LIMIT, held: set[str] = frozenset()) -> list[dict[str, Any]]:
    """The next ``limit`` pending jobs in pop order with their position and why they wait.

    Positions come from enumerating the pop-order list (one index walk), not one count per row.
    """
    rows = []
    for position, job in enumerate(selectors.queue_next(limit=limit, light=True), start=1):
        row = job_row(job)
        row["position"] = position
        waiting = selectors.job_waiting_for(job, position=position)
        if job.dependency in held:
            waiting = {"reason": "breaker_open", "dependency": job.dependency}
        row["waiting_for"] = waiting
        row["held"] = job.dependency in held
        rows.append(row)
    return rows


def build(*, throughput: dict[str, Any] | None = None, counter: StatusCounter | None = None) -> dict[str, Any]:
    """The full dashboard state. The broadcaster passes its throughput window's series and its
    long-lived counter (which caches large counts); without them, a one-off build."""
    breakers = breakers_snapshot()
    counts, estimated = (counter or StatusCounter()).read()
    return {
        "breakers": breakers,
        "counts": counts,
        "estimated": estimated,
        "queue": queue_rows(held=held_dependencies(breakers)),
        "running": [job_row(job) for job in selectors.jobs_running(limit=RUNNING_LIMIT)],
        "finished": [job_row(job) for job in selectors.jobs_recently_finished(limit=FINISHED_LIMIT)],
        "events": [event_row(event) for event in selectors.events_recent(limit=EVENTS_LIMIT)],
        "throughput": throughput,
    }
