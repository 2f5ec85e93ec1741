"""The dashboard's whole state as one JSON-ready dict, built by a handful of indexed queries.

Every message the dashboard sends is such a snapshot: the client replaces what it shows, so no
update can be lost or applied twice. Built in sync code (``database_sync_to_async`` from the
broadcaster), once per tick per process, whatever the number of connected dashboards.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from dashboard.counts import EXACT_LIMIT, StatusCounter
from jobs import breakers, presenters, selectors
from jobs.models import Breaker, BreakerEventKind, EventKind

QUEUE_LIMIT = 100
RUNNING_LIMIT = 100
FINISHED_LIMIT = 50
EVENTS_LIMIT = 50


def _held_counts(names: list[str], *, limit: int = EXACT_LIMIT) -> dict[str, selectors.Bounded]:
    """Held jobs of these dependencies: (count, "exact" | "estimate" | "at_least").

    One round trip of bounded counts (at most ``limit`` + 1 index entries each), so a
    backlog of a million held jobs costs what 10,001 cost; above that PostgreSQL's planner
    estimate (no rows read), elsewhere the lower bound."""
    return selectors.pending_by_dependency_bounded(names=names, limit=limit, beyond=selectors.at_least(limit))


def _breakers(rows: dict[str, Breaker], now, *, held_limit: int = EXACT_LIMIT) -> list[dict[str, Any]]:
    in_flight = selectors.in_flight_by_dependency(now=now)  # flow control's calls in flight
    # Jobs are held by a rejecting breaker, or by flow control (a full allowance, a rate limit's
    # next start): only those dependencies' pending jobs are counted.
    holding = [name for name, row in rows.items() if breakers.decide(row, now) != breakers.Decision.ADMIT
               or selectors.flow_holding(row=row, now=now, in_flight=in_flight.get(name, 0))]
    held = _held_counts(holding, limit=held_limit)
    views = []
    for row in rows.values():
        count, bound = held.get(row.name, (0, "exact"))
        view = presenters.breaker_view(row, now=now, held_counts={row.name: count}, in_flight=in_flight)
        view.pop("pending", None)  # only counted for rejecting breakers here
        view.pop("pending_bound", None)
        view["held_bound"] = bound
        views.append(view)
    return views


def breakers_snapshot(*, held_limit: int = EXACT_LIMIT) -> list[dict[str, Any]]:
    """Every breaker in the shape of ``GET /api/breakers/`` (state, shadow_state, override with
    reason/actor/expiry, failures/threshold, opened_at, retry_at, held) plus ``held_bound``.

    Three queries whatever the backlog: the breaker rows, bounded held counts for the breakers
    that reject calls (see ``_held_counts``), calls in flight by dependency (live leases)."""
    return _breakers(selectors.breaker_rows_configured(), timezone.now(), held_limit=held_limit)


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
        breaker_rows = selectors.breaker_rows_configured()
    rows = []
    held_so_far = 0
    for position, job in enumerate(selectors.queue_next(limit=limit, light=True), start=1):
        row = presenters.job_row(job)
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


def _same_hold(a, b) -> bool:
    return (a.kind == b.kind == EventKind.HELD and a.at == b.at and a.actor == b.actor
            and (a.details or {}).get("dependency") == (b.details or {}).get("dependency"))


def _job_feed(limit: int) -> list[tuple[Any, dict[str, Any]]]:
    """The last ``limit`` lines of job events, newest first, a hold's ``held`` events (one per
    job, written at one instant when a breaker stops admitting) as one line with ``count``.

    One short index walk; when a hold reaches past it, one bounded count of that hold (a hold
    writes at most ``HELD_EVENTS_LIMIT`` events) and a walk on from below it."""
    lines: list[tuple[Any, dict[str, Any]]] = []
    before = None
    for _ in range(4):  # a page, and after each hold that spills over, the page below it
        events = selectors.events_recent(limit=limit, before_id=before)
        if not events:
            break
        before = events[-1].id
        i = 0
        while i < len(events) and len(lines) < limit:
            first, j = events[i], i
            while j + 1 < len(events) and _same_hold(events[j + 1], first):
                j += 1
            count = j - i + 1
            if first.kind == EventKind.HELD and j == len(events) - 1:  # the hold may go on below this page
                count, lowest = selectors.held_events_of_one_hold(
                    last_id=first.id, at=first.at, actor=first.actor, span=breakers.HELD_EVENTS_LIMIT + limit)
                before = min(before, lowest)
            row = presenters.job_event_row(first)
            if count > 1:
                row["count"] = count
            lines.append((first.at, row))
            i = j + 1
        if len(lines) >= limit or len(events) < limit:
            break
    return lines


def events_feed(*, limit: int = EVENTS_LIMIT) -> list[dict[str, Any]]:
    """The last ``limit`` lines of job events and breaker transitions/overrides, newest first.

    Short index walks (the last ``limit`` of each by id, see ``_job_feed``), merged by time. The
    ``held`` events a hold writes for each of its N jobs are one line (``count``: N), so forcing
    a breaker open never pushes the override itself out of the feed. Counted failures are left
    out of the feed (each also shows as its job's ``failed`` / retry event, and the transition
    they cause quotes them), so a feed may hold fewer breaker rows than ``limit``."""
    entries = [(at, True, row) for at, row in _job_feed(limit)]
    entries += [
        (event.at, False, presenters.breaker_event_row(event))
        for event in selectors.breaker_events_recent(limit=limit)
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
    rows = selectors.breaker_rows_configured()
    counts, estimated = (counter or StatusCounter()).read()
    return {
        "breakers": _breakers(rows, now),
        "counts": counts,
        "estimated": estimated,
        "queue": queue_rows(breaker_rows=rows, now=now),
        "running": [presenters.job_row(job) for job in selectors.jobs_running(limit=RUNNING_LIMIT)],
        "finished": [presenters.job_row(job) for job in selectors.jobs_recently_finished(limit=FINISHED_LIMIT)],
        "events": events_feed(),
        "throughput": throughput,
    }
