"""The jobs a breaker holds back: their ``held`` JobEvents, and what a change of decision sets off."""

from __future__ import annotations

from datetime import datetime

from jobs import events, logs, notify
from jobs.breakers import rules
from jobs.models import Breaker, EventKind, Job, JobStatus

HELD_EVENTS_LIMIT = 1000  # held JobEvents written per transition (the first jobs in pop order)


def jobs_hold_pending(*, name: str, now: datetime, actor: str, why: str, retry_at: datetime | None) -> int:
    """A ``held`` JobEvent for each pending job of ``name`` (capped): its breaker stopped admitting."""
    seqs = list(
        Job.objects.filter(status=JobStatus.PENDING, dependency=name)
        .order_by("-priority", "seq")
        .values_list("seq", flat=True)[:HELD_EVENTS_LIMIT]
    )
    details = {"dependency": name, "why": why, "retry_at": retry_at.isoformat() if retry_at else None}
    events.events_record([(seq, EventKind.HELD, actor, now, details) for seq in seqs])
    return len(seqs)


def holds_read(*, names: set[str], now: datetime) -> dict[str, tuple[str, datetime | None]]:
    """Which of these dependencies' breakers reject a call at ``now``: name -> (why, until). One read."""
    holding: dict[str, tuple[str, datetime | None]] = {}
    for row in Breaker.objects.filter(name__in=names):
        if rules.decide(row, now) == rules.Decision.ADMIT:
            continue
        override = rules.override_in_force(row, now)
        why = f"breaker forced {override}" if override else f"breaker {row.state}"
        holding[row.name] = (why, row.override_expires_at if override else row.retry_at)
    return holding


def held_events(*, jobs: list[Job], holding: dict[str, tuple[str, datetime | None]], actor: str,
                now: datetime) -> list[tuple[Job, str, str, datetime, dict]]:
    """The ``held`` event of each job whose dependency is in ``holding`` (from ``holds_read``), as
    (job, kind, actor, at, details) for the caller to write with the jobs (then ``held_logged``)."""
    rows = []
    for job in jobs:
        if job.dependency not in holding:
            continue
        why, retry_at = holding[job.dependency]
        retry_text = retry_at.isoformat() if retry_at else None
        rows.append((job, EventKind.HELD, actor, now, {"dependency": job.dependency, "why": why, "retry_at": retry_text}))
    return rows


def held_logged(rows: list[tuple[Job, str, str, datetime, dict]]) -> None:
    """The log line of each ``held`` event of ``held_events``, once they are written."""
    for job, _, actor, _, details in rows:
        logs.job_transition("held", job, why=details["why"], retry_at=details["retry_at"], actor=actor)


def decision_changed(*, name: str, before: rules.Decision, after: rules.Decision, now: datetime, actor: str,
                     why: str, retry_at: datetime | None) -> int:
    """Side effects of a change in what callers experience: hold the backlog, or wake the workers."""
    held = 0
    if before == rules.Decision.ADMIT and after != rules.Decision.ADMIT:
        # A new hold period: every pending job gets its one held event now.
        Breaker.objects.filter(name=name).update(held_since=now)
        held = jobs_hold_pending(name=name, now=now, actor=actor, why=why, retry_at=retry_at)
    if after != rules.Decision.REJECT and before != after:
        notify.wake_workers_on_commit()
    return held
