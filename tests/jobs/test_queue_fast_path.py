"""The worker's fast path: the SQLite claim walks the pop-order index; succeed + claim in one go."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs import queue, services
from jobs.models import EventKind, Job, JobStatus

pytestmark = pytest.mark.django_db


def submit(priority: int = 0) -> Job:
    job, _ = services.job_submit(kind="noop", priority=priority)
    return job


def event_kinds(job: Job) -> list[str]:
    return list(job.events.order_by("id").values_list("kind", flat=True))


def test_sqlite_claim_reads_the_pop_order_index_without_sorting():
    if connection.vendor != "sqlite":
        pytest.skip("SQLite planner behaviour")
    for priority in (0, 5, -3):
        submit(priority)
    with CaptureQueriesContext(connection) as ctx:
        job = queue.job_claim_next(worker_id="w")
    assert job is not None and job.priority == 5
    select = next(q["sql"] for q in ctx.captured_queries if q["sql"].startswith("SELECT * FROM jobs_job"))
    with connection.cursor() as cur:
        cur.execute("EXPLAIN QUERY PLAN " + select)
        plan = " | ".join(str(row[-1]) for row in cur.fetchall())
    assert "USING INDEX job_pop_order" in plan, plan
    assert "TEMP B-TREE" not in plan, plan


def test_sqlite_claim_honours_run_after_and_excluded_dependencies():
    later = submit(10)
    Job.objects.filter(seq=later.seq).update(run_after=later.run_after.replace(year=later.run_after.year + 1))
    held, _ = services.job_submit(kind="noop", priority=9, dependency="default")
    expected = submit(1)
    job = queue.job_claim_next(worker_id="w", exclude_dependencies=["default"])
    assert job is not None and job.seq == expected.seq
    assert Job.objects.get(seq=held.seq).status == JobStatus.PENDING


def test_succeed_and_claim_next_records_both_in_pop_order():
    first, second, third = submit(0), submit(7), submit(3)
    claimed = queue.job_claim_next(worker_id="w")
    assert claimed.seq == second.seq
    kept, following = queue.job_succeed_and_claim_next(job=claimed, worker_id="w", result={"ok": 1}, duration=0.01)
    assert kept is True and following is not None and following.seq == third.seq
    done = Job.objects.get(seq=second.seq)
    assert done.status == JobStatus.SUCCEEDED and done.result == {"ok": 1} and done.attempts == 1
    assert event_kinds(done) == [EventKind.SUBMITTED, EventKind.CLAIMED, EventKind.SUCCEEDED]
    running = Job.objects.get(seq=third.seq)
    assert running.status == JobStatus.RUNNING and running.lease_owner == "w"
    assert event_kinds(running) == [EventKind.SUBMITTED, EventKind.CLAIMED]
    kept, last = queue.job_succeed_and_claim_next(job=following, worker_id="w", result=None)
    assert kept and last.seq == first.seq
    kept, none = queue.job_succeed_and_claim_next(job=last, worker_id="w", result=None)
    assert kept and none is None
    assert Job.objects.filter(status=JobStatus.SUCCEEDED).count() == 3


def test_succeed_and_claim_next_after_a_lost_lease_writes_nothing_for_the_lost_job():
    job = submit()
    other = submit()
    claimed = queue.job_claim_next(worker_id="w")
    Job.objects.filter(seq=claimed.seq).update(lease_owner="someone-else")
    kept, following = queue.job_succeed_and_claim_next(job=claimed, worker_id="w", result={})
    assert kept is False
    assert Job.objects.get(seq=job.seq).status == JobStatus.RUNNING  # still the other worker's
    assert EventKind.SUCCEEDED not in event_kinds(job)
    assert following is not None and following.seq == other.seq
