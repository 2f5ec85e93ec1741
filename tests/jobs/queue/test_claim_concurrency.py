"""On PostgreSQL, concurrent claims (FOR UPDATE SKIP LOCKED) from real processes: every job is
claimed exactly once; and the claim query walks the ``job_pop_order`` index at any queue size."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobs import queue
from jobs.models import EventKind, Job, JobEvent, JobStatus

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[3]
PROCESSES = 4
JOBS = 2_000


def database_url() -> str:
    """The URL of the database this test runs on (pytest-django's test database)."""
    db = settings.DATABASES["default"]
    auth = quote(db.get("USER") or "postgres")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"])
    return (
        f"postgres://{auth}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"
    )


def store_jobs(n: int, *, seed: int, status: str = JobStatus.PENDING) -> None:
    rng = random.Random(seed)
    now = timezone.now() - timedelta(seconds=1)
    Job.objects.bulk_create(
        (
            Job(
                kind="noop",
                dependency="local",
                priority=rng.randint(-100, 100),
                run_after=now,
                status=status,
            )
            for _ in range(n)
        ),
        batch_size=5_000,
    )


def test_four_processes_claim_every_job_exactly_once(postgres):
    store_jobs(JOBS, seed=1)
    pop_position = {seq: i for i, seq in enumerate(queue.pop_order().values_list("seq", flat=True))}
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "resilient.settings",
        "SECRET_KEY": settings.SECRET_KEY,
        "DATABASE_URL": database_url(),
        "DB_CONN_MAX_AGE": "0",
    }
    env.pop("REDIS_URL", None)  # claims send no wake-ups; keep the processes to the database
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.support.claim_process", f"claimer-{i}"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(PROCESSES)
    ]
    try:
        for proc in procs:
            assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        for proc in procs:  # all connected: start them together
            proc.stdin.write("go\n")
            proc.stdin.flush()
        outputs = [proc.communicate(timeout=240) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    reported = [int(out.split()[1]) for out, _ in outputs]
    print("claims per process and seconds:", [out.strip() for out, _ in outputs])

    claims = list(
        JobEvent.objects.filter(kind=EventKind.CLAIMED)
        .order_by("id")
        .values_list("job_id", "actor")
    )
    per_job = Counter(job_id for job_id, _ in claims)
    assert len(per_job) == JOBS, "every job claimed"
    assert max(per_job.values()) == 1, "no job claimed twice"
    assert sum(reported) == JOBS
    assert Job.objects.filter(status=JobStatus.RUNNING).count() == JOBS
    owners = dict(Job.objects.values_list("seq", "lease_owner"))
    assert all(owners[job_id] == actor for job_id, actor in claims)
    by_worker = Counter(actor for _, actor in claims)
    assert sorted(by_worker.values()) == sorted(reported)
    assert len(by_worker) >= 2, f"the processes did not overlap: {by_worker}"
    # Each process takes the first job nobody holds, so its own claims advance in pop order.
    for worker in by_worker:
        positions = [pop_position[job_id] for job_id, actor in claims if actor == worker]
        assert positions == sorted(positions), worker


def claim_plan(**kwargs) -> str:
    """EXPLAIN the exact SELECT that job_claim_next runs."""
    with CaptureQueriesContext(connection) as captured:
        assert queue.job_claim_next(worker_id="explain", **kwargs) is not None
    [select] = [q["sql"] for q in captured.captured_queries if "SKIP LOCKED" in q["sql"]]
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + select)
        return "\n".join(row[0] for row in cursor.fetchall())


def test_the_claim_query_is_an_index_scan_of_job_pop_order(postgres):
    store_jobs(20_000, seed=2)
    store_jobs(
        20_000, seed=3, status=JobStatus.SUCCEEDED
    )  # finished jobs the partial index leaves out
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE jobs_job")
    for kwargs in ({}, {"exclude_dependencies": ["default"]}):
        plan = claim_plan(**kwargs)
        assert "Index Scan using job_pop_order on jobs_job" in plan, plan
        assert "Seq Scan" not in plan and "Sort" not in plan, plan
        assert "LockRows" in plan and "Limit" in plan, plan


def test_a_claim_that_finds_a_limited_dependencys_row_locked_wakes_a_worker_after_its_commit(
        postgres, django_capture_on_commit_callbacks):
    """Another claim holds a limited dependency's breaker row (SKIP LOCKED passes it by): this claim
    takes none of its jobs, and its commit wakes a worker for them instead of leaving them to the
    next poll (1 s by default)."""
    import psycopg
    from django.db import transaction
    from django.test import override_settings

    from jobs import breakers, notify, services

    with override_settings(RESILIENT={"DEPENDENCIES": {"svc": {"max_concurrency": 5}}}):
        services.job_submit(kind="noop", dependency="svc")
        breakers.breakers_ensure()
        with psycopg.connect(database_url()) as other:
            other.execute("SELECT name FROM jobs_breaker WHERE name = 'svc' FOR UPDATE")  # a claim in progress
            with transaction.atomic(), django_capture_on_commit_callbacks() as callbacks:
                assert queue.jobs_claim(worker_id="w", limit=10) == []
            assert notify._send_wake in callbacks
        with transaction.atomic(), django_capture_on_commit_callbacks() as callbacks:  # the row is free again
            assert len(queue.jobs_claim(worker_id="w", limit=10)) == 1
        assert notify._send_wake not in callbacks
