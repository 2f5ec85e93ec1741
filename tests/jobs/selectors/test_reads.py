"""Selectors only read: no row is created or changed, even for a breaker never called yet."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from dashboard import snapshot
from jobs import dependencies, dialect, presenters, selectors, services
from jobs.models import Breaker, JobStatus

pytestmark = pytest.mark.django_db

WRITES = ("INSERT", "UPDATE", "DELETE")


def writes(queries) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if q["sql"].lstrip().upper().startswith(WRITES)]


def test_reading_everything_writes_nothing_even_without_breaker_rows():
    services.job_submit(kind="noop", priority=3)
    Breaker.objects.all().delete()  # as on a database whose dependencies were added after migrate
    with CaptureQueriesContext(connection) as queries:
        selectors.queue_summary()
        selectors.breaker_metrics()
        selectors.breaker_rows_configured()
        selectors.by_status_bounded()
        presenters.breaker_list()
        snapshot.build()
    assert writes(queries) == []
    assert not Breaker.objects.exists()


def test_configured_breakers_are_read_as_unsaved_defaults():
    Breaker.objects.all().delete()
    rows = selectors.breaker_rows_configured()
    assert sorted(rows) == sorted(dependencies.configured())
    assert all(row._state.adding and row.state == "closed" for row in rows.values())


def test_pop_order_lists_pending_jobs_highest_priority_then_oldest():
    low, _ = services.job_submit(kind="noop", priority=-5)
    first, _ = services.job_submit(kind="noop", priority=7)
    second, _ = services.job_submit(kind="noop", priority=7)
    done, _ = services.job_submit(kind="noop", priority=100)
    services.job_cancel(job_id=done.uuid, reason="not pending")
    assert [j.seq for j in selectors.jobs_in_pop_order()] == [first.seq, second.seq, low.seq]
    assert [j.seq for j in selectors.queue_next(limit=2, light=True)] == [first.seq, second.seq]
    assert selectors.job_position(selectors.job_get(job_id=low.uuid)) == 3


def test_estimated_count_only_where_the_database_keeps_statistics():
    services.job_submit(kind="noop")
    estimate = selectors.estimated_count(selectors.jobs_in_pop_order())
    if connection.vendor == "postgresql":
        assert isinstance(estimate, int) and estimate >= 0
    else:
        assert estimate is None
        assert selectors.estimated_count(selectors.jobs_in_pop_order().filter(dependency="local")) is None


def test_bounded_counts_are_exact_to_the_limit_then_flagged():
    for _ in range(3):
        services.job_submit(kind="noop")
    exact = selectors.Bounded(3, selectors.EXACT)
    assert selectors.by_status_bounded(limit=3)[JobStatus.PENDING] == exact
    assert selectors.by_status_bounded(limit=3)[JobStatus.SUCCEEDED] == (0, selectors.EXACT)
    assert selectors.pending_by_dependency_bounded(names=["local", "nothing"], limit=5) == {
        "local": exact, "nothing": (0, selectors.EXACT)}
    # Past the limit: PostgreSQL's estimate; where there is none, what ``beyond`` says.
    over = selectors.by_status_bounded(limit=2, beyond=selectors.at_least(2))[JobStatus.PENDING]
    if connection.vendor == "postgresql":
        assert over.bound == selectors.ESTIMATE and over.n >= 3  # never below the walk
    else:
        assert over == (3, selectors.AT_LEAST)
        assert selectors.by_status_bounded(limit=2)[JobStatus.PENDING] == exact  # default: count them all


def test_finished_per_second_buckets_by_the_databases_own_clock():
    job, _ = services.job_submit(kind="noop")
    at = timezone.now().replace(microsecond=0)
    type(job).objects.filter(seq=job.seq).update(status=JobStatus.SUCCEEDED, finished_at=at)
    assert selectors.finished_per_second(since=at - timedelta(seconds=5)) == {int(at.timestamp()): (1, 0)}


def test_an_unknown_vendor_gets_the_portable_dialect():
    class Other:
        vendor = "oracle"
        features = connection.features

    portable = dialect.of(Other())
    assert (portable.epoch_second, portable.estimates) == (None, False)
    assert dialect.of(connection).epoch_second is not None


def test_status_and_dependency_counts_are_exact_to_the_limit_then_estimated():
    """/metrics' job gauge walks at most ``limit`` + 1 index entries a pair: above that it reads
    PostgreSQL's estimate (never below what it walked), or counts exactly where there is none."""
    for _ in range(30):
        services.job_submit(kind="noop")
    for _ in range(2):
        job, _ = services.job_submit(kind="noop")
        services.job_cancel(job_id=job.uuid, reason="t")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE jobs_job")
    def pairs(limit):
        return selectors.bounded_counts({(status, name): {"status": status, "dependency": name}
                                         for status in (JobStatus.PENDING, JobStatus.CANCELLED)
                                         for name in ("local", "nothing")}, limit=limit)

    counts = pairs(10)
    assert counts[(JobStatus.CANCELLED, "local")] == (2, selectors.EXACT)
    assert counts[(JobStatus.PENDING, "nothing")].n == counts[(JobStatus.CANCELLED, "nothing")].n == 0
    pending = counts[(JobStatus.PENDING, "local")]
    if connection.vendor == "postgresql":
        assert pending.bound == selectors.ESTIMATE and 11 <= pending.n <= 200  # bounded below by the walk
    else:
        assert pending == (30, selectors.EXACT)
    assert pairs(100)[(JobStatus.PENDING, "local")] == (30, selectors.EXACT)


def _pending_group_bys(queries) -> list[str]:
    """Reads that group pending jobs: they grow with the queue (a million pending, a million rows)."""
    return [q["sql"] for q in queries.captured_queries if "GROUP BY" in q["sql"] and "'pending'" in q["sql"]]


@pytest.mark.parametrize("read", ["queue", "breakers", "breaker"])
def test_the_queue_and_breaker_reads_count_pending_jobs_bounded(read, monkeypatch):
    """``/api/queue/``, ``GET /api/breakers/`` and a breaker's detail count pending jobs with bounded
    walks (exact to the limit, PostgreSQL's estimate beyond, flagged), never a GROUP BY of them."""
    from jobs import breakers
    from jobs.selectors import counts

    monkeypatch.setattr(counts, "EXACT_COUNT_LIMIT", 3)
    breakers.breakers_ensure()  # as GET /api/breakers/ does first
    for _ in range(5):
        services.job_submit(kind="noop")  # local
    services.job_submit(kind="noop", dependency="default")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE jobs_job")
    estimated = connection.vendor == "postgresql"
    with CaptureQueriesContext(connection) as queries:
        if read == "queue":
            summary = selectors.queue_summary()
            assert summary["by_dependency"]["default"] == 1
            assert summary["estimated"] == ({"by_status": ["pending"], "by_dependency": ["local"]} if estimated
                                            else {"by_status": [], "by_dependency": []})
            local, size = summary["by_dependency"]["local"], summary["size"]
        elif read == "breakers":
            views = {b["name"]: b for b in presenters.breaker_list()}
        else:
            views = {"local": presenters.breaker_detail(row=Breaker.objects.get(name="local"))}
        if read != "queue":
            assert set(views["local"]) >= {"pending", "pending_bound", "held"}
            assert views["local"]["pending_bound"] == ("estimate" if estimated else "exact")
            local = size = views["local"]["pending"]
    assert _pending_group_bys(queries) == []
    if estimated:
        assert local >= 4 and size >= 4  # never below the walk
    else:
        assert local == 5 and (read != "queue" or size == 6)
