"""The runner in this process against a real HTTP downstream: outcomes, retries, backoff."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.routing import get_default_application
from django.test import override_settings
from django.utils import timezone

from jobs import services
from jobs.exceptions import InvalidInput
from jobs.handlers.registry import handler
from jobs.models import EventKind, Job, JobEvent, JobStatus
from jobs.notify import JOBS_CHANNEL
from jobs.worker import JobRunner
from jobs.worker.service import JobsWorker
from tests.support.channel_layer import messages_received
from tests.support.downstream import Downstream

pytestmark = pytest.mark.django_db(transaction=True)

FAST = {"POLL_INTERVAL": 0.05, "RETRY_BACKOFF_BASE": 0.2, "RETRY_BACKOFF_MAX": 5, "LEASE_SECONDS": 5}


@pytest.fixture
def downstream():
    with Downstream() as ds:
        yield ds


async def submit(**kwargs) -> Job:
    job, _ = await sync_to_async(services.job_submit)(**kwargs)
    return job


# Reads go through database_sync_to_async, which closes the connection it used afterwards; the
# async ORM (aget, async for) would leave one open in asgiref's thread, and PostgreSQL then
# refuses to drop the test database.
async def refreshed(job: Job) -> Job:
    return await database_sync_to_async(Job.objects.get)(seq=job.seq)


async def run_until_done(jobs: list[Job], *, timeout: float = 15, concurrency: int = 1) -> list[Job]:
    """Run a runner until every job is succeeded/failed/cancelled, then stop it gracefully."""
    runner = JobRunner(concurrency=concurrency, poll_interval=0.05)
    task = asyncio.create_task(runner.run())
    final = {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED}
    try:
        async with asyncio.timeout(timeout):
            while True:
                current = [await refreshed(j) for j in jobs]
                if all(j.status in final for j in current):
                    return current
                await asyncio.sleep(0.05)
    finally:
        runner.request_stop()
        await asyncio.wait_for(task, 10)


async def events(job: Job) -> list:
    return await database_sync_to_async(lambda: list(job.events.order_by("id")))()


@override_settings(RESILIENT=FAST)
async def test_http_2xx_succeeds_with_status_and_excerpt(downstream):
    downstream.set("/ok", status=200, body='{"hello": "world"}')
    job = await submit(kind="http", payload={"url": downstream.url("/ok"), "method": "POST", "json": {"a": 1}})
    [done] = await run_until_done([job])
    assert done.status == JobStatus.SUCCEEDED and done.attempts == 1
    assert done.result == {"status": 200, "body": '{"hello": "world"}'}
    assert [e.kind for e in await events(done)] == ["submitted", "claimed", "succeeded"]
    assert len(downstream.hits("/ok")) == 1


@override_settings(RESILIENT={**FAST, "HTTP_RESULT_EXCERPT_BYTES": 10})
async def test_http_result_body_is_bounded(downstream):
    downstream.set("/big", body="x" * 100_000)
    [done] = await run_until_done([await submit(kind="http", payload={"url": downstream.url("/big")})])
    assert done.result == {"status": 200, "body": "x" * 10}


@override_settings(RESILIENT=FAST)
async def test_http_4xx_fails_at_once_without_retry(downstream):
    downstream.set("/missing", status=404)
    [done] = await run_until_done([await submit(kind="http", payload={"url": downstream.url("/missing")})])
    assert done.status == JobStatus.FAILED and done.attempts == 1
    assert "HTTP 404" in done.last_error
    assert len(downstream.hits("/missing")) == 1


@override_settings(RESILIENT=FAST)
async def test_http_redirect_is_not_followed(downstream):
    downstream.set("/moved", status=302, headers={"Location": "http://example.com/"})
    [done] = await run_until_done([await submit(kind="http", payload={"url": downstream.url("/moved")})])
    assert done.status == JobStatus.FAILED and "HTTP 302" in done.last_error


# A breaker that would trip after 3 failures would hold the 4th attempt: this test is about the
# job's own retries, so its dependency tolerates more failures than the job has attempts.
@override_settings(RESILIENT={**FAST, "DEPENDENCIES": {"flaky": {"failure_threshold": 10}}})
async def test_http_5xx_retries_with_growing_jittered_backoff_then_fails(downstream):
    downstream.set("/boom", status=503)
    job = await submit(kind="http", dependency="flaky", payload={"url": downstream.url("/boom")}, max_attempts=4)
    [done] = await run_until_done([job], timeout=20)
    assert done.status == JobStatus.FAILED and done.attempts == 4
    assert "HTTP 503" in done.last_error
    history = await events(done)
    retries = [e for e in history if e.kind == EventKind.RETRY_SCHEDULED]
    assert [e.details["attempt"] for e in retries] == [1, 2, 3]
    delays = [e.details["delay"] for e in retries]
    for n, delay in enumerate(delays, start=1):  # 0.2 x 2^(n-1) x [0.75, 1.0]
        assert 0.2 * 2 ** (n - 1) * 0.75 - 0.001 <= delay <= 0.2 * 2 ** (n - 1) + 0.001  # details round to ms
    assert delays[0] < delays[1] < delays[2]
    hits = downstream.hits("/boom")
    assert len(hits) == 4
    gaps = [b - a for a, b in zip(hits, hits[1:], strict=False)]
    assert gaps[0] < gaps[1] < gaps[2]  # the downstream saw the spacing grow
    assert history[-1].kind == EventKind.FAILED


@override_settings(RESILIENT=FAST)
async def test_http_429_is_retried_no_sooner_than_retry_after(downstream):
    downstream.set("/busy", status=429, headers={"Retry-After": "30"})
    job = await submit(kind="http", payload={"url": downstream.url("/busy")})
    runner = JobRunner(poll_interval=0.05)
    task = asyncio.create_task(runner.run())
    try:
        async with asyncio.timeout(10):
            while (await refreshed(job)).attempts == 0:
                await asyncio.sleep(0.05)
    finally:
        runner.request_stop()
        await asyncio.wait_for(task, 10)
    after = await refreshed(job)
    assert after.status == JobStatus.PENDING
    assert after.run_after >= timezone.now() + timedelta(seconds=28)


@override_settings(RESILIENT={**FAST, "DEPENDENCIES": {"slowpoke": {"read_timeout": 0.2, "connect_timeout": 0.5}}})
async def test_http_timeout_is_a_retryable_dependency_failure(downstream):
    downstream.set("/slow", delay=1.0)
    job = await submit(kind="http", dependency="slowpoke", payload={"url": downstream.url("/slow")}, max_attempts=1)
    [done] = await run_until_done([job])
    assert done.status == JobStatus.FAILED and "timeout" in done.last_error.lower()


@override_settings(RESILIENT=FAST)
async def test_connection_refused_is_retryable(downstream):
    job = await submit(kind="http", payload={"url": "http://127.0.0.1:9/"}, max_attempts=2)
    [done] = await run_until_done([job])
    assert done.status == JobStatus.FAILED and done.attempts == 2
    assert "error calling" in done.last_error


@override_settings(RESILIENT={**FAST, "DEPENDENCIES": {"billing": {"base_url": "http://127.0.0.1:1/api/"}}})
async def test_path_under_the_dependency_base_url(downstream):
    with override_settings(RESILIENT={**FAST, "DEPENDENCIES": {"billing": {"base_url": downstream.url("/api/")}}}):
        downstream.set("/api/charge", status=201)
        job = await submit(kind="http", dependency="billing", payload={"path": "charge", "method": "POST"})
        [done] = await run_until_done([job])
    assert done.status == JobStatus.SUCCEEDED and done.result["status"] == 201


def test_http_allowlist_rejects_other_hosts_at_submission():
    for url in ["http://example.com/", "http://10.0.0.1/", "ftp://127.0.0.1/", "not a url", "http:///x"]:
        with pytest.raises(InvalidInput) as err:
            services.job_submit(kind="http", payload={"url": url})
        assert err.value.field == "payload"
    with pytest.raises(InvalidInput):
        services.job_submit(kind="http", payload={"path": "/x"})  # default has no base URL
    with pytest.raises(InvalidInput):
        services.job_submit(kind="http", payload={"url": "http://127.0.0.1/", "method": "TRACE"})
    assert Job.objects.count() == 0


@override_settings(RESILIENT={**FAST, "HTTP_ALLOWED_HOSTS": ["internal.test"]})
def test_http_allowlist_is_a_setting():
    services.job_submit(kind="http", payload={"url": "http://internal.test/x"})
    with pytest.raises(InvalidInput):
        services.job_submit(kind="http", payload={"url": "http://127.0.0.1/x"})


@override_settings(RESILIENT=FAST)
async def test_runs_in_pop_order():
    low = await submit(kind="noop", priority=-1)
    high = await submit(kind="noop", priority=50)
    mid = await submit(kind="noop")
    done = await run_until_done([low, high, mid])
    order = sorted(done, key=lambda j: j.started_at)
    assert [j.seq for j in order] == [high.seq, mid.seq, low.seq]


@override_settings(RESILIENT=FAST)
async def test_simulate_failure_rate_one_retries_then_fails():
    job = await submit(kind="simulate", payload={"complexity": 0, "failure_rate": 1}, max_attempts=2)
    [done] = await run_until_done([job])
    assert done.status == JobStatus.FAILED and done.attempts == 2
    assert done.last_error == "simulated failure"


@override_settings(RESILIENT={**FAST, "POLL_INTERVAL": 30})  # polling cannot explain a fast start
async def test_idle_worker_wakes_on_submission_through_the_jobs_channel():
    worker = JobsWorker(
        application=get_default_application(),
        channels=[JOBS_CHANNEL],
        channel_layer=get_channel_layer(),
        handle_signals=False,
    )
    task = asyncio.create_task(worker.arun())
    try:
        await asyncio.sleep(0.3)  # idle now, waiting up to 30 s for a wake-up
        job = await submit(kind="noop")
        async with asyncio.timeout(5):
            while (await refreshed(job)).status != JobStatus.SUCCEEDED:
                await asyncio.sleep(0.02)
    finally:
        worker.runner.request_stop()
        await asyncio.wait_for(task, 10)


@handler("test-unstorable")
async def unstorable(payload: dict, context) -> dict:
    """A result the worker's json.dumps check lets through but the database refuses (NaN)."""
    return {"value": float("nan")}


