"""Two real processes share one breaker through the database."""

from __future__ import annotations

import subprocess
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from jobs import breakers
from jobs.models import Breaker, BreakerEvent, BreakerEventKind
from tests.support.processes import PYTHON, ROOT, subprocess_env

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def run(*commands: str, env: dict | None = None, timeout: float = 60) -> list[str]:
    out = subprocess.run(
        [PYTHON, "-m", "tests.support.breaker_process", *commands], cwd=ROOT, env=env or subprocess_env(),
        capture_output=True, text=True, timeout=timeout,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.splitlines()


def start(*commands: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [PYTHON, "-m", "tests.support.breaker_process", *commands], cwd=ROOT, env=env or subprocess_env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def finish(proc: subprocess.Popen) -> list[str]:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    return out.splitlines()


def test_failures_recorded_by_one_process_trip_the_breaker_for_another():
    assert run("fail:default:2", "state:default") == ["ok", "closed 2 -"]
    assert run("admit:default", "fail:default:1", "state:default") == ["admitted trial=False", "ok", "open 3 -"]
    assert run("admit:default")[0].startswith("rejected")
    assert Breaker.objects.get(name="default").state == "open"  # and this process sees it too
    with pytest.raises(breakers.CircuitOpen):
        breakers.breaker_admit(name="default", owner="here")


def test_an_override_made_in_one_process_is_honoured_by_another():
    run("force-open:default")
    assert run("admit:default")[0].startswith("rejected the circuit breaker for 'default' is forced open")
    breakers.breaker_release(name="default", actor="test")
    assert run("admit:default") == ["admitted trial=False"]
    # Forced closed in one process: another keeps calling through a tripped breaker.
    run("fail:default:3", "force-closed:default")
    assert run("admit:default", "state:default") == ["admitted trial=False", "open 3 closed"]


def test_concurrent_failures_from_two_processes_lose_no_update():
    env = subprocess_env(RESILIENT_BREAKER_FAILURE_THRESHOLD="100000")
    go = f"wait-until:{time.time() + 4}"
    procs = [start(go, "fail:default:150", env=env) for _ in range(2)]
    for proc in procs:
        assert finish(proc) == ["ok", "ok"]
    assert Breaker.objects.get(name="default").failures == 300
    assert BreakerEvent.objects.filter(breaker="default", kind=BreakerEventKind.FAILURE).count() == 300


def test_exactly_one_trial_across_processes():
    for _ in range(3):
        breakers.breaker_record(name="default", outcome=breakers.Outcome.FAILURE)
    Breaker.objects.filter(name="default").update(retry_at=timezone.now() - timedelta(seconds=1))
    go = f"wait-until:{time.time() + 4}"
    procs = [start(go, *[f"admit:default:owner{p}-{i}" for i in range(10)]) for p in range(2)]
    lines = [line for proc in procs for line in finish(proc)[1:]]
    assert sum(line.startswith("admitted") for line in lines) == 1, lines
    assert BreakerEvent.objects.filter(breaker="default", kind=BreakerEventKind.HALF_OPENED).count() == 1


def test_pybreaker_with_the_row_storage_shares_state_across_processes():
    assert run("pybreaker-fail:default", "pybreaker-fail:default", "pybreaker-fail:default") == ["failed"] * 3
    assert Breaker.objects.get(name="default").state == "open"
    assert run("pybreaker-call:default")[0].startswith("rejected")
    # Forced open is sticky for pybreaker too (its own open() lapses after reset_timeout).
    breakers.breaker_release(name="default", actor="test")
    Breaker.objects.filter(name="default").update(state="closed", failures=0, retry_at=None)
    breakers.breaker_force_open(name="default", actor="test")
    assert run("pybreaker-call:default")[0].startswith("rejected")
