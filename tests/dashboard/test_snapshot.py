"""The snapshot's parts that must stay cheap at scale: bounded counts and the throughput window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from dashboard.counts import StatusCounter
from dashboard.throughput import ThroughputWindow
from jobs import services
from jobs.models import Job, JobStatus

pytestmark = pytest.mark.django_db


def test_small_counts_are_exact():
    for _ in range(3):
        services.job_submit(kind="noop")
    counts, estimated = StatusCounter(exact_limit=3).read()
    assert counts == {"pending": 3, "running": 0, "succeeded": 0, "failed": 0, "cancelled": 0}
    assert estimated == []


def test_counts_above_the_limit_are_flagged_and_cheap():
    now = [0.0]
    for _ in range(5):
        services.job_submit(kind="noop")
    counter = StatusCounter(exact_limit=3, clock=lambda: now[0])
    counts, estimated = counter.read()
    assert estimated == ["pending"] and counts["pending"] >= 4
    if connection.vendor == "sqlite":
        assert counts["pending"] == 5
        services.job_submit(kind="noop")
        assert counter.read()[0]["pending"] == 5  # recounted at most every RECOUNT_SECONDS
        now[0] += 5
        assert counter.read()[0]["pending"] == 6


def test_throughput_window_buckets_by_second_and_slides():
    base = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    clock = [base.timestamp() + 0.5]
    for offset, status in [(0.1, "succeeded"), (0.7, "succeeded"), (0.9, "failed"), (-3.2, "succeeded")]:
        job, _ = services.job_submit(kind="noop")
        Job.objects.filter(seq=job.seq).update(status=status, finished_at=base + timedelta(seconds=offset))
    window = ThroughputWindow(seconds=10, clock=lambda: clock[0])
    window.refresh()
    series = window.series()
    assert series["end"] == int(base.timestamp()) and len(series["succeeded"]) == 10
    assert series["succeeded"][-1] == 2 and series["failed"][-1] == 1
    assert series["succeeded"][-5] == 1  # 3.2 s earlier: second -4
    clock[0] += 8  # the old second slides out of the 10 s window
    job, _ = services.job_submit(kind="noop")
    Job.objects.filter(seq=job.seq).update(status=JobStatus.SUCCEEDED, finished_at=base + timedelta(seconds=8.2))
    window.refresh()
    series = window.series()
    assert sum(series["succeeded"]) == 3 and series["succeeded"][-1] == 1
