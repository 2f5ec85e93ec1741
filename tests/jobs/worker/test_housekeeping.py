"""Real worker processes: retention prunes finished jobs while pending and running ones stay, and
the counters on /metrics stay exact through pruning, restarts and several workers at once."""

from __future__ import annotations

import pytest

from jobs import breakers, services
from jobs.models import Job, JobEvent, JobStatus, WorkerHeartbeat
from tests.jobs.ops.test_metrics import key, scrape
from tests.support.processes import start_worker, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

FAST = {"RESILIENT_POLL_INTERVAL": "0.1"}
SHORT_RETENTION = {
    "RESILIENT_FINISHED_RETENTION_SECONDS": "1",
    "RESILIENT_FAILED_RETENTION_SECONDS": "1",
    "RESILIENT_PRUNE_INTERVAL": "0.5",
    "RESILIENT_PRUNE_BATCH": "7",  # several batches for 40 jobs
}


def test_a_worker_prunes_finished_jobs_and_leaves_pending_and_running_ones(tmp_path, client):
    breakers.breaker_force_open(name="default", actor="op", reason="hold the http job")
    held = services.job_submit(kind="http", payload={"url": "http://127.0.0.1:1/"})[0]
    running = services.job_submit(kind="simulate", payload={"complexity": 300, "failure_rate": 0}, priority=5)[0]
    done = [services.job_submit(kind="noop", max_attempts=1)[0] for _ in range(40)]
    worker = start_worker(tmp_path, RESILIENT_SHUTDOWN_GRACE="1", **FAST, **SHORT_RETENTION)
    try:
        wait_until(lambda: Job.objects.filter(seq=running.seq, status=JobStatus.RUNNING).exists(), timeout=30,
                   message=worker.output)
        wait_until(lambda: not Job.objects.filter(seq__in=[j.seq for j in done]).exists(), timeout=60,
                   message=worker.output)
        assert not JobEvent.objects.filter(job_id__in=[j.seq for j in done]).exists()
        assert Job.objects.get(seq=held.seq).status == JobStatus.PENDING
        assert Job.objects.get(seq=running.seq).status == JobStatus.RUNNING
        assert JobEvent.objects.filter(job_id=held.seq).exists() and JobEvent.objects.filter(job_id=running.seq).exists()
        m = scrape(client)
        assert m["resilient_jobs_finished_total"][key(dependency="local", status="succeeded")] == 40
        assert m["resilient_jobs_submitted_total"][key(dependency="local")] == 41
        assert m["resilient_jobs_submitted_total"][key(dependency="default")] == 1
    finally:
        assert worker.stop() == 0


def test_counters_are_exact_across_several_workers_a_restart_and_pruning(tmp_path, client):
    workers = [start_worker(tmp_path, f"w{i}", RESILIENT_WORKER_CONCURRENCY="4", **FAST) for i in range(3)]
    try:
        # All three polling before the first job arrives, so that they share the work.
        wait_until(lambda: WorkerHeartbeat.objects.count() == 3, timeout=30, message=lambda: workers[0].output())
        jobs = [services.job_submit(kind="noop", max_attempts=1)[0] for _ in range(300)]
        wait_until(lambda: Job.objects.filter(status=JobStatus.SUCCEEDED).count() == 300, timeout=120,
                   message=lambda: workers[0].output())
        done_by = set(JobEvent.objects.filter(kind="succeeded").values_list("actor", flat=True))
    finally:
        for worker in workers:
            assert worker.stop() == 0
    assert len(done_by) >= 2  # the work really was shared
    before = scrape(client)
    assert before["resilient_jobs_finished_total"][key(dependency="local", status="succeeded")] == 300
    assert before["resilient_jobs_submitted_total"][key(dependency="local")] == 300

    # A fresh worker, with a retention that makes every job old: it prunes them all.
    more = services.job_submit(kind="noop", max_attempts=1)[0]
    worker = start_worker(tmp_path, "after", **FAST, **SHORT_RETENTION)
    try:
        wait_until(lambda: not Job.objects.filter(seq__in=[j.seq for j in [*jobs, more]]).exists(), timeout=60,
                   message=worker.output)
    finally:
        assert worker.stop() == 0
    after = scrape(client)
    assert after["resilient_jobs_finished_total"][key(dependency="local", status="succeeded")] == 301
    assert after["resilient_jobs_submitted_total"][key(dependency="local")] == 301
    assert Job.objects.count() == 0
