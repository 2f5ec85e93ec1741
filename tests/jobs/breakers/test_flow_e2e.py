"""Flow control end to end: real ``runworker jobs`` processes (10 slots each), the real HTTP stub on
127.0.0.1 counting calls and peak concurrency, the shared breaker rows in the test database."""

from __future__ import annotations

import json
import signal
import time

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from jobs import services
from jobs.models import Breaker, Job, JobStatus
from tests.support.downstream import Downstream
from tests.support.processes import Process, start_worker, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

THRESHOLD = 3
WORKER_ENV = {
    "RESILIENT_BREAKER_FAILURE_THRESHOLD": str(THRESHOLD),
    "RESILIENT_BREAKER_RESET_TIMEOUT": "120",  # no trial during a test: the open period outlasts it
    "RESILIENT_POLL_INTERVAL": "0.1",
    "RESILIENT_LEASE_SECONDS": "15",
    "RESILIENT_RETRY_BACKOFF_BASE": "0.1",
    "RESILIENT_RETRY_BACKOFF_MAX": "0.2",
    "RESILIENT_WORKER_CONCURRENCY": "10",
    "RESILIENT_SHUTDOWN_GRACE": "2",
}


@pytest.fixture
def workers(tmp_path):
    started: list[Process] = []

    def start(count: int, **env: str) -> list[Process]:
        for _ in range(count):
            started.append(start_worker(tmp_path, f"worker{len(started)}", **{**WORKER_ENV, **env}))
        return started[-count:]

    yield start
    for proc in started:
        proc.stop(timeout=10)


def submit_http(stub: Downstream, count: int, *, path: str = "/work", priority: int = 0) -> list[Job]:
    return [
        services.job_submit(kind="http", payload={"url": stub.url(f"{path}/{i}")}, priority=priority,
                            max_attempts=50)[0]
        for i in range(count)
    ]


def statuses(jobs: list[Job]) -> set[str]:
    return set(Job.objects.filter(seq__in=[j.seq for j in jobs]).values_list("status", flat=True))


def limits(**options: object) -> dict[str, str]:
    return {"RESILIENT_DEPENDENCIES": json.dumps({"default": options})}


@pytest.mark.parametrize("processes", [1, 3])
def test_a_dead_downstream_takes_at_most_failure_threshold_calls_before_its_breaker_opens(stub, workers, processes):
    stub.fail(503)
    backlog = submit_http(stub, 40)
    workers(processes)
    wait_until(lambda: Breaker.objects.get(name="default").state == "open", timeout=60,
               message="the breaker to open")
    time.sleep(1.0)  # anything admitted late would arrive now
    assert len(stub.calls) <= THRESHOLD, f"{len(stub.calls)} calls reached the dead downstream"
    assert len(stub.calls) >= 1
    # No attempt was spent by a job that was never called: attempts add up to the calls made.
    jobs = Job.objects.filter(seq__in=[j.seq for j in backlog])
    assert sum(jobs.values_list("attempts", flat=True)) == len(stub.calls)
    assert set(jobs.values_list("status", flat=True)) == {JobStatus.PENDING}


def test_a_cap_of_two_holds_across_three_workers(stub, workers):
    stub.heal(delay=0.3)
    jobs = submit_http(stub, 24)
    workers(3, **limits(max_concurrency=2))
    wait_until(lambda: statuses(jobs) == {JobStatus.SUCCEEDED}, timeout=90, message="the jobs to drain")
    assert stub.max_concurrent == 2, "the cap was exceeded or never reached"
    assert set(Job.objects.filter(seq__in=[j.seq for j in jobs]).values_list("attempts", flat=True)) == {1}


def test_a_rate_of_five_per_second_holds_across_three_workers(stub, workers):
    jobs = submit_http(stub, 20)
    workers(3, **limits(rate_limit="5/s"))
    wait_until(lambda: statuses(jobs) == {JobStatus.SUCCEEDED}, timeout=90, message="the jobs to drain")
    starts = sorted(c.monotonic for c in stub.calls)
    assert len(starts) == 20
    busiest = max(sum(1 for t in starts if s <= t <= s + 1.0) for s in starts)
    assert busiest <= 6, f"{busiest} calls started within one second"
    assert starts[-1] - starts[0] >= 19 * 0.2 - 0.05, "the limit spaces starts 0.2 s apart"
    assert set(Job.objects.filter(seq__in=[j.seq for j in jobs]).values_list("attempts", flat=True)) == {1}


