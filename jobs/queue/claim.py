"""Claim the next jobs in pop order: one UPDATE … RETURNING when every breaker admits, else a probe
of each admitting dependency's head, with the half-open trial lease taken in the same transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from jobs import breakers, conf, dialect, events, logs, notify
from jobs.models import EventKind, Job, JobStatus
from jobs.queue import sql

Gates = dict[str, tuple[breakers.Decision, Any]]


@dataclass(frozen=True)
class Claim:
    """A job leased to a worker, and whether it is its dependency's half-open trial."""

    job: Job
    trial: bool = False


def pop_order(queryset: QuerySet[Job] | None = None) -> QuerySet[Job]:
    """Pending jobs in pop order: highest priority first, then oldest (by sequence)."""
    qs = Job.objects.all() if queryset is None else queryset
    return qs.filter(status=JobStatus.PENDING).order_by("-priority", "seq")


def claim_next(
    *, worker_id: str, exclude_dependencies: Collection[str] = (), now: datetime | None = None
) -> Claim | None:
    """Atomically take the next runnable job in pop order and lease it to ``worker_id``."""
    claims = claims_take(worker_id=worker_id, limit=1, exclude_dependencies=exclude_dependencies, now=now)
    return claims[0] if claims else None


def job_claim_next(
    *, worker_id: str, exclude_dependencies: Collection[str] = (), now: datetime | None = None
) -> Job | None:
    """``claim_next``'s job (None on an empty queue)."""
    claim = claim_next(worker_id=worker_id, exclude_dependencies=exclude_dependencies, now=now)
    return claim.job if claim else None


def jobs_claim(
    *,
    worker_id: str,
    limit: int,
    exclude_dependencies: Collection[str] = (),
    now: datetime | None = None,
    gates: Gates | None = None,
) -> list[Job]:
    """``claims_take``'s jobs, in pop order."""
    claims = claims_take(worker_id=worker_id, limit=limit, exclude_dependencies=exclude_dependencies,
                         now=now, gates=gates)
    return [claim.job for claim in claims]


def claims_take(
    *,
    worker_id: str,
    limit: int,
    exclude_dependencies: Collection[str] = (),
    now: datetime | None = None,
    gates: Gates | None = None,
) -> list[Claim]:
    """Atomically take up to ``limit`` runnable jobs in pop order and lease them to ``worker_id``.

    Jobs whose breaker rejects calls are never handed out: they stay pending, attempts unchanged.
    The breaker states cost one small query (``breakers.claim_gates``). When every breaker admits,
    the claim is ONE statement: an UPDATE of the first ``limit`` rows of the pop-order index,
    returning them. Otherwise it probes the top job of each admitting dependency through the
    per-dependency index, so a large held backlog at the head of the queue is never walked. A
    half-open dependency's highest-priority job is its trial: the trial lease is taken in the
    claim's transaction (the ``Claim`` says so).

    PostgreSQL: ``FOR UPDATE SKIP LOCKED`` lets many workers claim at once without waiting on
    each other. SQLite: the IMMEDIATE transaction holds the write lock, so claims are serial.
    The returned claims are in pop order. Call inside a transaction to join it (the worker records
    its finished jobs and claims the next ones in one, passing the ``gates`` it read there).
    """
    now = now or timezone.now()
    with transaction.atomic(savepoint=False):  # inside the worker's trip: no savepoint to pay for
        gates = gates if gates is not None else breakers.claim_gates(now=now)
        if all(decision == breakers.Decision.ADMIT for decision, _ in gates.values()):
            claims = [Claim(job=job) for job in _take_in_pop_order(worker_id, limit, exclude_dependencies, now)]
        else:
            claims = []
            while len(claims) < limit:
                seq, trial = _claim_by_dependency(gates, exclude_dependencies, worker_id, now)
                if seq is None:
                    break
                [job] = _take(sql.ONE_JOB, [seq], worker_id, now)
                claims.append(Claim(job=job, trial=trial))
                if trial:  # the live trial makes its dependency reject: read the gates again
                    gates = breakers.claim_gates(now=now)
        if not claims:
            return []
        events.events_record([
            (c.job.seq, EventKind.CLAIMED, worker_id, now,
             {"attempt": c.job.attempts + 1, **({"breaker_trial": True} if c.trial else {})})
            for c in claims
        ])
        notify.dashboard_changed_on_commit()
    for c in claims:
        # DEBUG: the outcome's line (INFO) carries the attempt and worker, the audit trail every
        # claim; two lines per job cost a busy worker a fifth of its throughput (make bench: drain).
        extra = {"breaker_trial": True} if c.trial else {}
        logs.job_transition("claimed", c.job, attempt=c.job.attempts + 1, worker=worker_id, level=logging.DEBUG, **extra)
    return claims


