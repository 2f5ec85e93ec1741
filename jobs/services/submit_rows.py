"""Writing new jobs with their events and counter increments: the last step of a submission.

On PostgreSQL one statement does it all (a WITH clause holding the three INSERTs), so a one-job
submission costs one round trip to the database for its writes instead of six (BEGIN, the job,
its event, the counter, COMMIT, and the breaker read that now comes first); a statement is atomic
on its own, so nothing is half-written. SQLite has no INSERT inside WITH: there the same rows go
in one transaction, statement by statement, which costs no round trips in-process.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from datetime import datetime

from django.db import connection, transaction
from django.db.models.sql import InsertQuery

from jobs import counters, dialect, events
from jobs.models import Job, JobEvent

# (job, kind, actor, at, details): an event of a job not stored yet (its seq is not known).
NewEvent = tuple[Job, str, str, datetime, dict]

_EVENTS = JobEvent._meta.db_table


def jobs_insert(*, jobs: list[Job], new_events: list[NewEvent], increments: Mapping[counters.Key, int]) -> None:
    """Store ``jobs`` in list order (ascending ``seq``, set on each), ``new_events`` in list order
    and ``increments``, all or nothing. Inside a caller's transaction, in it (in a savepoint, so
    that a unique-key violation leaves that transaction usable)."""
    if not jobs:
        return
    if dialect.current().writes_in_with:
        savepoint = transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext()
        with savepoint:
            _insert_one_statement(jobs, new_events, increments)
        return
    with transaction.atomic():
        if len(jobs) == 1:
            jobs[0].save(force_insert=True)
        else:
            Job.objects.bulk_create(jobs)
        events.events_record([(job.seq, kind, actor, at, details) for job, kind, actor, at, details in new_events])
        # Last: the counter rows stay locked until the commit. One row per dependency, not per job.
        counters.counters_add(increments)


def _insert_one_statement(jobs: list[Job], new_events: list[NewEvent], increments: Mapping[counters.Key, int]) -> None:
    """PostgreSQL: ``WITH new_jobs AS (INSERT … RETURNING seq, uuid), e AS (INSERT events joined
    to new_jobs by uuid), c AS (counter upsert) SELECT seq, uuid FROM new_jobs``."""
    meta = Job._meta
    query = InsertQuery(Job)
    # The columns and values Model.save would write (defaults, auto_now), compiled by Django.
    query.insert_values([f for f in meta.local_concrete_fields if f is not meta.auto_field], jobs)
    compiler = query.get_compiler(connection=connection)
    compiler.returning_fields = [meta.pk, meta.get_field("uuid")]
    [(insert_sql, insert_params)] = compiler.as_sql()
    parts, params = [f"WITH new_jobs AS ({insert_sql})"], list(insert_params)
    if new_events:
        # Joined by the job's uuid (known before the insert); ORDER BY keeps the events' ids in list order.
        adapt = connection.ops.adapt_datetimefield_value
        parts.append(
            f", new_events AS (INSERT INTO {_EVENTS} (job_id, kind, actor, at, details) "  # noqa: S608 - constants
            "SELECT new_jobs.seq, e.kind, e.actor, e.at, e.details FROM new_jobs JOIN (VALUES "
            + ", ".join(["(%s, %s::uuid, %s, %s, %s::timestamptz, %s::jsonb)"] * len(new_events))
            + ") AS e (n, uuid, kind, actor, at, details) ON e.uuid = new_jobs.uuid ORDER BY e.n)"
        )
        for n, (job, kind, actor, at, details) in enumerate(new_events):
            params += [n, job.uuid, kind, actor, adapt(at), json.dumps(details)]
    upsert = counters.counters_upsert(increments)
    if upsert is not None:
        parts.append(f", new_counts AS ({upsert[0]})")
        params += upsert[1]
    parts.append(" SELECT seq, uuid FROM new_jobs")
    with connection.cursor() as cursor:
        cursor.execute("".join(parts), params)
        seq_of = dict((uuid, seq) for seq, uuid in cursor.fetchall())
    for job in jobs:
        job.seq = seq_of[job.uuid]
        job._state.adding = False
        job._state.db = connection.alias
