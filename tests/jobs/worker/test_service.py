"""Real worker processes: crash recovery, graceful shutdown, the embedded server, scale-out."""

from __future__ import annotations

import signal
from collections import Counter

import pytest
import requests
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.authtoken.models import Token

from jobs import services
from jobs.models import EventKind, Job, JobEvent, JobStatus
from tests.support.processes import free_port, start_serve, start_worker, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

FAST = {"RESILIENT_POLL_INTERVAL": "0.1", "RESILIENT_RETRY_BACKOFF_BASE": "0.1"}


def status_of(job: Job) -> str:
    job.refresh_from_db()
    return job.status


def test_killed_worker_job_is_reclaimed_after_its_lease_and_finished(tmp_path):
    job, _ = services.job_submit(kind="simulate", payload={"complexity": 15, "failure_rate": 0})
    first = start_worker(tmp_path, "first", RESILIENT_LEASE_SECONDS="1.5", **FAST)
    try:
        wait_until(lambda: status_of(job) == JobStatus.RUNNING, timeout=20, message=first.output)
        owner = Job.objects.get(seq=job.seq).lease_owner
        first.signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        first.stop()
    assert status_of(job) == JobStatus.RUNNING  # nobody has noticed yet: the lease still runs
    second = start_worker(tmp_path, "second", RESILIENT_LEASE_SECONDS="1.5", **FAST)
    try:
        wait_until(lambda: status_of(job) == JobStatus.SUCCEEDED, timeout=30, message=second.output)
    finally:
        assert second.stop() == 0
    job.refresh_from_db()
    assert job.attempts == 2  # the killed attempt counts
    history = list(job.events.values_list("kind", "actor"))
    assert [kind for kind, _ in history] == ["submitted", "claimed", "lease_expired", "claimed", "succeeded"]
    assert history[1][1] == owner and history[3][1] != owner
    expired = job.events.get(kind=EventKind.LEASE_EXPIRED)
    assert expired.details["previous_owner"] == owner


def sigterm_once_running(worker, job: Job) -> None:
    """SIGTERM ``worker`` once it runs ``job``; it must exit 0 within 20 s."""
    try:
        wait_until(lambda: status_of(job) == JobStatus.RUNNING, timeout=20, message=worker.output)
        worker.signal(signal.SIGTERM)
        assert worker.wait(timeout=20) == 0
    finally:
        worker.stop()


def test_sigterm_lets_the_running_job_finish_and_exits_0(tmp_path):
    job, _ = services.job_submit(kind="simulate", payload={"complexity": 10, "failure_rate": 0})
    later, _ = services.job_submit(kind="noop", priority=-5)
    sigterm_once_running(start_worker(tmp_path, RESILIENT_SHUTDOWN_GRACE="20", RESILIENT_WORKER_CONCURRENCY="1", **FAST), job)
    assert status_of(job) == JobStatus.SUCCEEDED
    assert status_of(later) == JobStatus.PENDING  # stopped claiming
    assert not Job.objects.filter(status=JobStatus.RUNNING).exists()


def test_sigterm_past_the_grace_period_releases_the_job_without_spending_an_attempt(tmp_path):
    job, _ = services.job_submit(kind="simulate", payload={"complexity": 300, "failure_rate": 0})
    sigterm_once_running(start_worker(tmp_path, RESILIENT_SHUTDOWN_GRACE="0.5", **FAST), job)
    job.refresh_from_db()
    assert job.status == JobStatus.PENDING and job.attempts == 0 and job.lease_owner == ""
    assert list(job.events.values_list("kind", flat=True)) == ["submitted", "claimed", "released"]


def test_embedded_serve_runs_submitted_jobs(tmp_path):
    user = get_user_model().objects.create_user("embedded", password="x-embedded-1")
    token = Token.objects.create(user=user).key
    port = free_port()
    server = start_serve(tmp_path, port, RESILIENT_POLL_INTERVAL="30")  # only wake-ups can explain speed
    try:
        response = requests.post(
            f"http://127.0.0.1:{port}/api/jobs/",
            json={"kind": "simulate", "payload": {"complexity": 1, "failure_rate": 0}},
            headers={"Authorization": f"Token {token}"},
            timeout=10,
        )
        assert response.status_code == 201, response.text
        job = Job.objects.get(uuid=response.json()["id"])
        wait_until(lambda: status_of(job) == JobStatus.SUCCEEDED, timeout=10, message=server.output)
        detail = requests.get(
            f"http://127.0.0.1:{port}/api/jobs/{job.uuid}/", headers={"Authorization": f"Token {token}"}, timeout=10
        ).json()
        assert detail["status"] == "succeeded" and detail["result"] == {"slept_ms": 100}
    finally:
        assert server.stop() == 0