def test_a_killed_workers_call_stops_counting_when_its_lease_expires(stub, workers):
    stub.set("/hang/0", status=200, delay=60)
    [hung] = submit_http(stub, 1, path="/hang", priority=5)
    env = {**limits(max_concurrency=1), "RESILIENT_LEASE_SECONDS": "3"}
    [first] = workers(1, **env)
    wait_until(lambda: len(stub.calls) == 1, timeout=30, message="the hanging call")
    later = submit_http(stub, 1, path="/next")
    first.signal(signal.SIGKILL)
    killed_at = time.monotonic()
    stub.set("/hang/0", status=200)  # its retry, once the lease expired, answers at once
    workers(1, **env)
    wait_until(lambda: statuses(later) == {JobStatus.SUCCEEDED}, timeout=60, message="the next job to run")
    next_call = next(c for c in stub.calls if c.path == "/next/0")
    assert next_call.monotonic - killed_at >= 1.0, "the dead worker's slot was free before its lease expired"
    wait_until(lambda: statuses([hung]) == {JobStatus.SUCCEEDED}, timeout=60, message="the hung job's retry")


def test_adaptive_concurrency_converges_to_what_the_downstream_serves(stub, workers):
    stub.set(delay=0.2, capacity=5)
    jobs = submit_http(stub, 90)
    workers(3, RESILIENT_BREAKER_FAILURE_THRESHOLD="10",
            **limits(concurrency={"mode": "adaptive", "min": 1, "max": 30}))
    wait_until(lambda: statuses(jobs) == {JobStatus.SUCCEEDED}, timeout=120, message="the jobs to drain")
    calls = stub.calls
    later = [c for c in calls if c.at >= calls[0].at + 3.0]
    assert later, "the drain ended before it could settle"
    ok = sum(1 for c in later if c.status == 200) / len(later)
    assert ok >= 0.9, f"only {ok:.0%} of the calls after the first 3 s succeeded"
    limit = Breaker.objects.get(name="default").adaptive_limit
    assert 3 <= limit <= 9, f"the adaptive limit ended at {limit}"


@pytest.mark.parametrize("processes", [1, 3])
def test_a_success_that_lifts_the_probe_limit_wakes_the_workers_it_held(stub, workers, processes, settings):
    """A claim the probe limit cut short leaves its worker waiting; the success that widens the
    allowance wakes workers at its commit instead of leaving them to the next poll (30 s here).
    Across processes the wake-up travels through Redis: on SQLite (no Redis) one process only."""
    if processes > 1 and "redis" not in settings.CHANNEL_LAYERS["default"]["BACKEND"].lower():
        pytest.skip("cross-process wake-ups need the Redis channel layer")
    stub.heal(delay=0.05)
    stub.set("/work/0", status=503)  # the first call fails: probing from a window of 3, then 2
    jobs = [services.job_submit(kind="http", payload={"url": stub.url(f"/work/{i}")}, max_attempts=1)[0]
            for i in range(30)]
    # The submissions' wake-ups wait in Redis for the workers: drop them, so that only the
    # wake-ups under test can start the jobs the probe limit held.
    async_to_sync(get_channel_layer().flush)()
    started = time.monotonic()
    workers(processes, RESILIENT_POLL_INTERVAL="30")
    wait_until(lambda: JobStatus.PENDING not in statuses(jobs) and JobStatus.RUNNING not in statuses(jobs),
               timeout=25, message="the drain to finish before the first poll")
    assert time.monotonic() - started < 25
    assert len(stub.calls) == 30


def test_a_rate_limit_that_never_binds_does_not_hold_a_worker_to_one_job_per_poll(workers):
    """A rate limit starts one call per claim; a claim it cut short is asked again at once rather
    than waiting for the next poll (30 s here), so a generous limit costs trips, not the drain."""
    jobs = [services.job_submit(kind="noop", payload={})[0] for _ in range(40)]
    started = time.monotonic()
    workers(1, RESILIENT_POLL_INTERVAL="30",
            RESILIENT_DEPENDENCIES=json.dumps({"local": {"rate_limit": "100000/s"}}))
    wait_until(lambda: statuses(jobs) == {JobStatus.SUCCEEDED}, timeout=25, message="the jobs to drain")
    assert time.monotonic() - started < 25