@override_settings(RESILIENT={**FAST, "LEASE_SECONDS": 1})
async def test_a_slot_survives_an_outcome_the_database_refuses():
    # Recording this outcome raises; the slot must log it and go on with the next job, and the
    # refused job comes back through its lease (here: failed, its only attempt spent).
    bad = await submit(kind="test-unstorable", priority=10, max_attempts=1)
    good = await submit(kind="noop")
    done_bad, done_good = await run_until_done([bad, good], timeout=20)
    assert done_good.status == JobStatus.SUCCEEDED
    assert done_bad.status == JobStatus.FAILED


@handler("test_nan_result")
async def nan_result(payload: dict, context) -> dict:
    return {"ratio": float("nan")}


@override_settings(RESILIENT=FAST)
async def test_a_result_no_database_can_store_fails_the_attempt_instead_of_the_worker():
    job = await submit(kind="test_nan_result", max_attempts=1)
    [done] = await run_until_done([job])
    assert done.status == JobStatus.FAILED and "JSON compliant" in done.last_error


@override_settings(RESILIENT=FAST)
async def test_a_busy_runner_records_and_claims_a_batch_per_transaction():
    jobs = [await submit(kind="noop") for _ in range(40)]
    done = await run_until_done(jobs, concurrency=4)
    assert all(j.status == JobStatus.SUCCEEDED for j in done)
    claim_times = set(await database_sync_to_async(
        lambda: list(JobEvent.objects.filter(kind=EventKind.CLAIMED).values_list("at", flat=True))
    )())
    # Each trip claims for every slot the last batch freed, all at one instant.
    assert len(claim_times) <= 40 // 4 + 2, sorted(claim_times)
    assert sorted(j.started_at for j in done) == [j.started_at for j in sorted(done, key=lambda j: j.seq)]


