"""The worker's hot path: claims of many jobs at once, and the outcomes of many recorded in one go."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobs import breakers, queue, services
from jobs.exceptions import DependencyFailure, PermanentJobFailure
from jobs.models import Breaker, BreakerEvent, EventKind, Job, JobStatus
from jobs.worker import outcomes
from jobs.worker.outcomes import Attempt

pytestmark = pytest.mark.django_db


def submit(priority: int = 0, **fields) -> Job:
    job, _ = services.job_submit(kind="noop", priority=priority, **fields)
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
    update = next(q["sql"] for q in ctx.captured_queries if "INDEXED BY" in q["sql"] and "UPDATE" in q["sql"])
    with connection.cursor() as cur:
        cur.execute("EXPLAIN QUERY PLAN " + update)
        plan = " | ".join(str(row[-1]) for row in cur.fetchall())
    assert "INDEX job_pop_order" in plan, plan
    assert "TEMP B-TREE" not in plan, plan
    # The claimed rows are then updated by primary key, not found again through an index on status.
    assert "USING INTEGER PRIMARY KEY" in plan and "job_status" not in plan, plan


def test_claim_honours_run_after_and_excluded_dependencies():
    later = submit(10)
    Job.objects.filter(seq=later.seq).update(run_after=later.run_after + timedelta(days=365))
    held = submit(9, dependency="default")
    expected = submit(1)
    job = queue.job_claim_next(worker_id="w", exclude_dependencies=["default"])
    assert job is not None and job.seq == expected.seq
    assert Job.objects.get(seq=held.seq).status == JobStatus.PENDING


def test_claim_takes_up_to_limit_in_pop_order_each_with_its_event():
    jobs = [submit(p) for p in (0, 7, 3, 7, -2)]
    claims = queue.claims_take(worker_id="w", limit=3)
    assert [c.job.seq for c in claims] == [jobs[1].seq, jobs[3].seq, jobs[2].seq]
    for claim in claims:
        job, row = claim.job, Job.objects.get(seq=claim.job.seq)
        assert row.status == JobStatus.RUNNING and row.lease_owner == "w" and row.started_at is not None
        assert event_kinds(row) == [EventKind.SUBMITTED, EventKind.CLAIMED]
        assert job.payload == {} and job.kind == "noop" and job.uuid == row.uuid and not claim.trial
    assert [j.seq for j in queue.jobs_claim(worker_id="w", limit=10)] == [jobs[0].seq, jobs[4].seq]
    assert queue.jobs_claim(worker_id="w", limit=10) == []


def finished(job: Job, result=None, error: BaseException | None = None) -> Attempt:
    return Attempt(job=job, result=result, error=error, duration=0.01)


def test_record_and_claim_stores_every_outcome_and_claims_the_freed_slots_together():
    jobs = [submit(p) for p in (5, 4, 3, 2, 1)]
    first = queue.jobs_claim(worker_id="w", limit=2)
    lost, following = outcomes.record_and_claim(
        worker_id="w", finished=[finished(first[0], {"n": 0}), finished(first[1], {"n": 1})], want=2
    )
    assert lost == [] and [c.job.seq for c in following] == [jobs[2].seq, jobs[3].seq]
    for n, job in enumerate(first):
        row = Job.objects.get(seq=job.seq)
        assert row.status == JobStatus.SUCCEEDED and row.result == {"n": n} and row.attempts == 1
        assert row.lease_owner == "" and row.lease_expires_at is None and row.finished_at is not None
        assert event_kinds(row) == [EventKind.SUBMITTED, EventKind.CLAIMED, EventKind.SUCCEEDED]
        assert row.events.get(kind=EventKind.SUCCEEDED).details == {"duration": 0.01}
    assert Job.objects.get(seq=jobs[4].seq).status == JobStatus.PENDING


def test_recording_costs_the_same_statements_for_one_success_or_twenty():
    for _ in range(21):
        submit()

    def statements(n: int) -> int:
        claimed = queue.jobs_claim(worker_id="w", limit=n)
        with CaptureQueriesContext(connection) as ctx:
            outcomes.record_and_claim(worker_id="w", finished=[finished(j, {}) for j in claimed], want=0)
        return len(ctx.captured_queries)

    assert statements(1) == statements(20)
    assert Job.objects.filter(status=JobStatus.SUCCEEDED).count() == 21


def test_a_lost_lease_discards_only_that_outcome():
    mine, stolen = submit(2), submit(1)
    claimed = queue.jobs_claim(worker_id="w", limit=2)
    Job.objects.filter(seq=stolen.seq).update(lease_owner="someone-else")
    lost = outcomes.record(worker_id="w", finished=[finished(j, {}) for j in claimed])
    assert [a.job.seq for a in lost] == [stolen.seq]
    assert Job.objects.get(seq=mine.seq).status == JobStatus.SUCCEEDED
    row = Job.objects.get(seq=stolen.seq)
    assert row.status == JobStatus.RUNNING and row.lease_owner == "someone-else"
    assert EventKind.SUCCEEDED not in event_kinds(row)


def test_failures_in_a_batch_retry_and_count_for_the_breaker_and_a_later_success_resets_it():
    ok, bad, fatal = submit(3, dependency="default"), submit(2, dependency="default"), submit(1, dependency="default")
    claimed = queue.jobs_claim(worker_id="w", limit=3)
    outcomes.record(worker_id="w", finished=[
        finished(claimed[0], {"fine": True}),
        finished(claimed[1], error=DependencyFailure("HTTP 503")),
        finished(claimed[2], error=PermanentJobFailure("HTTP 404")),
    ])
    assert Job.objects.get(seq=ok.seq).status == JobStatus.SUCCEEDED
    retried = Job.objects.get(seq=bad.seq)
    assert retried.status == JobStatus.PENDING and retried.attempts == 1 and retried.run_after > timezone.now()
    assert event_kinds(retried)[-1] == EventKind.RETRY_SCHEDULED
    assert Job.objects.get(seq=fatal.seq).status == JobStatus.FAILED
    assert Breaker.objects.get(name="default").failures == 1  # the 503 counted, the 404 did not
    assert BreakerEvent.objects.filter(breaker_id="default", kind="failure").count() == 1

    again = submit(dependency="default")
    [job] = queue.jobs_claim(worker_id="w", limit=1)
    assert job.seq == again.seq
    outcomes.record(worker_id="w", finished=[finished(job, {})])
    assert Breaker.objects.get(name="default").failures == 0


def test_a_success_on_a_healthy_breaker_writes_nothing_to_it():
    submit(dependency="default")
    breakers.breakers_ensure()
    Breaker.objects.filter(name="default").update(probe_window=breakers.flow.SLOW_START_CEILING)  # proven
    [job] = queue.jobs_claim(worker_id="w", limit=1)
    before = Breaker.objects.values().get(name="default")
    with CaptureQueriesContext(connection) as ctx:
        outcomes.record(worker_id="w", finished=[finished(job, {})])
    assert Breaker.objects.values().get(name="default") == before
    assert not [q for q in ctx.captured_queries if "jobs_breaker" in q["sql"] and not q["sql"].startswith("SELECT")]


def test_one_unstorable_outcome_does_not_take_the_batch_down_with_it():
    good, bad = submit(2), submit(1)
    claimed = queue.jobs_claim(worker_id="w", limit=2)
    attempts = [finished(claimed[0], {"ok": True}), finished(claimed[1], {"obj": object()})]
    with pytest.raises(TypeError):
        outcomes.record(worker_id="w", finished=attempts)
    assert Job.objects.filter(status=JobStatus.RUNNING).count() == 2  # the batch rolled back whole
    lost = outcomes.record_each(worker_id="w", finished=attempts)
    assert [a.job.seq for a in lost] == [bad.seq]
    assert Job.objects.get(seq=good.seq).status == JobStatus.SUCCEEDED
    assert Job.objects.get(seq=bad.seq).status == JobStatus.RUNNING  # left to its lease


def test_a_claimed_job_reads_like_the_row_it_came_from():
    submit(3, payload={"a": [1, "é", None]}, idempotency_key="key-1", max_attempts=7)
    [job] = queue.jobs_claim(worker_id="w", limit=1)
    row = Job.objects.get(seq=job.seq)
    for field in Job._meta.concrete_fields:  # the deferred ones load on access
        assert getattr(job, field.attname) == getattr(row, field.attname), field.name


def test_the_gates_read_every_breaker_exactly_as_the_orm_does():
    from jobs import breakers

    breakers.breaker_force_open(name="default", actor="t", reason="maintenance", ttl_seconds=60)
    for _ in range(10):  # trips it: opened_at, retry_at, held_since set
        breakers.breaker_record(name="local", outcome=breakers.Outcome.FAILURE, error="boom")
    gates = breakers.claim_gates(now=timezone.now())
    assert gates["local"][1].state == "open" and gates["default"][0] == breakers.Decision.REJECT
    for name, (_, row) in gates.items():
        orm = Breaker.objects.get(name=name)
        for field in Breaker._meta.concrete_fields:
            assert getattr(row, field.attname) == getattr(orm, field.attname), (name, field.name)


def test_sqlite_claim_around_an_open_breaker_probes_each_dependency_through_its_index():
    if connection.vendor != "sqlite":
        pytest.skip("SQLite planner behaviour")
    from jobs import breakers

    for _ in range(30):
        submit(9, dependency="default")  # held: their breaker is forced open
    wanted = [submit(p) for p in (1, 5, 3)]
    breakers.breaker_force_open(name="default", actor="t", reason="maintenance")
    with CaptureQueriesContext(connection) as ctx:
        claimed = queue.jobs_claim(worker_id="w", limit=3)
    assert [j.seq for j in claimed] == [wanted[1].seq, wanted[2].seq, wanted[0].seq]
    reads = [q["sql"] for q in ctx.captured_queries
             if q["sql"].startswith("SELECT") and "jobs_job" in q["sql"] and "FROM jobs_breaker" not in q["sql"]]
    assert reads, ctx.captured_queries
    for sql in reads:  # no read of the job table sorts pending rows: each walks an index in order
        with connection.cursor() as cur:
            cur.execute("EXPLAIN QUERY PLAN " + sql)
            plan = " | ".join(str(row[-1]) for row in cur.fetchall())
        assert "TEMP B-TREE" not in plan, (sql, plan)
    assert Job.objects.filter(dependency="default", status=JobStatus.PENDING).count() == 30


def test_a_batch_writes_breaker_rows_in_name_order_so_two_workers_cannot_deadlock(settings):
    from jobs import breakers

    settings.RESILIENT = {"DEPENDENCIES": {"alpha": {}, "beta": {}}}
    b, a = submit(2, dependency="beta"), submit(1, dependency="alpha")
    claimed = {j.dependency: j for j in queue.jobs_claim(worker_id="w", limit=2)}
    outcomes.record(worker_id="w", finished=[  # beta finished first
        finished(claimed["beta"], error=DependencyFailure("HTTP 503")),
        finished(claimed["alpha"], error=DependencyFailure("HTTP 503")),
    ])
    written = list(BreakerEvent.objects.filter(kind="failure").order_by("id").values_list("breaker_id", flat=True))
    assert written == ["alpha", "beta"]
    assert {breakers.claim_gates(now=timezone.now())[n][1].failures for n in ("alpha", "beta")} == {1}
    assert {a.seq, b.seq} == {j.seq for j in claimed.values()}


def test_on_postgresql_the_claim_reads_the_breakers_again_after_recording():
    submit(2), submit(1)
    [job] = queue.jobs_claim(worker_id="w", limit=1)
    with CaptureQueriesContext(connection) as ctx:
        outcomes.record_and_claim(worker_id="w", finished=[finished(job, {})], want=1)
    reads = [q for q in ctx.captured_queries if q["sql"].startswith("SELECT") and "FROM jobs_breaker" in q["sql"]]
    # SQLite holds the write lock for the whole trip, so one read serves both; PostgreSQL does not.
    assert len(reads) == (1 if connection.vendor == "sqlite" else 2)
