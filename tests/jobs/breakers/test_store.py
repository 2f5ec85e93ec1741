"""Breaker rows: one per configured dependency, their settings, and the claim path's one read."""

from __future__ import annotations

import pytest

from jobs import breakers, dependencies
from jobs.models import Breaker
from tests.jobs.breakers.svc import SVC, at, claim, submit, trip

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("svc_config")]


def test_every_configured_dependency_has_a_row_before_its_first_call():
    breakers.claim_gates(now=at(0))
    names = set(Breaker.objects.values_list("name", flat=True))
    assert {"local", "default", "validation", SVC, "other"} <= names
    assert all(r.state == "closed" and r.failures == 0 for r in Breaker.objects.all())


def test_unknown_breaker_is_not_found():
    from jobs.exceptions import BreakerNotFound

    with pytest.raises(BreakerNotFound):
        breakers.breaker_row("nope")


def test_dependency_settings_come_from_config_and_env(monkeypatch):
    dep = dependencies.get(SVC)
    assert (dep.failure_threshold, dep.reset_timeout, dep.max_reset_timeout) == (3, 10, 40)
    monkeypatch.setenv("RESILIENT_BREAKER_FAILURE_THRESHOLD", "7")
    assert dependencies.get("other").failure_threshold == 7
    assert dependencies.get(SVC).failure_threshold == 3, "per-dependency settings win"


def test_claim_path_reads_the_breakers_in_one_query():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    submit("other")
    trip(now=0)
    breakers.claim_gates(now=at(0))  # the first read creates rows for newly configured dependencies
    # A proven dependency: no probe limit in force (a limited one's row is read again, locked).
    Breaker.objects.filter(name="other").update(probe_window=breakers.flow.SLOW_START_CEILING)
    with CaptureQueriesContext(connection) as ctx:
        breakers.claim_gates(now=at(1))
    assert len(ctx.captured_queries) == 1
    with CaptureQueriesContext(connection) as ctx:
        assert claim(now=1) is not None
    breaker_reads = [q for q in ctx.captured_queries if "jobs_breaker" in q["sql"]]
    assert len(breaker_reads) == 1