@override_settings(RESILIENT=FAST, CHANNEL_LAYERS={"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}})
async def test_dashboards_hear_of_the_runners_changes_from_the_loop():
    from jobs.notify import DASHBOARD_GROUP

    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(DASHBOARD_GROUP, channel)

    jobs = [await submit(kind="noop") for _ in range(20)]
    await messages_received(layer, channel, quiet=0.1)  # the submissions' own
    await run_until_done(jobs, concurrency=4)
    sent = await messages_received(layer, channel, quiet=0.1)
    # The trips' hints are sent by the runner on its loop, coalesced while one is in flight.
    assert 1 <= sent <= 20 // 4 + 2


def _hold_the_claim_back(locked: threading.Event, release: threading.Event) -> None:
    """Hold a lock that a worker's trip waits for, from another connection, until ``release``."""
    from django.db import connection, connections

    if connection.vendor == "sqlite":  # the write lock the trip's IMMEDIATE transaction waits for
        other = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None, timeout=30)
        other.execute("BEGIN IMMEDIATE")
        locked.set()
        release.wait(20)
        other.execute("COMMIT")
        other.close()
        return
    other = connections.create_connection("default")  # the breakers the trip reads first
    try:
        other.set_autocommit(False)
        with other.cursor() as cursor:
            cursor.execute("LOCK TABLE jobs_breaker IN ACCESS EXCLUSIVE MODE")
        locked.set()
        release.wait(20)
        other.commit()
    finally:
        other.close()


@override_settings(RESILIENT=FAST)
async def test_jobs_claimed_by_a_trip_in_flight_when_the_grace_ran_out_are_handed_back_unstarted():
    jobs = [await submit(kind="simulate", payload={"complexity": 10, "failure_rate": 0}) for _ in range(3)]
    locked, release = threading.Event(), threading.Event()
    holder = asyncio.create_task(sync_to_async(_hold_the_claim_back, thread_sensitive=False)(locked, release))
    await asyncio.to_thread(locked.wait, 10)
    runner = JobRunner(concurrency=3, poll_interval=0.05, shutdown_grace=0)
    task = asyncio.create_task(runner.run())
    await asyncio.sleep(0.3)  # its first trip (a claim of all three) now waits for the lock
    runner.request_stop()
    await asyncio.sleep(0.2)  # the grace (0 s) has run out with the trip still in flight
    release.set()
    await holder
    await asyncio.wait_for(task, 10)
    for job in jobs:
        after = await refreshed(job)
        assert (after.status, after.attempts, after.lease_owner) == (JobStatus.PENDING, 0, ""), after.status
        assert [e.kind for e in await events(after)][-2:] == [EventKind.CLAIMED, EventKind.RELEASED]
