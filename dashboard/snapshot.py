"""The dashboard's whole state as one JSON-ready dict, built by a handful of indexed queries.

Every message the dashboard sends is such a snapshot: the client replaces what it shows, so no
update can be lost or applied twice. Built in sync code (``database_sync_to_async`` from the
broadcaster), once per tick per process, whatever the number of connected dashboards.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from dashboard.counts import EXACT_LIMIT, StatusCounter
from jobs import breakers, dependencies, selectors
from jobs.models import Breaker, BreakerEvent, BreakerEventKind, Job, JobEvent

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
        "source": "job",
        "job": str(event.job.uuid),
        "kind": event.kind,
        "at": _iso(event.at),
        "actor": event.actor,
        "details": event.details,
    }


def _breaker_rows() -> dict[str, Breaker]:
    """Every breaker row by name (one query), with an unsaved default row for a configured
    dependency that has not been called yet (the snapshot only reads)."""
    rows = {row.name: row for row in Breaker.objects.all()}
    for name in dependencies.configured():
        rows.setdefault(name, Breaker(name=name, updated_at=None))  # None: a stable snapshot
    return dict(sorted(rows.items()))


def _held_counts(names: list[str], *, limit: int = EXACT_LIMIT) -> dict[str, tuple[int, str]]:
    """Held jobs of the rejecting breakers: (count, "exact" | "estimate" | "at_least").

    One round trip of bounded counts (at most ``limit`` + 1 index entries each), so a
    backlog of a million held jobs costs what 10,001 cost; above that PostgreSQL's planner
    estimate (no rows read), elsewhere the lower bound."""
    result: dict[str, tuple[int, str]] = {}
    for name, n in selectors.pending_counts_bounded(dependencies=names, limit=limit).items():
        if n is not None:
            result[name] = (n, "exact")
            continue
        estimate = selectors.pending_estimate(dependency=name)
        if estimate is None:
            result[name] = (limit + 1, "at_least")
        else:
            result[name] = (max(estimate, limit + 1), "estimate")
    return result


def _breakers(rows: dict[str, Breaker], now, *, held_limit: int = EXACT_LIMIT) -> list[dict[str, Any]]:
    rejecting = [name for name, row in rows.items() if breakers.decide(row, now) != breakers.Decision.ADMIT]
    held = _held_counts(rejecting, limit=held_limit)
    views = []
    for row in rows.values():
        count, bound = held.get(row.name, (0, "exact"))
        view = selectors.breaker_view(row, now=now, held_counts={row.name: count})
        view.pop("pending", None)  # only counted for rejecting breakers here
        view["held_bound"] = bound
        views.append(view)
    return views


def breakers_snapshot(*, held_limit: int = EXACT_LIMIT) -> list[dict[str, Any]]:
    """Every breaker in the shape of ``GET /api/breakers/`` (state, shadow_state, override with
    reason/actor/expiry, failures/threshold, opened_at, retry_at, held) plus ``held_bound``.

    Two queries whatever the backlog: the breaker rows, and bounded held counts for the breakers
    that reject calls (see ``_held_counts``)."""
    return _breakers(_breaker_rows(), timezone.now(), held_limit=held_limit)


def queue_rows(
    *, limit: int = QUEUE_LIMIT, breaker_rows: dict[str, Breaker] | None = None, now=None
) -> list[dict[str, Any]]:
    """The next ``limit`` pending jobs in pop order with their position and why they wait.

    Positions come from enumerating the pop-order list (one index walk), not one count per row;
    ``waiting_for`` is ``jobs.selectors.job_waiting_for`` (what ``GET /api/jobs/{id}/`` says)
    fed with the breaker rows read once for the whole list. A row is ``held`` when its
    dependency's breaker does not admit calls; ``held_ahead`` counts the held rows above it.
    """
    now = now or timezone.now()
    if breaker_rows is None:
        breaker_rows = _breaker_rows()
    rows = []
    held_so_far = 0
    for position, job in enumerate(selectors.queue_next(limit=limit, light=True), start=1):
        row = job_row(job)
        row["position"] = position
        waiting = selectors.job_waiting_for(job, position=position, breaker_rows=breaker_rows, now=now)
        row["waiting_for"] = waiting
        row["held"] = bool(waiting) and waiting["reason"] == "breaker_open"
        # Of the jobs ahead, how many are held (they do not delay this one). Exact: every job
        # ahead of a listed row is listed too.
        row["held_ahead"] = held_so_far
        held_so_far += row["held"]
        rows.append(row)
    return rows


def breaker_event_row(event: BreakerEvent) -> dict[str, Any]:
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


def events_feed(*, limit: int = EVENTS_LIMIT) -> list[dict[str, Any]]:
    """The last ``limit`` job events and breaker transitions/overrides, newest first.

    Two short index walks (the last ``limit`` of each by id), merged by time. Counted failures
    are left out of the feed (each also shows as its job's ``failed`` / retry event, and the
    transition they cause quotes them), so a feed may hold fewer breaker rows than ``limit``."""
    entries = [(event.at, True, event_row(event)) for event in selectors.events_recent(limit=limit)]
    entries += [
        (event.at, False, breaker_event_row(event))
        for event in BreakerEvent.objects.order_by("-id")[:limit]
        if event.kind != BreakerEventKind.FAILURE
    ]
    # Newest first; at equal times a job event (e.g. the ``held`` an override wrote) is listed
    # above the breaker event that caused it.
    entries.sort(key=lambda entry: entry[:2], reverse=True)
    merged = [row for _, _, row in entries]
    return merged[:limit]


def build(*, throughput: dict[str, Any] | None = None, counter: StatusCounter | None = None) -> dict[str, Any]:
    """The full dashboard state. The broadcaster passes its throughput window's series and its
    long-lived counter (which caches large counts); without them, a one-off build."""
    now = timezone.now()
    rows = _breaker_rows()
    counts, estimated = (counter or StatusCounter()).read()
    return {
        "breakers": _breakers(rows, now),
        "counts": counts,
        "estimated": estimated,
        "queue": queue_rows(breaker_rows=rows, now=now),
        "running": [job_row(job) for job in selectors.jobs_running(limit=RUNNING_LIMIT)],
        "finished": [job_row(job) for job in selectors.jobs_recently_finished(limit=FINISHED_LIMIT)],
        "events": events_feed(),
        "throughput": throughput,
    }
