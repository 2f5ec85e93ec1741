"""Counters that never go down: submitted and finished jobs by dependency (and status), written in
the transaction that records them, once per series per worker trip, summed over shards."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobs import counters, queue, selectors, services
from jobs.exceptions import PermanentJobFailure
from jobs.models import Counter, CounterMetric, Job, JobStatus
from jobs.worker import outcomes
from jobs.worker.outcomes import Attempt
from tests.jobs.ops.test_metrics import key, scrape

pytestmark = pytest.mark.django_db


def finished_totals() -> dict[tuple[str, str], int]:
    return selectors.counter_totals(metric=CounterMetric.FINISHED)


def counter_statements(ctx) -> list[str]:
    table = Counter._meta.db_table
    return [q["sql"] for q in ctx.captured_queries if q["sql"].startswith("INSERT") and table in q["sql"]]


def test_a_worker_trip_writes_each_series_once_whatever_the_number_of_jobs():
    for _ in range(6):
        services.job_submit(kind="noop", max_attempts=1)
    services.job_submit(kind="http", payload={"url": "http://127.0.0.1:1/"}, max_attempts=1)
    claims = queue.claims_take(worker_id="w", limit=10)
    assert len(claims) == 7
    finished = [
        Attempt(job=c.job, error=PermanentJobFailure("bad") if i % 3 == 0 else None, duration=0.01)
        for i, c in enumerate(claims)
    ]
    with CaptureQueriesContext(connection) as ctx:
        lost, _ = outcomes.record_and_claim(worker_id="w", finished=finished, want=0)
    assert lost == []
    assert len(counter_statements(ctx)) == 1  # one statement, one row per (dependency, status)
    expected: dict = {}
    for attempt in finished:
        status = JobStatus.FAILED if attempt.error else JobStatus.SUCCEEDED
        expected[(attempt.job.dependency, status)] = expected.get((attempt.job.dependency, status), 0) + 1
    assert finished_totals() == expected
    assert sum(expected.values()) == 7 and Job.objects.filter(status__in=[JobStatus.SUCCEEDED, JobStatus.FAILED]).count() == 7


def test_retries_count_only_when_the_job_finishes():
    job = services.job_submit(kind="noop", max_attempts=2)[0]
    queue.job_fail(job=queue.job_claim_next(worker_id="w"), worker_id="w", error="x", retryable=True)
    assert finished_totals() == {}  # back to pending: not finished
    Job.objects.filter(seq=job.seq).update(run_after=timezone.now())
    queue.job_fail(job=queue.job_claim_next(worker_id="w"), worker_id="w", error="x", retryable=True)
    assert finished_totals() == {("local", JobStatus.FAILED): 1}


def test_cancel_lease_expiry_and_submissions_count_and_replays_do_not(client):
    services.job_submit(kind="noop", idempotency_key="k")
    services.job_submit(kind="noop", idempotency_key="k")  # a replay: no new job
    cancelled = services.job_submit(kind="noop")[0]
    services.job_cancel(job_id=cancelled.uuid)
    dying = services.job_submit(kind="noop", max_attempts=1, priority=50)[0]
    assert queue.job_claim_next(worker_id="dead").seq == dying.seq
    assert queue.jobs_expire_leases(actor="sweeper", now=timezone.now() + timedelta(hours=1)) == 1
    assert Job.objects.get(seq=dying.seq).status == JobStatus.FAILED
    m = scrape(client)
    assert m["resilient_jobs_submitted_total"][key(dependency="local")] == 3
    finished = m["resilient_jobs_finished_total"]
    assert finished[key(dependency="local", status="cancelled")] == 1
    assert finished[key(dependency="local", status="failed")] == 1
    assert finished[key(dependency="default", status="succeeded")] == 0  # every configured series is present


def test_shards_are_summed_and_concurrent_upserts_lose_nothing(transactional_db):
    def add(writer: str) -> None:
        try:
            for _ in range(25):
                counters.counters_add({(CounterMetric.FINISHED, "local", JobStatus.SUCCEEDED): 2}, writer=writer)
        finally:
            connection.close()

    threads = [threading.Thread(target=add, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert finished_totals() == {("local", JobStatus.SUCCEEDED): 200}
    assert 1 < Counter.objects.count() <= counters.SHARDS
