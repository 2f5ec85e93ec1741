"""Writing new jobs with their events and counter increments: the last step of a submission.

Each job gets its ``submitted`` event, and a ``held`` event too when its dependency's breaker
rejects calls at that moment (``breakers.holds_read``'s answer).

On PostgreSQL one statement does it all (a WITH clause reading the breakers and holding the three
INSERTs), so a one-job submission costs one round trip to the database instead of six (the
breaker read, BEGIN, the job, its event, the counter, COMMIT); a statement is atomic on its own
and reads the breakers as of the moment it writes, so nothing is half-written. SQLite has no
INSERT inside WITH: there the same rows go in one transaction, statement by statement, which
costs no round trips in-process.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from datetime import datetime

from django.db import connection, transaction
from django.db.models.sql import InsertQuery

from jobs import breakers, counters, dialect, events
from jobs.breakers import sql as breaker_sql
from jobs.models import EventKind, Job, JobEvent

# (job, kind, actor, at, details): an event of a job not stored yet (its seq is not known).
NewEvent = tuple[Job, str, str, datetime, dict]

_EVENTS = JobEvent._meta.db_table


def jobs_insert(*, jobs: list[Job], new_events: list[NewEvent], increments: Mapping[counters.Key, int],
                actor: str, now: datetime) -> list[NewEvent]:
    """Store ``jobs`` in list order (ascending ``seq``, set on each), ``new_events`` in list order,
    then a ``held`` event (by ``actor``, at ``now``) for each job whose breaker rejects calls at
    ``now``, and ``increments``, all or nothing. Returns the ``held`` events written, in job order.
    Inside a caller's transaction, in it (in a savepoint, so that a unique-key violation leaves
    that transaction usable)."""
    if not jobs:
        return []
    if dialect.current().writes_in_with:
        savepoint = transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext()
        with savepoint:
            return _insert_one_statement(jobs, new_events, increments, actor=actor, now=now)
    with transaction.atomic():
        holding = breakers.holds_read(names={job.dependency for job in jobs}, now=now)
        held = breakers.held_events(jobs=jobs, holding=holding, actor=actor, now=now)
        if len(jobs) == 1:
            jobs[0].save(force_insert=True)
        else:
            Job.objects.bulk_create(jobs)
        events.events_record([(job.seq, kind, actor, at, details)
                              for job, kind, actor, at, details in new_events + held])
        # Last: the counter rows stay locked until the commit. One row per dependency, not per job.
        counters.counters_add(increments)
    return held


def _insert_one_statement(jobs: list[Job], new_events: list[NewEvent], increments: Mapping[counters.Key, int], *,
                          actor: str, now: datetime) -> list[NewEvent]:
    """PostgreSQL: ``WITH new_jobs AS (INSERT … RETURNING seq, uuid, dependency), holding AS
    (the breakers that reject calls), new_events AS (INSERT the events joined to new_jobs by uuid,
    then the held ones), new_counts AS (counter upsert) SELECT seq, uuid, why, until FROM new_jobs``.
    Returns the held events written (``breakers.held_events``)."""
    meta = Job._meta
    query = InsertQuery(Job)
    # The columns and values Model.save would write (defaults, auto_now), compiled by Django.
    query.insert_values([f for f in meta.local_concrete_fields if f is not meta.auto_field], jobs)
    compiler = query.get_compiler(connection=connection)
    compiler.returning_fields = [meta.pk, meta.get_field("uuid"), meta.get_field("dependency")]
    [(insert_sql, insert_params)] = compiler.as_sql()
    adapt = connection.ops.adapt_datetimefield_value
    names = sorted({job.dependency for job in jobs})
    parts = [f"WITH new_jobs AS ({insert_sql}), holding AS ({breaker_sql.breakers_holding(count=len(names))})"]
    params = [*insert_params, adapt(now), *names]
    # The submitted events (joined by the job's uuid, known before the insert), then the held
    # ones in job order; ORDER BY keeps the events' ids in that order.
    rows = []
    if new_events:
        rows.append(
            "SELECT 0 AS part, e.n AS n, new_jobs.seq, e.kind, e.actor, e.at, e.details FROM new_jobs JOIN (VALUES "
            + ", ".join(["(%s, %s::uuid, %s, %s, %s::timestamptz, %s::jsonb)"] * len(new_events))
            + ") AS e (n, uuid, kind, actor, at, details) ON e.uuid = new_jobs.uuid"
        )
        for n, (job, kind, event_actor, at, details) in enumerate(new_events):
            params += [n, job.uuid, kind, event_actor, adapt(at), json.dumps(details)]
    rows.append(
        "SELECT 1 AS part, new_jobs.seq AS n, new_jobs.seq AS seq, %s AS kind, %s AS actor, %s::timestamptz AS at, "
        "jsonb_build_object('dependency', holding.name, 'why', holding.why, 'retry_at', holding.until_text) AS details "
        "FROM new_jobs JOIN holding ON holding.name = new_jobs.dependency"
    )
    params += [EventKind.HELD.value, actor, adapt(now)]
    parts.append(
        f", new_events AS (INSERT INTO {_EVENTS} (job_id, kind, actor, at, details) "  # noqa: S608 - constants
        f"SELECT seq, kind, actor, at, details FROM ({' UNION ALL '.join(rows)}) AS e ORDER BY part, n)"
    )
    upsert = counters.counters_upsert(increments)
    if upsert is not None:
        parts.append(f", new_counts AS ({upsert[0]})")
        params += upsert[1]
    parts.append(" SELECT new_jobs.seq, new_jobs.uuid, holding.why, holding.until FROM new_jobs "
                 "LEFT JOIN holding ON holding.name = new_jobs.dependency")
    with connection.cursor() as cursor:
        cursor.execute("".join(parts), params)
        stored = {uuid: (seq, why, until) for seq, uuid, why, until in cursor.fetchall()}
    holding = {}  # as holds_read answers: dependency -> (why, until)
    for job in jobs:
        job.seq, why, until = stored[job.uuid]
        job._state.adding = False
        job._state.db = connection.alias
        if why is not None:
            holding[job.dependency] = (why, until)
    # The events the statement wrote, as SQLite's path builds them (the SQL's retry_at text is
    # isoformat()'s, tests/jobs/breakers/test_holds_sql.py).
    return breakers.held_events(jobs=jobs, holding=holding, actor=actor, now=now)
