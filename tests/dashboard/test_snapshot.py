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


def test_held_counts_are_bounded_and_flagged():
    """A forced-open breaker's held jobs are counted with a bounded walk, flagged when large."""
    from dashboard import snapshot
    from jobs import breakers

    for _ in range(5):
        services.job_submit(kind="noop", dependency="default")
    services.job_submit(kind="noop")
    breakers.breaker_force_open(name="default", actor="test", reason="r")
    cards = {b["name"]: b for b in snapshot.breakers_snapshot(held_limit=10)}
    assert (cards["default"]["held"], cards["default"]["held_bound"]) == (5, "exact")
    assert (cards["local"]["held"], cards["local"]["held_bound"]) == (0, "exact")
    cards = {b["name"]: b for b in snapshot.breakers_snapshot(held_limit=3)}
    assert cards["default"]["held"] >= 4
    assert cards["default"]["held_bound"] == ("estimate" if connection.vendor == "postgresql" else "at_least")


def test_jobs_held_by_flow_control_are_counted_on_the_card():
    """A rate limit whose next start waits, or a full allowance, holds the dependency's pending
    jobs while its breaker admits: the card's flow block says how many."""
    from django.test import override_settings

    from dashboard import snapshot
    from jobs import breakers, queue

    deps = {"metered": {"rate_limit": "1/h", "failure_threshold": 5}, "capped": {"max_concurrency": 1}}
    with override_settings(RESILIENT={"DEPENDENCIES": deps}):
        breakers.breakers_ensure()
        for name in deps:
            for _ in range(4):
                services.job_submit(kind="noop", dependency=name)
        cards = {b["name"]: b["flow"] for b in snapshot.breakers_snapshot()}
        assert (cards["metered"]["held_by_rate"], cards["capped"]["held_by_limit"]) == (0, 0)  # nothing started
        assert len(queue.claims_take(worker_id="w", limit=10)) == 2  # one of each: the limits bind
        cards = {b["name"]: b for b in snapshot.breakers_snapshot()}
        assert cards["metered"]["flow"]["held_by_rate"] == 3 and cards["metered"]["flow"]["rate_next_start"]
        assert cards["capped"]["flow"]["held_by_limit"] == 3
        assert cards["metered"]["held"] == cards["capped"]["held"] == 0  # the breakers themselves admit


def test_snapshot_reads_breakers_once_whatever_the_queue(django_assert_max_num_queries):
    """Breaker state for 100 queue rows comes from one read, not one per row."""
    from dashboard import snapshot
    from jobs import breakers

    for _ in range(100):
        services.job_submit(kind="noop", dependency="default")
    breakers.breaker_force_open(name="default", actor="test", reason="r")
    with django_assert_max_num_queries(16):
        state = snapshot.build()
    assert len(state["queue"]) == 100 and all(row["held"] for row in state["queue"])


@pytest.mark.parametrize("jobs", [30, 130])
def test_a_hold_of_n_jobs_is_one_line_in_the_feed_and_the_override_stays_in_view(jobs):
    """Forcing a breaker open writes one ``held`` event per pending job; the feed shows them as
    one line with the count, right above the override (a hold longer than a feed page too)."""
    from dashboard import snapshot
    from jobs import breakers

    for _ in range(jobs):
        services.job_submit(kind="noop", dependency="default")
    free = services.job_submit(kind="noop")[0]
    breakers.breaker_force_open(name="default", actor="user:alice", reason="maintenance")
    feed = snapshot.events_feed()
    assert [(e["source"], e["kind"], e.get("count")) for e in feed[:2]] == [
        ("job", "held", jobs), ("breaker", "forced_open", None)]
    assert feed[0]["details"]["dependency"] == "default" and feed[0]["actor"] == "user:alice"
    # Below them, every submission one line each, newest first: nothing lost, nothing twice.
    assert [e["kind"] for e in feed[2:]] == ["submitted"] * min(jobs + 1, len(feed) - 2)
    assert feed[2]["job"] == str(free.uuid)
    assert len(feed) == min(snapshot.EVENTS_LIMIT, jobs + 3)


def test_single_held_events_stay_single_lines():
    from dashboard import snapshot
    from jobs import breakers

    breakers.breaker_force_open(name="default", actor="user:alice", reason="maintenance")
    services.job_submit(kind="noop", dependency="default")
    services.job_submit(kind="noop", dependency="default")
    feed = snapshot.events_feed()
    assert [(e["kind"], e.get("count")) for e in feed[:4]] == [("held", None), ("submitted", None)] * 2
