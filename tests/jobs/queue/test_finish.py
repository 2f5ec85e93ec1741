"""jobs.queue.finish: succeed, fail (with backoff), release; a worker without the lease changes nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from jobs import queue
from jobs.models import EventKind, Job, JobStatus
from tests.jobs.queue.helpers import claim, events, fresh, last_event, submit

pytestmark = pytest.mark.django_db



# --- succeed ------------------------------------------------------------------------------------


def test_succeed_records_result_and_counts_the_attempt():
    submit()
    job = claim("w1")
    assert queue.job_succeed(job=job, worker_id="w1", result={"ok": [1, 2]}, duration=0.25) is True
    row = fresh(job)
    assert row.status == JobStatus.SUCCEEDED
    assert row.attempts == 1
    assert row.result == {"ok": [1, 2]}
    assert row.finished_at is not None and row.finished_at >= row.started_at
    assert (row.lease_owner, row.lease_expires_at) == ("", None)
    event = last_event(job)
    assert (event.kind, event.actor, event.details) == (
        EventKind.SUCCEEDED,
        "w1",
        {"duration": 0.25},
    )


def test_succeed_by_another_worker_changes_nothing():
    submit()
    job = claim("w1")
    assert queue.job_succeed(job=job, worker_id="w2", result=1) is False
    row = fresh(job)
    assert (row.status, row.lease_owner, row.attempts, row.result) == (
        JobStatus.RUNNING,
        "w1",
        0,
        None,
    )
    assert [e.kind for e in events(job)] == [EventKind.SUBMITTED, EventKind.CLAIMED]


# --- fail ------------------------------------------------------------------------------------------


def fail_once(job: Job, *, worker: str = "w1", **kwargs) -> tuple[bool, object, object]:
    """Fail ``job`` and return (result, time before, time after) to bound run_after."""
    before = timezone.now()
    result = queue.job_fail(job=job, worker_id=worker, error=kwargs.pop("error", "boom"), **kwargs)
    return result, before, timezone.now()


def reclaim(job: Job, worker: str = "w1") -> Job:
    """Claim ``job`` again once its backoff has passed (moving the clock, not sleeping)."""
    row = fresh(job)
    claimed = claim(worker, now=row.run_after)
    assert claimed is not None and claimed.seq == job.seq
    return claimed


@override_settings(RESILIENT={"RETRY_BACKOFF_BASE": 2.0, "RETRY_BACKOFF_MAX": 1000.0})
def test_retryable_failure_schedules_a_retry_with_exponential_backoff():
    submit(max_attempts=6)
    job = claim("w1")
    for attempt in range(1, 6):
        ok, before, after = fail_once(job, retryable=True, error=f"boom {attempt}")
        assert ok is True
        row = fresh(job)
        base_delay = 2.0 * 2 ** (attempt - 1)
        assert row.status == JobStatus.PENDING
        assert row.attempts == attempt
        assert row.last_error == f"boom {attempt}"
        assert (row.lease_owner, row.lease_expires_at) == ("", None)
        assert before + timedelta(seconds=0.75 * base_delay) <= row.run_after
        assert row.run_after <= after + timedelta(seconds=base_delay)
        event = last_event(job)
        assert event.kind == EventKind.RETRY_SCHEDULED and event.actor == "w1"
        assert event.details["attempt"] == attempt and event.details["error"] == f"boom {attempt}"
        assert 0.75 * base_delay - 0.001 <= event.details["delay"] <= base_delay
        assert event.details["run_after"] == row.run_after.isoformat()
        # Not claimable before its backoff has passed.
        assert claim("w1", now=row.run_after - timedelta(milliseconds=1)) is None
        job = reclaim(job)


@override_settings(RESILIENT={"RETRY_BACKOFF_BASE": 2.0, "RETRY_BACKOFF_MAX": 5.0})
def test_backoff_is_capped():
    submit(max_attempts=10)
    job = claim()
    for _ in range(5):
        _, before, after = fail_once(job, retryable=True)
        row = fresh(job)
        job = reclaim(job)
    # attempt 5: 2 * 2^4 = 32 s uncapped; the cap is 5 s.
    assert before + timedelta(seconds=3.75) <= row.run_after <= after + timedelta(seconds=5)


def test_failure_at_max_attempts_fails_the_job():
    submit(max_attempts=2)
    job = claim()
    fail_once(job, retryable=True, error="first")
    job = reclaim(job)
    ok, _, _ = fail_once(job, retryable=True, error="second")
    assert ok is True
    row = fresh(job)
    assert row.status == JobStatus.FAILED
    assert row.attempts == 2
    assert row.last_error == "second"
    assert row.finished_at is not None
    assert (row.lease_owner, row.lease_expires_at) == ("", None)
    event = last_event(job)
    assert event.kind == EventKind.FAILED
    assert event.details == {"attempt": 2, "error": "second", "retryable": True, "duration": None}
    assert claim(now=timezone.now() + timedelta(days=1)) is None


def test_max_attempts_one_fails_on_the_first_failure():
    submit(max_attempts=1)
    job = claim()
    fail_once(job, retryable=True)
    assert (fresh(job).status, fresh(job).attempts) == (JobStatus.FAILED, 1)


def test_non_retryable_failure_fails_at_once():
    submit(max_attempts=5)
    job = claim()
    ok, _, _ = fail_once(job, retryable=False, error="HTTP 404", duration=0.5)
    assert ok is True
    row = fresh(job)
    assert (row.status, row.attempts, row.last_error) == (JobStatus.FAILED, 1, "HTTP 404")
    event = last_event(job)
    assert event.kind == EventKind.FAILED
    assert event.details == {"attempt": 1, "error": "HTTP 404", "retryable": False, "duration": 0.5}


@override_settings(RESILIENT={"RETRY_BACKOFF_BASE": 1.0})
def test_retry_after_longer_than_the_backoff_wins():
    submit()
    job = claim()
    _, before, after = fail_once(job, retryable=True, retry_after=120.0)
    row = fresh(job)
    assert before + timedelta(seconds=120) <= row.run_after <= after + timedelta(seconds=120)
    assert last_event(job).details["delay"] == 120.0


@override_settings(RESILIENT={"RETRY_BACKOFF_BASE": 10.0})
def test_retry_after_shorter_than_the_backoff_loses():
    submit()
    job = claim()
    _, before, after = fail_once(job, retryable=True, retry_after=0.5)
    row = fresh(job)
    assert before + timedelta(seconds=7.5) <= row.run_after <= after + timedelta(seconds=10)


def test_long_errors_are_truncated():
    submit()
    job = claim()
    fail_once(job, retryable=True, error="x" * 10_000)
    assert fresh(job).last_error == "x" * queue.MAX_ERROR_CHARS


def test_fail_by_another_worker_changes_nothing():
    submit()
    job = claim("w1")
    ok, _, _ = fail_once(job, worker="w2", retryable=True)
    assert ok is False
    row = fresh(job)
    assert (row.status, row.attempts, row.lease_owner, row.last_error) == (
        JobStatus.RUNNING,
        0,
        "w1",
        "",
    )
    assert len(events(job)) == 2


# --- release ------------------------------------------------------------------------------------


def test_release_returns_the_job_without_spending_an_attempt():
    submit(priority=3)
    job = claim("w1")
    fail_once(job, retryable=True)
    job = reclaim(job)
    assert queue.job_release(job=job, worker_id="w1", reason="shutdown") is True
    row = fresh(job)
    assert row.status == JobStatus.PENDING
    assert row.attempts == 1  # unchanged by the release
    assert (row.lease_owner, row.lease_expires_at, row.started_at) == ("", None, None)
    event = last_event(job)
    assert (event.kind, event.actor, event.details) == (
        EventKind.RELEASED,
        "w1",
        {"reason": "shutdown"},
    )
    assert claim("w2", now=row.run_after).seq == job.seq  # claimable again at once


def test_release_by_another_worker_changes_nothing():
    submit()
    job = claim("w1")
    assert queue.job_release(job=job, worker_id="w2", reason="x") is False
    assert fresh(job).status == JobStatus.RUNNING and fresh(job).lease_owner == "w1"


# --- outcomes every database can store --------------------------------------------------------


def test_results_with_nul_and_lone_surrogates_are_stored():
    """A downstream answering with NUL bytes must not crash the worker: jsonb refuses \\u0000."""
    submit()
    job = claim("w1")
    result = {"body": "a\x00b", "k\x00": ["\ud800", {"x": "ok \U0001f600"}], "n": 1}
    assert queue.job_succeed(job=job, worker_id="w1", result=result) is True
    row = fresh(job)
    assert row.status == JobStatus.SUCCEEDED
    assert row.result == {"body": "a\ufffdb", "k\ufffd": ["\ufffd", {"x": "ok \U0001f600"}], "n": 1}


@pytest.mark.parametrize("retryable", [True, False])
def test_errors_with_nul_and_lone_surrogates_are_stored(retryable):
    submit()
    job = claim("w1")
    assert (
        queue.job_fail(job=job, worker_id="w1", error="bad\x00byte \udc80", retryable=retryable)
        is True
    )
    row = fresh(job)
    assert row.last_error == "bad\ufffdbyte \ufffd"
    assert last_event(job).details["error"] == "bad\ufffdbyte \ufffd"
