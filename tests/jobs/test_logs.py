"""One log line per job transition, with its fields; JSON lines when LOG_FORMAT=json."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
from django.utils import timezone

from jobs import breakers, logs, queue, services
from jobs.breakers import Outcome
from jobs.models import BreakerEvent, BreakerEventKind, Job
from tests.support import processes

pytestmark = pytest.mark.django_db


def transitions(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "resilient.jobs"]


def test_every_transition_logs_one_line_with_its_fields(caplog):
    caplog.set_level(logging.DEBUG, logger="resilient.jobs")
    job, _ = services.job_submit(kind="noop", priority=3, max_attempts=2, actor="user:ann")
    services.job_reprioritise(job_id=job.uuid, priority=7, actor="user:ann")
    claimed = queue.job_claim_next(worker_id="w1")
    queue.job_fail(job=claimed, worker_id="w1", error="boom", retryable=True, duration=0.25)
    Job.objects.filter(seq=job.seq).update(run_after=timezone.now() - timedelta(seconds=1))
    claimed = queue.job_claim_next(worker_id="w1")
    queue.job_fail(job=claimed, worker_id="w1", error="boom again", retryable=True, duration=0.5)
    services.job_retry(job_id=job.uuid, actor="user:ann")
    claimed = queue.job_claim_next(worker_id="w2")
    queue.job_succeed(job=claimed, worker_id="w2", result=1, duration=0.125)
    other, _ = services.job_submit(kind="noop")
    services.job_cancel(job_id=other.uuid, actor="user:bob", reason="not needed")

    records = transitions(caplog)
    assert [r.event for r in records] == [
        "job.submitted", "job.reprioritised", "job.claimed", "job.retry_scheduled", "job.claimed",
        "job.failed", "job.retried", "job.claimed", "job.succeeded", "job.submitted", "job.cancelled",
    ]
    assert {r.job_id for r in records[:9]} == {str(job.uuid)}
    first = records[0]
    assert (first.kind, first.dependency, first.priority, first.attempt, first.actor) == ("noop", "local", 3, 0, "user:ann")
    assert first.getMessage() == f"job submitted job={job.short_id} kind=noop dependency=local priority=3 attempt=0 actor=user:ann"
    assert records[1].priority == 7 and records[1].before == 3
    claims = [r for r in records if r.event == "job.claimed"]
    assert {r.levelno for r in claims} == {logging.DEBUG}  # the outcome lines are INFO and up
    assert {r.levelno for r in records if r not in claims} >= {logging.INFO}
    assert records[3].attempt == 1 and records[3].duration == 0.25 and records[3].levelno == logging.WARNING
    assert records[5].attempt == 2 and records[5].error == "boom again"
    succeeded = records[8]
    assert (succeeded.attempt, succeeded.duration, succeeded.worker) == (1, 0.125, "w2")
    assert "duration=0.125s" in succeeded.getMessage()
    assert records[10].reason == "not needed" and "reason='not needed'" in records[10].getMessage()


def test_an_expired_lease_is_logged_as_a_warning(caplog):
    caplog.set_level(logging.INFO, logger="resilient.jobs")
    services.job_submit(kind="noop")
    claimed = queue.job_claim_next(worker_id="dead-worker")
    assert queue.jobs_expire_leases(actor="sweeper", now=timezone.now() + timedelta(hours=1)) == 1
    record = transitions(caplog)[-1]
    assert record.event == "job.lease_expired" and record.levelno == logging.WARNING
    assert (record.job_id, record.previous_owner, record.outcome, record.attempt) == (
        str(claimed.uuid), "dead-worker", "retry_scheduled", 1,
    )


def test_json_formatter_emits_the_extra_fields():
    record = logging.makeLogRecord(
        {"name": "resilient.jobs", "levelno": logging.INFO, "levelname": "INFO", "msg": "job %s", "args": ("x",),
         "event": "job.claimed", "job_id": "abc", "priority": 5}
    )
    entry = json.loads(logs.JsonFormatter().format(record))
    assert entry["message"] == "job x" and entry["level"] == "INFO" and entry["logger"] == "resilient.jobs"
    assert (entry["event"], entry["job_id"], entry["priority"]) == ("job.claimed", "abc", 5)
    assert entry["time"].endswith("+00:00")
    assert not {"args", "msg", "levelno", "pathname"} & set(entry)


def test_breaker_transitions_have_a_logging_hook(caplog):
    caplog.set_level(logging.INFO, logger="resilient.breakers")
    logs.breaker_transition("default", from_state="closed", to_state="open", actor="worker:1", failures=3)
    (record,) = [r for r in caplog.records if r.name == "resilient.breakers"]
    assert record.event == "breaker.transition" and record.to_state == "open" and record.failures == 3
    assert record.getMessage() == "breaker open dependency=default from_state=closed to_state=open actor=worker:1 failures=3"


def test_every_breaker_transition_and_override_logs_one_line(caplog, django_capture_on_commit_callbacks):
    """Driven through jobs.breakers' services (clock injected): one line per BreakerEvent that is
    not a counted failure, with its kind, states, actor, reason and the scalar details."""
    caplog.set_level(logging.INFO, logger="resilient.breakers")
    with django_capture_on_commit_callbacks(execute=True):  # the lines leave after commit
        t0 = timezone.now()
        for i in range(3):
            breakers.breaker_record(name="default", outcome=Outcome.FAILURE, error=f"HTTP 503 #{i}", actor="w1", now=t0)
        trial = breakers.breaker_admit(name="default", owner="w1", now=t0 + timedelta(seconds=31))
        breakers.breaker_record(name="default", outcome=Outcome.FAILURE, admission=trial, actor="w1",
                                now=t0 + timedelta(seconds=32))
        trial = breakers.breaker_admit(name="default", owner="w2", now=t0 + timedelta(seconds=200))
        breakers.breaker_record(name="default", outcome=Outcome.NEUTRAL, admission=trial, actor="w2",
                                now=t0 + timedelta(seconds=201))
        trial = breakers.breaker_admit(name="default", owner="w2", now=t0 + timedelta(seconds=202))
        breakers.breaker_record(name="default", outcome=Outcome.SUCCESS, admission=trial, actor="w2",
                                now=t0 + timedelta(seconds=203))
        breakers.breaker_force_open(name="default", actor="user:ops", reason="maintenance", ttl_seconds=60)
        breakers.breaker_release(name="default", actor="user:ops", reason="done")
        t1 = timezone.now()
        breakers.breaker_force_closed(name="default", actor="user:ops", reason="false alarm", ttl_seconds=10, now=t1)
        assert breakers.breakers_expire_overrides(now=t1 + timedelta(seconds=11)) == 1

    records = [r for r in caplog.records if r.name == "resilient.breakers"]
    expected = list(
        BreakerEvent.objects.filter(breaker_id="default").exclude(kind=BreakerEventKind.FAILURE)
        .order_by("id").values_list("kind", "actor", "from_state", "to_state")
    )
    assert [r.kind for r in records] == [kind for kind, *_ in expected] == [
        "opened", "half_opened", "reopened", "half_opened", "trial_abandoned", "half_opened", "closed",
        "forced_open", "released", "forced_closed", "override_expired",
    ]
    for record, (kind, actor, from_state, to_state) in zip(records, expected, strict=True):
        assert record.event == f"breaker.{kind}" and record.dependency == "default"
        assert (record.actor, record.from_state, record.to_state) == (actor, from_state or "-", to_state or "-")
        assert record.getMessage().startswith(f"breaker {kind} dependency=default ")
        warning = kind in {"opened", "reopened", "forced_open"}
        assert record.levelno == (logging.WARNING if warning else logging.INFO), kind
    opened = records[0]
    assert (opened.failures, opened.threshold, opened.rule) == (3, 3, "failure_threshold")
    assert opened.retry_at and "recent_errors" not in vars(opened)
    assert records[2].backoff_level == 1  # reopened: the backoff exponent
    forced = records[7]
    assert (forced.reason, forced.ttl_seconds) == ("maintenance", 60.0) and forced.expires_at
    assert "reason=maintenance" in forced.getMessage()
    # Overrides name the state they left, as callers saw it.
    assert [(r.from_state, r.to_state) for r in records[7:]] == [
        ("closed", "open"), ("forced open", "closed"), ("closed", "closed"), ("forced closed", "closed")]


def test_a_job_submitted_behind_an_open_breaker_logs_held(caplog):
    caplog.set_level(logging.INFO, logger="resilient.jobs")
    breakers.breaker_force_open(name="default", actor="user:ops", reason="maintenance")
    job, _ = services.job_submit(kind="http", payload={"url": "http://127.0.0.1:1/"})
    (held,) = [r for r in transitions(caplog) if r.event == "job.held"]
    assert held.job == job.short_id and held.dependency == "default" and held.why == "breaker forced open"


@pytest.mark.django_db(transaction=True)
def test_log_format_json_writes_one_json_object_per_line():
    done = processes.run_python(
        'from jobs import services\nservices.job_submit(kind="noop", priority=4)\n',
        environ=processes.subprocess_env(LOG_FORMAT="json"),
    )
    assert done.returncode == 0, done.stderr
    entries = [json.loads(line) for line in done.stderr.splitlines() if line.strip()]
    (submitted,) = [e for e in entries if e.get("event") == "job.submitted"]
    assert submitted["priority"] == 4 and submitted["kind"] == "noop" and submitted["attempt"] == 0
    assert len(submitted["job_id"]) == 36 and submitted["logger"] == "resilient.jobs"


def test_an_unknown_log_format_refuses_to_start():
    done = processes.run_python("", environ=processes.subprocess_env(LOG_FORMAT="xml"))
    assert done.returncode != 0
    assert "LOG_FORMAT must be 'plain' or 'json', not 'xml'" in done.stderr