@pytest.mark.usefixtures("postgres")
def test_scale_out_three_workers_run_every_job_exactly_once_in_priority_order(tmp_path, redis_url):
    priorities = [(i * 37) % 201 - 100 for i in range(3000)]
    Job.objects.bulk_create([Job(kind="noop", dependency="local", priority=p) for p in priorities])
    slots = 10
    env = {**FAST, "REDIS_URL": redis_url, "RESILIENT_WORKER_CONCURRENCY": str(slots)}
    workers = [start_worker(tmp_path, f"w{i}", **env) for i in range(3)]
    try:
        wait_until(
            lambda: Job.objects.filter(status=JobStatus.SUCCEEDED).count() == 3000,
            timeout=180, interval=0.5,
            message=lambda: f"{Counter(Job.objects.values_list('status', flat=True))} {workers[0].output()[-2000:]}",
        )
    finally:
        codes = [w.stop() for w in workers]
    assert codes == [0, 0, 0]
    succeeded = Counter(JobEvent.objects.filter(kind=EventKind.SUCCEEDED).values_list("job_id", flat=True))
    assert len(succeeded) == 3000 and set(succeeded.values()) == {1}
    claims = Counter(JobEvent.objects.filter(kind=EventKind.CLAIMED).values_list("job_id", flat=True))
    twice = [job for job, n in claims.items() if n > 1]
    assert not twice, [  # each job's story: a second claim means an outcome was lost
        list(JobEvent.objects.filter(job_id=job).order_by("id").values_list("kind", "actor", "at")) for job in twice[:2]
    ]
    assert sum(claims.values()) == 3000
    assert len(set(JobEvent.objects.filter(kind=EventKind.CLAIMED).values_list("actor", flat=True))) == 3
    # All jobs were available at once, so claims follow priority. Each worker's own claims (in
    # the order of their events' ids) never go up in priority: every claim takes the top of what
    # is left. Across workers, a lower-priority job may only be claimed before a higher one by a
    # worker claiming at about the same moment: at most GRACE seconds apart, by the claims' times.
    events = list(JobEvent.objects.filter(kind=EventKind.CLAIMED).order_by("id").values_list("actor", "job__priority", "at"))
    for actor in {e[0] for e in events}:
        mine = [priority for who, priority, _ in events if who == actor]
        assert mine == sorted(mine, reverse=True), f"{actor} claimed out of pop order"
    first_claim_of = {}
    for _, priority, at in sorted(events, key=lambda e: e[2]):
        first_claim_of.setdefault(priority, at)
    last_claim_of = {}
    for _, priority, at in events:
        last_claim_of[priority] = max(at, last_claim_of.get(priority, at))
    worst = max(
        (last_claim_of[high] - first_claim_of[low]).total_seconds()
        for high in last_claim_of for low in first_claim_of if high > low
    )
    print(f"worst overtaking: {worst:.3f}s")
    assert worst <= 0.5, f"a higher-priority job was claimed {worst:.3f}s after a lower-priority one"


def test_a_worker_does_not_start_a_scheduled_job_before_its_run_after(tmp_path):
    scheduled, _ = services.job_submit(kind="noop", priority=50, delay_seconds=4)
    now, _ = services.job_submit(kind="noop")
    worker = start_worker(tmp_path, **FAST)
    try:
        # The worker is live (it ran the later, lower job) and still leaves the scheduled one alone.
        wait_until(lambda: status_of(now) == JobStatus.SUCCEEDED, timeout=20, message=worker.output)
        checked_at = timezone.now()
        if checked_at < scheduled.run_after:  # a slow start may already have reached the time
            assert status_of(scheduled) == JobStatus.PENDING
        wait_until(lambda: status_of(scheduled) == JobStatus.SUCCEEDED, timeout=20, message=worker.output)
    finally:
        assert worker.stop() == 0
    scheduled.refresh_from_db()
    claimed = scheduled.events.get(kind=EventKind.CLAIMED)
    assert claimed.at >= scheduled.run_after
    assert scheduled.started_at >= scheduled.run_after
