"""End to end: real ``runworker jobs`` processes, a real HTTP downstream on 127.0.0.1, the shared
breaker in the test database. Reset timeouts are seconds, set through RESILIENT_BREAKER_*."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable

import pytest

from jobs import breakers, services
from jobs.models import Breaker, BreakerEvent, BreakerEventKind, EventKind, Job, JobEvent
from tests.support.downstream import Downstream
from tests.support.processes import PYTHON, ROOT, subprocess_env

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

RESET_TIMEOUT = 6.0  # the first open period lasts 4.5-6 s (75-100 % jitter)
WORKER_ENV = {
    "RESILIENT_BREAKER_FAILURE_THRESHOLD": "3",
    "RESILIENT_BREAKER_RESET_TIMEOUT": str(RESET_TIMEOUT),
    "RESILIENT_BREAKER_MAX_RESET_TIMEOUT": "12",
    "RESILIENT_POLL_INTERVAL": "0.2",
    "RESILIENT_LEASE_SECONDS": "15",
    "RESILIENT_RETRY_BACKOFF_BASE": "0.2",
    "RESILIENT_RETRY_BACKOFF_MAX": "0.5",
    "RESILIENT_SHUTDOWN_GRACE": "3",
    "LOG_LEVEL": "INFO",
}


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def workers(tmp_path):
    started: list[tuple[subprocess.Popen, object]] = []

    def start(count: int = 1) -> None:
        for _ in range(count):
            log = open(tmp_path / f"worker{len(started)}.log", "w")  # noqa: SIM115 - closed below
            proc = subprocess.Popen(
                [PYTHON, "manage.py", "runworker", "jobs"], cwd=ROOT, env=subprocess_env(**WORKER_ENV),
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
            started.append((proc, log))

    yield start
    for proc, _ in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc, log in started:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
    if os.environ.get("RESILIENT_SHOW_WORKER_LOGS"):
        for path in sorted(tmp_path.glob("worker*.log")):
            print(path.read_text())


def submit_http(stub: Downstream, path: str, *, priority: int = 0, max_attempts: int = 20) -> Job:
    job, _ = services.job_submit(
        kind="http", payload={"url": stub.url(path)}, priority=priority, max_attempts=max_attempts
    )
    return job


def submit_local() -> Job:
    return services.job_submit(kind="noop", dependency="local")[0]


def statuses(jobs: list[Job]) -> list[str]:
    by_seq = dict(Job.objects.filter(seq__in=[j.seq for j in jobs]).values_list("seq", "status"))
    return [by_seq[j.seq] for j in jobs]


def breaker() -> Breaker:
    return Breaker.objects.get(name="default")


def test_outage_holds_the_backlog_then_one_trial_then_drains_in_pop_order(stub, workers):
    stub.fail(503)
    workers(2)
    probes = [submit_http(stub, f"/probe/{i}", priority=-10) for i in range(3)]
    wait_for(lambda: breaker().state == "open", 60, "the breaker to open after 3 failures")
    opened = BreakerEvent.objects.get(breaker="default", kind=BreakerEventKind.OPENED)
    assert opened.details["failures"] == 3 and len(opened.details["recent_errors"]) == 3
    assert all("HTTP 503" in e["error"] and e["job"] for e in opened.details["recent_errors"])

    backlog = [submit_http(stub, f"/work/{p}", priority=p) for p in (3, 7, 1, 6, 5)]
    local = [submit_local() for _ in range(4)]
    wait_for(lambda: statuses(local) == ["succeeded"] * 4, 30, "the local jobs to complete meanwhile")
    assert breaker().state == "open", "the machine was too slow: the open period ended before the check"
    assert statuses(backlog) == ["pending"] * 5
    assert set(Job.objects.filter(seq__in=[j.seq for j in backlog]).values_list("attempts", flat=True)) == {0}
    assert not [c for c in stub.calls if c.path.startswith("/work/")], "held jobs were called"
    for job in backlog + probes:  # one held event each for this open period
        assert JobEvent.objects.filter(job=job, kind=EventKind.HELD).count() <= 1
    assert all(JobEvent.objects.filter(job=job, kind=EventKind.HELD).count() == 1 for job in backlog)
    assert not BreakerEvent.objects.filter(kind=BreakerEventKind.HALF_OPENED).exists()

    stub.heal(delay=1.0)  # slow enough that a second trial would overlap the first
    healed_calls = len(stub.calls)
    wait_for(lambda: breaker().state == "closed", 60, "the breaker to close after the trial")
    everything = backlog + probes
    wait_for(lambda: set(statuses(everything)) == {"succeeded"}, 90, "the backlog to drain")

    trials = BreakerEvent.objects.filter(breaker="default", kind=BreakerEventKind.HALF_OPENED)
    assert trials.count() == 1
    assert trials.get().details["job"] == str(backlog[1].uuid), "the trial is the highest-priority job"
    calls = stub.calls[healed_calls:]
    trial_call = calls[0]
    assert trial_call.path == "/work/7"
    assert all(c.at >= trial_call.finished_at for c in calls[1:]), "exactly one call during half-open"

    # The backlog drained in pop order (claims by two workers may interleave within a moment).
    claims = list(
        JobEvent.objects.filter(job__in=everything, kind=EventKind.CLAIMED, at__gte=trials.get().at)
        .order_by("id").values_list("job__priority", "job__seq", "at")
    )
    expected = sorted((p, s) for p, s, _ in claims)
    expected = sorted(expected, key=lambda ps: (-ps[0], ps[1]))
    for index, (got, want) in enumerate(zip([(p, s) for p, s, _ in claims], expected, strict=True)):
        if got != want:  # allowed only for two claims a moment apart
            other = next(i for i, c in enumerate(claims) if (c[0], c[1]) == want)
            assert abs((claims[other][2] - claims[index][2]).total_seconds()) < 0.2, claims
    assert [Job.objects.get(seq=j.seq).attempts for j in backlog] == [1] * 5, "no attempt spent while held"


def test_forced_open_calls_nothing_and_release_drains(stub, workers):
    breakers.breaker_force_open(name="default", actor="user:op", reason="maintenance")
    jobs = [submit_http(stub, f"/maint/{i}") for i in range(3)]
    workers(1)
    local = submit_local()
    wait_for(lambda: statuses([local]) == ["succeeded"], 60, "the worker to be up and claiming")
    time.sleep(1.0)  # five more poll intervals with the breaker forced open
    assert stub.calls == [] and statuses(jobs) == ["pending"] * 3
    assert all(JobEvent.objects.filter(job=j, kind=EventKind.HELD).count() == 1 for j in jobs)
    breakers.breaker_release(name="default", actor="user:op", reason="maintenance over")
    wait_for(lambda: statuses(jobs) == ["succeeded"] * 3, 30, "the held jobs to drain after release")
    assert len(stub.calls) == 3


def test_forced_closed_keeps_calling_a_failing_downstream_and_never_trips(stub, workers):
    stub.fail(500)
    breakers.breaker_force_closed(name="default", actor="user:op", reason="known false alarm")
    jobs = [submit_http(stub, f"/fc/{i}", max_attempts=1) for i in range(6)]
    workers(1)
    wait_for(lambda: statuses(jobs) == ["failed"] * 6, 60, "every job to be tried and fail")
    assert len(stub.calls) == 6, [(c.path, c.status) for c in stub.calls]
    row = breaker()
    assert breakers.effective_state(row, row.updated_at) == "closed"
    events = list(BreakerEvent.objects.values_list("kind", "actor", "reason"))
    assert row.state == "open", ("the shadow state shows what the automatic breaker would do", events)
    assert BreakerEvent.objects.filter(kind=BreakerEventKind.FAILURE).count() == 6, events