def _take_in_pop_order(worker_id: str, limit: int, exclude_dependencies: Collection[str], now: datetime) -> list[Job]:
    """Claim the first ``limit`` runnable jobs of the pop-order index in one UPDATE … RETURNING."""
    condition = sql.pop_order_head_condition(dialect.current(), excluded=len(exclude_dependencies))
    params = [connection.ops.adapt_datetimefield_value(now), *exclude_dependencies, limit]
    return _take(condition, params, worker_id, now)


_FIELD_ORDER = [f.attname for f in Job._meta.concrete_fields]


def _take(condition: str, params: list[Any], worker_id: str, now: datetime) -> list[Job]:
    """Mark the pending jobs matching ``condition`` running under a lease; return them in pop order.

    One UPDATE … RETURNING, and the jobs are built from its rows directly: through the ORM
    (``raw()``, converters for every column) this was a third of a drained job's cost.
    """
    adapt = connection.ops.adapt_datetimefield_value
    expires = now + timedelta(seconds=conf.get("LEASE_SECONDS"))
    with connection.cursor() as cursor:
        cursor.execute(sql.claim(dialect.current(), condition=condition),
                       [worker_id, adapt(expires), adapt(now), adapt(now), *params])
        rows = cursor.fetchall()
    payload = Job._meta.get_field("payload")
    leased = {"status": JobStatus.RUNNING, "lease_owner": worker_id, "lease_expires_at": expires,
              "started_at": now, "updated_at": now}
    jobs = []
    for row in rows:
        values = dict(zip(sql.CLAIMED_COLUMNS, row, strict=True), **leased)
        values["uuid"] = values["uuid"] if isinstance(values["uuid"], UUID) else UUID(values["uuid"])
        values["payload"] = payload.from_db_value(values["payload"], None, connection)
        # from_db wants the loaded values in field order; the fields left out stay deferred.
        jobs.append(Job.from_db(connection.alias, list(values), [values[n] for n in _FIELD_ORDER if n in values]))
    jobs.sort(key=lambda job: (-job.priority, job.seq))
    return jobs


def _heads(names: list[str], now: datetime) -> list[tuple[int, int, str]]:
    """(priority, seq, dependency) of each dependency's next job, in one query."""
    if not names:
        return []
    now_param = connection.ops.adapt_datetimefield_value(now)
    params = [value for name in names for value in (now_param, name)]
    with connection.cursor() as cursor:
        cursor.execute(sql.dependency_heads(dialect.current(), dependencies=len(names)), params)
        return cursor.fetchall()


def _claim_by_dependency(
    gates: Gates, exclude_dependencies: Collection[str], worker_id: str, now: datetime
) -> tuple[int | None, bool]:
    """(seq, is the trial) of the next job in pop order across the dependencies whose breaker
    admits a call (or one trial); the row is locked on PostgreSQL."""
    db = dialect.current()
    open_to = {
        name: decision for name, (decision, _) in gates.items()
        if decision != breakers.Decision.REJECT and name not in exclude_dependencies
    }
    tops = [(-priority, seq, name, open_to[name]) for priority, seq, name in _heads(sorted(open_to), now)]
    for _, seq, name, decision in sorted(tops):
        if db.serial_writes:
            found = seq  # the IMMEDIATE transaction holds the write lock: the probe's answer stands
        else:  # another worker may hold or have taken it: its next unlocked job instead
            candidates = pop_order().filter(dependency=name, run_after__lte=now)
            if decision == breakers.Decision.TRIAL:
                # The trial is the dependency's highest-priority job, nothing else.
                candidates = candidates.filter(seq=seq)
            found = db.lock_skipping(candidates).values_list("seq", flat=True).first()
        if found is None:
            continue  # taken by a concurrent claim
        if decision == breakers.Decision.TRIAL and not breakers.trial_acquire(
            name=name, owner=worker_id, job_seq=found, now=now
        ):
            continue  # another process started the trial first
        return found, decision == breakers.Decision.TRIAL
    return None, False
