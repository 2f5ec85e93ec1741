"""A submission's writes: the jobs, their events and counts, all or nothing (jobs/services/submit_rows.py).

On PostgreSQL a submission reads its breakers and writes everything in one statement; on SQLite
the same rows go in one transaction. The rows are the same on both."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from jobs import breakers, selectors, services
from jobs.models import CounterMetric, EventKind, Job, JobEvent
from jobs.services import submit_rows

pytestmark = pytest.mark.django_db(transaction=True)


def _submitted(dependency: str = "local") -> int:
    return selectors.counter_totals(metric=CounterMetric.SUBMITTED).get((dependency, ""), 0)


def test_one_job_is_stored_with_its_event_and_count(user):
    job, created = services.job_submit(kind="noop", payload={"n": 1}, submitter=user)
    stored = Job.objects.get(uuid=job.uuid)
    assert created and stored.seq == job.seq and stored.payload == {"n": 1} and stored.submitter == user
    assert list(JobEvent.objects.filter(job=job).values_list("kind", "actor", "details")) == [
        (EventKind.SUBMITTED, "user:client", {"priority": 0}),
    ]
    assert _submitted() == 1
    assert not job._state.adding  # a stored instance, as Model.save leaves it


@override_settings(RESILIENT={"MAX_PENDING_PER_USER": 0})  # no cap: its count is a statement of its own
def test_on_postgresql_one_job_costs_one_statement_and_no_transaction(postgres, user):
    services.job_submit(kind="noop", submitter=user)  # warm: the registry, the breaker rows
    with CaptureQueriesContext(connection) as queries:
        services.job_submit(kind="noop", submitter=user)
    statements = [q["sql"] for q in queries.captured_queries]
    assert len(statements) == 1, statements  # the breaker read and every row in one statement
    assert statements[0].startswith("WITH new_jobs AS (INSERT")


@override_settings(RESILIENT={"MAX_PENDING_PER_USER": 0})
def test_on_postgresql_a_held_job_costs_one_statement_too(postgres, user):
    breakers.breaker_force_open(name="local", reason="maintenance", actor="user:operator")
    services.job_submit(kind="noop", submitter=user)
    with CaptureQueriesContext(connection) as queries:
        job, _ = services.job_submit(kind="noop", submitter=user)
    assert len(queries.captured_queries) == 1, [q["sql"] for q in queries.captured_queries]
    assert list(JobEvent.objects.filter(job=job).order_by("id").values_list("kind", flat=True)) == [
        EventKind.SUBMITTED, EventKind.HELD]


def test_a_held_job_gets_submitted_then_held(user):
    breakers.breaker_force_open(name="local", reason="maintenance", actor="user:operator")
    job, _ = services.job_submit(kind="noop", submitter=user)
    kinds = list(JobEvent.objects.filter(job=job).order_by("id").values_list("kind", flat=True))
    assert kinds == [EventKind.SUBMITTED, EventKind.HELD]
    held = JobEvent.objects.get(job=job, kind=EventKind.HELD)
    assert held.details == {"dependency": "local", "why": "breaker forced open", "retry_at": None}


def test_a_batch_keeps_list_order_for_jobs_and_events(user):
    breakers.breaker_force_open(name="local", reason="maintenance", actor="user:operator")
    items = [{"kind": "noop", "payload": {"n": n}} for n in range(5)] + [
        {"kind": "http", "payload": {"url": "http://127.0.0.1:1/"}}]
    answers = services.jobs_submit_batch(items=items, submitter=user)
    jobs = [job for job, _ in answers]
    assert [job.seq for job in jobs] == sorted(job.seq for job in jobs)
    assert [Job.objects.get(seq=job.seq).payload.get("n") for job in jobs] == [0, 1, 2, 3, 4, None]
    events = list(JobEvent.objects.order_by("id").values_list("job_id", "kind"))
    # Every submitted event in list order, then the held ones of the jobs behind the open breaker.
    assert events == [(job.seq, EventKind.SUBMITTED) for job in jobs] + [(job.seq, EventKind.HELD) for job in jobs[:5]]
    assert _submitted("local") == 5 and _submitted("default") == 1


def test_a_key_violation_writes_nothing_and_leaves_an_outer_transaction_usable(user):
    first, _ = services.job_submit(kind="noop", idempotency_key="k", submitter=user)
    twin = Job(kind="noop", dependency="local", idempotency_key="k", submitter=user)
    with transaction.atomic():
        with pytest.raises(IntegrityError):
            submit_rows.jobs_insert(jobs=[twin], new_events=[(twin, EventKind.SUBMITTED, "x", twin.created_at, {})],
                                    increments={(CounterMetric.SUBMITTED, "local", ""): 1},
                                    actor="x", now=twin.created_at)
        assert Job.objects.count() == 1  # the transaction still answers
    assert JobEvent.objects.count() == 1 and _submitted() == 1


def test_jobs_without_events_of_their_own_still_get_their_held_events(user):
    breakers.breaker_force_open(name="local", reason="maintenance", actor="user:operator")
    job = Job(kind="noop", dependency="local", submitter=user)
    held = submit_rows.jobs_insert(jobs=[job], new_events=[], increments={}, actor="user:client", now=job.created_at)
    assert [event[1] for event in held] == [EventKind.HELD]
    assert list(JobEvent.objects.filter(job=job).values_list("kind", "details")) == [
        (EventKind.HELD, {"dependency": "local", "why": "breaker forced open", "retry_at": None})]
