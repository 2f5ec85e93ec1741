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

from jobs import breakers, conf, dependencies, dialect, events, logs, notify
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

    Jobs whose breaker rejects calls, or whose dependency's flow control (``breakers.flow``: the
    probe limit, the cap, the adaptive limit, the rate limit) admits no more, are never handed
    out: they stay pending, attempts unchanged, in their place. The breaker states cost one small
    query (``breakers.claim_gates``). When every breaker admits and no limit is in force, the
    claim is ONE statement: an UPDATE of the first ``limit`` rows of the pop-order index,
    returning them. Otherwise it probes the top job of each admitting dependency through the
    per-dependency index, so a large held backlog at the head of the queue is never walked, and
    takes each dependency's run of jobs up to the next dependency's head in one statement. A
    half-open dependency's highest-priority job is its trial: the trial lease is taken in the
    claim's transaction (the ``Claim`` says so).

    PostgreSQL: ``FOR UPDATE SKIP LOCKED`` lets many workers claim at once without waiting on
    each other; a limited dependency's breaker row is locked while its calls in flight are
    counted, so two workers never both spend its last slot (a claim that finds it held waits up to
    ``CONTENDED_WAIT`` for the other claim's commit rather than take none of its jobs). SQLite: the IMMEDIATE transaction
    holds the write lock, so claims are serial. The returned claims are in pop order. Call inside
    a transaction to join it (the worker records its finished jobs and claims the next ones in
    one, passing the ``gates`` it read there).
    """
    now = now or timezone.now()
    with transaction.atomic(savepoint=False):  # inside the worker's trip: no savepoint to pay for
        gates = gates if gates is not None else breakers.claim_gates(now=now)
        limited = _limited(gates, now)
        budgets: dict[str, _Budget] = {}
        if limited is not None and limited:
            # Every breaker admits, some dependency has a limit in force: one probe of their heads.
            # Idle ones (the usual case: configured, unproven, no jobs) leave the one-UPDATE claim,
            # and so do busy ones whose limits cannot bind in this claim (``_roomy``).
            busy = sorted({name for _, _, name in _heads(sorted(set(limited) - set(exclude_dependencies)), now)})
            budgets = _budgets(gates, busy, now) if busy else {}
            limited = [name for name in limited if name not in busy] if _roomy(busy, budgets, limit) else None
        if limited is not None:
            excluded = sorted({*exclude_dependencies, *limited})
            claims = [Claim(job=job) for job in _take_in_pop_order(worker_id, limit, excluded, now)]
        else:
            # The budgets measured above hold for this transaction: the claim goes on with them.
            claims = _claim_by_dependency(gates, exclude_dependencies, worker_id, limit, now, budgets=budgets)
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


def _limited(gates: Gates, now: datetime) -> list[str] | None:
    """The dependencies with a flow-control limit in force while every breaker admits; None
    when some breaker does not (the claim then goes dependency by dependency)."""
    deps = dependencies.configured()
    limited = []
    for name, (decision, row) in gates.items():
        if decision != breakers.Decision.ADMIT:
            return None
        if breakers.flow.allowance(row, deps.get(name) or dependencies.Dependency(name=name), now).limited:
            limited.append(name)
    return limited


def _roomy(busy: list[str], budgets: dict[str, _Budget], limit: int) -> bool:
    """Can none of the ``busy`` limited dependencies' limits bind in a claim of ``limit`` jobs?
    True when each has room for all of them in flight and no rate limit (a rate limit starts a
    few calls per claim at most: ``flow.rate_starts``). ``budgets`` are measured under the breaker
    rows' lock (``_budgets``), which the one-UPDATE claim then holds to its commit, so no
    concurrent claim spends the same room."""
    return all(name in budgets and budgets[name].rate is None
               and (budgets[name].calls is None or budgets[name].calls >= limit) for name in busy)


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
    gates: Gates, exclude_dependencies: Collection[str], worker_id: str, limit: int, now: datetime,
    *, budgets: dict[str, _Budget] | None = None,
) -> list[Claim]:
    """Up to ``limit`` claims in pop order across the dependencies whose breaker admits a call (or
    one trial) and whose flow control has room; the rows are locked on PostgreSQL. ``budgets``:
    those already measured in this transaction (each limited dependency is measured once)."""
    db = dialect.current()
    open_to = {
        name: decision for name, (decision, _) in gates.items()
        if decision != breakers.Decision.REJECT and name not in exclude_dependencies
    }
    budgets = dict(budgets or {})
    claims: list[Claim] = []
    while len(claims) < limit:
        names = sorted(name for name in open_to if budgets.get(name, _FREE).calls != 0)
        heads = sorted((-priority, seq, name) for priority, seq, name in _heads(names, now))
        unchecked = [name for _, _, name in heads if name not in budgets and open_to[name] == breakers.Decision.ADMIT]
        if unchecked:  # each limited dependency with work is measured once per claim
            budgets.update(_budgets(gates, unchecked, now))
            heads = [head for head in heads if budgets.get(head[2], _FREE).calls != 0]
        taken = None
        for index, (_, seq, name) in enumerate(heads):
            if open_to[name] == breakers.Decision.TRIAL:
                taken = _take_trial(db, name, seq, worker_id, now)
                if taken:
                    del open_to[name]  # its live trial makes it reject
                    break
                continue
            budget = budgets.get(name, _FREE)
            want = limit - len(claims) if budget.calls is None else min(limit - len(claims), budget.calls)
            if budget.rate is not None:
                want = min(want, breakers.flow.rate_starts(budget.rate))
                if not breakers.rate_take(row=budget.row, rate=budget.rate, now=now, starts=want):
                    budgets[name] = _Budget(calls=0)
                    continue
            bound = heads[index + 1] if index + 1 < len(heads) else None
            params: list[Any] = [connection.ops.adapt_datetimefield_value(now), name]
            if bound is not None:
                params += [-bound[0], -bound[0], bound[1]]
            jobs = _take(sql.dependency_run(db, bounded=bound is not None), [*params, want], worker_id, now)
            if budget.rate is not None and len(jobs) < want:
                # The run stopped at another dependency's head: the slots it did not start go back.
                breakers.rate_settle(row=budget.row, rate=budget.rate, now=now, starts=len(jobs))
            if jobs:
                taken = [Claim(job=job) for job in jobs]
                if budget.calls is not None:
                    budgets[name] = _Budget(calls=budget.calls - len(jobs), row=budget.row, rate=budget.rate)
                if budget.rate is not None:
                    budgets[name] = _Budget(calls=0)  # the rate limit's slots are taken once per claim
                break
        if not taken:
            break
        claims += taken
    if len(claims) < limit and any(b.contended for b in budgets.values()):
        # Another claim held a limited dependency's row (PostgreSQL skips it): its budget is
        # unknown, not spent. That claim commits in a moment; a wake-up then brings a worker back
        # for the dependency's jobs instead of leaving them to the next poll.
        notify.wake_workers_on_commit()
    claims.sort(key=lambda c: (-c.job.priority, c.job.seq))
    return claims


@dataclass(frozen=True)
class _Budget:
    """How many more calls a dependency may start in this claim (None: no limit)."""

    calls: int | None
    row: Any = None
    rate: dependencies.Rate | None = None
    contended: bool = False  # its row was locked by another claim: no budget this time


_FREE = _Budget(calls=None)

# How long a claim waits for a limited dependency's breaker row another claim holds (PostgreSQL).
# That claim holds it to its commit, a few milliseconds; skipping it instead left this claim with
# none of the dependency's jobs (two workers on one limited dependency took turns: make bench:
# claim drains). Past this, the row counts as contended, as a skipped one did.
CONTENDED_WAIT = 0.1


def _budgets(gates: Gates, names: list[str], now: datetime) -> dict[str, _Budget]:
    """The flow-control budget of each of ``names`` that has a limit in force, measured on its
    breaker row locked for this transaction (a row another claim holds past ``CONTENDED_WAIT``: no
    budget this time)."""
    deps = dependencies.configured()

    def dep(name: str) -> dependencies.Dependency:
        return deps.get(name) or dependencies.Dependency(name=name)

    limited = sorted(name for name in names if breakers.flow.allowance(gates[name][1], dep(name), now).limited)
    if not limited:
        return {}
    locked = breakers.breakers_lock(limited, now=now, wait=CONTENDED_WAIT)
    epoch = now.timestamp()
    budgets = {}
    for name in limited:
        row, in_flight = locked.get(name, (None, 0))
        if row is None or breakers.decide(row, now) != breakers.Decision.ADMIT:
            budgets[name] = _Budget(calls=0, contended=row is None)
            continue
        allowed = breakers.flow.allowance(row, dep(name), now)
        calls = None if allowed.calls is None else max(0, allowed.calls - in_flight)
        if allowed.rate is not None and not breakers.flow.rate_admits(row, allowed.rate, epoch):
            calls = 0
        budgets[name] = _Budget(calls=calls, row=row, rate=allowed.rate)
    return budgets


def _take_trial(db: dialect.Dialect, name: str, seq: int, worker_id: str, now: datetime) -> list[Claim] | None:
    """The half-open trial: the dependency's highest-priority job, if its trial lease is won."""
    if db.serial_writes:
        found = seq  # the IMMEDIATE transaction holds the write lock: the probe's answer stands
    else:  # another worker may hold or have taken it
        candidates = pop_order().filter(dependency=name, run_after__lte=now, seq=seq)
        found = db.lock_skipping(candidates).values_list("seq", flat=True).first()
    if found is None or not breakers.trial_acquire(name=name, owner=worker_id, job_seq=found, now=now):
        return None  # taken by a concurrent claim, or another process started the trial first
    [job] = _take(sql.ONE_JOB, [found], worker_id, now)
    return [Claim(job=job, trial=True)]
