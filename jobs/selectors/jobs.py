"""Reads of jobs: one job, filtered lists, where a pending job stands and why it waits."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from django.db import connection
from django.db.models import BooleanField, Count, Min, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.utils import timezone

from jobs import access, breakers, dialect, validation
from jobs.exceptions import JobNotFound
from jobs.models import Breaker, EventKind, Job, JobEvent, JobStatus, WorkerHeartbeat
from jobs.selectors import sql
from jobs.selectors.breakers import breaker_policy, flow_holding
from jobs.selectors.job_query import ORDERINGS, JobQuery, id_prefix_bounds
from jobs.selectors.queue import HEAVY_FIELDS, jobs_in_pop_order


def job_get(*, job_id: UUID | str, user: Any = None) -> Job:
    """One job ``user`` may see (None: the system sees all); ``JobNotFound`` otherwise."""
    try:
        return Job.objects.filter(access.visible_filter(user)).get(uuid=validation.job_uuid(job_id))
    except Job.DoesNotExist:
        raise JobNotFound(f"no job {job_id}") from None


def job_list(*, user: Any = None, query: JobQuery | None = None, **criteria: Any) -> QuerySet[Job]:
    """Jobs ``user`` may see that match ``query`` (or a ``JobQuery(**criteria)``), newest first
    unless it says otherwise; ``ordering="pop"`` lists pending jobs in pop order."""
    query = query if query is not None else JobQuery(**criteria)
    qs = Job.objects.filter(access.visible_filter(user))
    if query.statuses:
        qs = qs.filter(status__in=query.statuses)
    if query.kind:
        qs = qs.filter(kind=query.kind)
    if query.dependency:
        qs = qs.filter(dependency=query.dependency)
    if query.id_prefix:
        low, high = id_prefix_bounds(query.id_prefix)  # a range of the unique index, not a LIKE scan
        qs = qs.filter(uuid__gte=UUID(low), uuid__lte=UUID(high))
    if query.payload_contains is not None:
        qs = qs.filter(_payload_contains(query.payload_contains))
    if query.created_after is not None:
        qs = qs.filter(created_at__gte=query.created_after)
    if query.created_before is not None:
        qs = qs.filter(created_at__lt=query.created_before)
    if query.ordering == "pop":
        return jobs_in_pop_order(qs)
    return qs.order_by(*ORDERINGS[query.ordering])


def _payload_contains(needle: dict) -> Q | RawSQL:
    """Payloads containing ``needle``: jsonb ``@>`` on PostgreSQL (the GIN index), json_each on SQLite."""
    if dialect.current().json_contains:
        return Q(payload__contains=needle)
    column = f"{connection.ops.quote_name(Job._meta.db_table)}.{connection.ops.quote_name('payload')}"
    condition, params = sql.json_contains(column, needle)
    return RawSQL(condition, params, output_field=BooleanField())


def job_uuid_by_seq(*, seq: int | None) -> str | None:
    """The public id of the job with sequence ``seq`` (None when there is none)."""
    if seq is None:
        return None
    value = Job.objects.filter(seq=seq).values_list("uuid", flat=True).first()
    return str(value) if value else None


def job_position(job: Job) -> int | None:
    """1-based place of a pending job in pop order (None unless pending)."""
    if job.status != JobStatus.PENDING:
        return None
    ahead = Job.objects.filter(status=JobStatus.PENDING).filter(
        Q(priority__gt=job.priority) | Q(priority=job.priority, seq__lt=job.seq)
    )
    return ahead.count() + 1


def job_waiting_for(
    job: Job, *, position: int | None = None, breaker_rows: dict[str, Breaker] | None = None, now=None
) -> dict[str, Any] | None:
    """Why a pending job is not running yet, or None when it is not waiting.

    ``breaker_rows`` (name -> row, read once by a caller listing many jobs) saves one breaker
    read per job; without it the job's breaker is read here."""
    if job.status != JobStatus.PENDING:
        return None
    now = now or timezone.now()
    if job.run_after > now:
        # Never attempted: the client scheduled it; attempted: a failed attempt's backoff.
        reason = "scheduled" if job.attempts == 0 else "retry_scheduled"
        return {"reason": reason, "until": job.run_after.isoformat()}
    if breaker_rows is not None:
        row = breaker_rows.get(job.dependency)
    else:
        row = Breaker.objects.filter(name=job.dependency).first()
    held = _breaker_holding(job.dependency, now, row=row) or _flow_holding(job.dependency, now, row=row)
    if held is not None:
        return held
    position = job_position(job) if position is None else position
    if position > 1:
        return {"reason": "jobs_ahead", "jobs_ahead": position - 1}
    return {"reason": "next", "jobs_ahead": 0}


