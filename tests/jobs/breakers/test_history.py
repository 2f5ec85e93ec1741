"""A breaker's history: the log line of a transition leaves with its commit, never before or without it."""

from __future__ import annotations

import logging

import pytest
from django.db import transaction

from jobs import breakers
from jobs.models import BreakerEvent, BreakerEventKind

pytestmark = pytest.mark.django_db


def lines(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "resilient.breakers"]


def test_the_log_line_of_a_transition_waits_for_the_commit(caplog, django_capture_on_commit_callbacks):
    caplog.set_level(logging.INFO, logger="resilient.breakers")
    with django_capture_on_commit_callbacks(execute=True):
        breakers.breaker_force_open(name="default", actor="user:ops", reason="maintenance")
        assert BreakerEvent.objects.filter(kind=BreakerEventKind.FORCED_OPEN).count() == 1
        assert lines(caplog) == [], "not before the commit"
    (line,) = lines(caplog)
    assert (line.kind, line.actor, line.reason) == ("forced_open", "user:ops", "maintenance")


def test_a_transition_rolled_back_leaves_no_log_line(caplog, django_capture_on_commit_callbacks):
    caplog.set_level(logging.INFO, logger="resilient.breakers")
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        breakers.breaker_force_open(name="default", actor="user:ops", reason="maintenance")
        transaction.set_rollback(True)
    assert not BreakerEvent.objects.exists()
    assert lines(caplog) == []


def test_recent_errors_quote_the_last_counted_failures_newest_first():
    for i in range(7):
        breakers.breaker_record(name="local", outcome=breakers.Outcome.FAILURE, error=f"boom {i}", job_id=f"j{i}")
    errors = breakers.recent_errors("local")
    assert [(e["error"], e["job"]) for e in errors] == [(f"boom {i}", f"j{i}") for i in (6, 5, 4, 3, 2)]