def _breaker_holding(dependency: str, now, *, row: Breaker | None) -> dict[str, Any] | None:
    """Why the job's breaker holds it, or None when the breaker admits calls (``row`` None: the
    dependency has no breaker row yet)."""
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


def _flow_holding(dependency: str, now: datetime, *, row: Breaker | None) -> dict[str, Any] | None:
    """Why flow control holds the job (the limit, and when it can next start), or None. The rule
    the breaker's card and /metrics use (``flow_holding``), on the same row; calls in flight are
    live leases (counted only when a limit on them is in force)."""
    if row is None:
        return None
    allowed = breakers.flow.allowance(row, breaker_policy(name=dependency), now)
    running = breakers.jobs_in_flight(now=now, dependency=dependency)
    in_flight = running.count() if allowed.calls is not None else 0
    holding = flow_holding(row=row, now=now, in_flight=in_flight)
    if holding == "limit":
        soonest = running.order_by("lease_expires_at").values_list("lease_expires_at", flat=True).first()
        return {
            "reason": allowed.why, "dependency": dependency, "in_flight": in_flight, "limit": allowed.calls,
            "when": "a call in flight finishes",
            **({"at_latest": soonest.isoformat()} if soonest else {}),
        }
    if holding == "rate":
        return {"reason": "rate_limit", "dependency": dependency, "rate_limit": str(allowed.rate),
                "until": datetime.fromtimestamp(row.rate_tat, UTC).isoformat()}
    return None


def jobs_running(*, limit: int = 100) -> list[Job]:
    return list(Job.objects.filter(status=JobStatus.RUNNING).defer(*HEAVY_FIELDS).order_by("started_at", "seq")[:limit])


def jobs_recently_finished(*, limit: int = 50) -> list[Job]:
    """The last ``limit`` jobs to finish: one short index walk per final status for the
    candidates' (finished_at, seq), then one fetch of the winners."""
    candidates: list[tuple] = []
    for status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED):
        candidates += Job.objects.filter(status=status, finished_at__isnull=False).order_by("-finished_at").values_list(
            "finished_at", "seq"
        )[:limit]
    candidates.sort(reverse=True)
    order = {seq: index for index, (_, seq) in enumerate(candidates[:limit])}
    jobs = Job.objects.filter(seq__in=list(order)).defer(*HEAVY_FIELDS)
    return sorted(jobs, key=lambda job: order[job.seq])


def events_recent(*, limit: int = 50, before_id: int | None = None) -> list[JobEvent]:
    """The last ``limit`` job events (below ``before_id``, if given), newest first."""
    events = JobEvent.objects.select_related("job").only("id", "kind", "at", "actor", "details", "job__uuid")
    if before_id is not None:
        events = events.filter(id__lt=before_id)
    return list(events.order_by("-id")[:limit])


def held_events_of_one_hold(*, last_id: int, at: datetime, actor: str, span: int) -> tuple[int, int]:
    """(how many, the lowest id) of the ``held`` events written at ``at`` by ``actor`` among the
    ``span`` ids up to ``last_id``: the events one hold wrote (one statement, at most ``span``
    rows), counted by a short walk of the primary key."""
    found = JobEvent.objects.filter(id__lte=last_id, id__gt=last_id - span, kind=EventKind.HELD, at=at, actor=actor)
    result = found.aggregate(n=Count("id"), low=Min("id"))
    return result["n"], result["low"] if result["low"] is not None else last_id


def workers_seen_since(*, since: datetime) -> list[WorkerHeartbeat]:
    """Workers whose last heartbeat is at or after ``since``, most recent first."""
    return list(WorkerHeartbeat.objects.filter(last_seen__gte=since).order_by("-last_seen"))
