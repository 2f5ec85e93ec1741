"""The dashboard socket against the real ASGI application: auth, snapshots, live coalesced
updates, operator commands."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import Permission

from dashboard import broadcasting, snapshot
from jobs import breakers, queue, services
from jobs.models import Breaker, BreakerEvent, Job, JobEvent, JobStatus
from tests.support.dashboard_socket import (
    HOST,
    closed_with,
    command,
    connect,
    follow,
    login_session,
    next_reply,
    open_dashboard,
    state_where,
)

pytestmark = pytest.mark.django_db(transaction=True)

submit = database_sync_to_async(services.job_submit)


# --- who may connect ----------------------------------------------------------------------------


async def test_anonymous_is_refused():
    comm = await connect(None)
    connected, code = await comm.connect(timeout=5)
    assert not connected


async def test_non_staff_is_refused(user):
    comm = await connect(user)
    connected, _ = await comm.connect(timeout=5)
    assert not connected


async def test_foreign_origin_is_refused(operator):
    comm = await connect(operator, headers=[(b"host", HOST.encode()), (b"origin", b"http://evil.example")])
    connected, _ = await comm.connect(timeout=5)
    assert not connected


async def test_missing_origin_is_refused(operator):
    comm = await connect(operator, headers=[(b"host", HOST.encode())])
    connected, _ = await comm.connect(timeout=5)
    assert not connected


# --- what it sends ------------------------------------------------------------------------------


async def test_snapshot_contents(operator):
    low, _ = await submit(kind="noop", priority=-5)
    high, _ = await submit(kind="simulate", priority=50, payload={"complexity": 0})
    gone, _ = await submit(kind="noop")
    await database_sync_to_async(services.job_cancel)(job_id=gone.uuid, actor="test")
    claimed = await database_sync_to_async(queue.job_claim_next)(worker_id="w1")
    assert claimed.seq == high.seq

    comm, hello, state = await open_dashboard(operator)
    assert hello["user"] == "operator"
    assert set(hello["actions"]) >= {"reprioritise", "cancel", "retry", "bulk_reprioritise", "submit"}
    assert set(state) == {"breakers", "counts", "estimated", "queue", "running", "finished", "events", "throughput"}
    assert [b["name"] for b in state["breakers"]] == ["default", "local", "validation"]
    assert {(b["state"], b["shadow_state"], b["override"], b["held"]) for b in state["breakers"]} == {
        ("closed", "closed", None, 0)
    }
    assert state["counts"] == {"pending": 1, "running": 1, "succeeded": 0, "failed": 0, "cancelled": 1}
    assert state["estimated"] == []
    assert [(r["id"], r["position"], r["waiting_for"]) for r in state["queue"]] == [
        (str(low.uuid), 1, {"reason": "next", "jobs_ahead": 0})
    ]
    assert [r["id"] for r in state["running"]] == [str(high.uuid)]
    assert state["running"][0]["lease_owner"] == "w1"
    assert [(r["id"], r["status"]) for r in state["finished"]] == [(str(gone.uuid), "cancelled")]
    assert [e["kind"] for e in state["events"]][:2] == ["claimed", "cancelled"]
    assert len(state["events"]) == 5 and state["events"][0]["job"] == str(high.uuid)
    assert len(state["throughput"]["succeeded"]) == 600
    await comm.disconnect()


async def test_queue_positions_match_the_api_selector(operator):
    jobs = [(await submit(kind="noop", priority=p))[0] for p in (1, 5, 5, -3, 9)]
    comm, _, state = await open_dashboard(operator)
    from jobs import selectors

    for row in state["queue"]:
        job = await database_sync_to_async(Job.objects.get)(uuid=row["id"])
        assert row["position"] == await database_sync_to_async(selectors.job_position)(job)
    assert [r["priority"] for r in state["queue"]] == [9, 5, 5, 1, -3]
    assert len(jobs) == 5
    await comm.disconnect()


async def test_update_after_a_service_change(operator):
    comm, _, state = await open_dashboard(operator)
    assert state["queue"] == []
    job, _ = await submit(kind="noop", priority=3)
    state = await state_where(comm, lambda s: s["queue"])
    assert state["queue"][0]["id"] == str(job.uuid) and state["counts"]["pending"] == 1
    assert state["events"][0]["kind"] == "submitted"
    await comm.disconnect()


def _burst() -> int:
    """2,000 changes of every kind the feed, the lists and the counts show: submissions,
    reprioritisations, cancellations, claims, successes, failures, a breaker forced open and
    released (holding jobs). Returns how many service calls made them."""
    changes = 0
    jobs = []
    for i in range(1200):
        jobs.append(services.job_submit(kind="noop", priority=i % 7, dependency="default" if i % 4 == 0 else None)[0])
        changes += 1
    for job in jobs[:300:3]:
        services.job_reprioritise(job_id=job.uuid, priority=50, actor="test")
        changes += 1
    for job in jobs[1:400:4]:
        services.job_cancel(job_id=job.uuid, actor="test")
        changes += 1
    breakers.breaker_force_open(name="default", actor="test", reason="burst")
    changes += 1
    for n in range(600):
        claimed = queue.job_claim_next(worker_id="w1")
        if n % 10 == 0:
            queue.job_fail(job=claimed, worker_id="w1", error="DependencyFailure: burst",
                           retryable=n % 20 == 0, retry_after=600)  # a retry far off: no state changes by time alone
        elif n % 7:  # most succeed; a few stay running
            queue.job_succeed(job=claimed, worker_id="w1", result={})
        changes += 2
    breakers.breaker_release(name="default", actor="test", reason="burst over")
    return changes + 1


async def _caught_up(comm, expected: dict, timeout: float = 20) -> dict:
    """The client's reconstruction once it shows ``expected`` (a fresh build); a change the
    stream lost or misapplied never gets there."""
    keys = ("counts", "estimated", "breakers", "queue", "running", "finished", "events")
    try:
        return await state_where(comm, lambda s: all(s[k] == expected[k] for k in keys), timeout=timeout)
    except TimeoutError:
        state = comm.dashboard["state"]
        for key in keys:  # say which part differs
            assert state[key] == expected[key], key
        raise


async def test_burst_of_2000_changes_reconstructs_exactly_from_the_change_stream(operator):
    clients = [(await open_dashboard(operator))[0] for _ in range(5)]
    broadcaster = broadcasting.current()
    ticks_before, diffs_before, seq_before = broadcaster.ticks, broadcaster.diffs, broadcaster.seq

    started = time.monotonic()
    assert await database_sync_to_async(_burst)() >= 2000
    expected = await database_sync_to_async(snapshot.build)()
    for comm in clients:
        # The snapshot plus every change is what the database says now...
        state = await _caught_up(comm, expected)
        # ... and, throughput included, the broadcaster's last state.
        if comm.dashboard["seq"] == broadcaster.seq:
            assert state == broadcaster.state
    elapsed = time.monotonic() - started
    sent = broadcaster.seq - seq_before
    # Coalesced: at most one message per 100 ms tick, plus the one in flight when the burst ended.
    assert 2 <= sent <= elapsed / broadcasting.MIN_INTERVAL + 3, (sent, elapsed)
    # Each state was built and diffed once per tick for all five clients, not once per client.
    assert broadcaster.ticks - ticks_before == broadcaster.diffs - diffs_before
    assert broadcaster.ticks - ticks_before <= sent + 3
    for comm in clients:
        await comm.disconnect()


async def test_fifty_dashboards_cost_one_build_and_one_diff_per_tick(operator):
    session = await login_session(operator)
    clients = [(await open_dashboard(operator, session=session))[0] for _ in range(50)]
    broadcaster = broadcasting.current()
    ticks_before, diffs_before, seq_before = broadcaster.ticks, broadcaster.diffs, broadcaster.seq

    def burst():
        for i in range(300):
            services.job_submit(kind="noop", priority=i % 5)

    await database_sync_to_async(burst)()
    expected = await database_sync_to_async(snapshot.build)()
    for comm in clients:
        await _caught_up(comm, expected)
    ticks = broadcaster.ticks - ticks_before
    # One build and one diff per tick for all fifty, and never more ticks than messages sent
    # (plus the idle refreshes that found nothing new).
    assert ticks == broadcaster.diffs - diffs_before
    assert 1 <= broadcaster.seq - seq_before <= ticks
    assert len(broadcaster.subscribers) == 50
    for comm in clients:
        await comm.disconnect()


async def test_a_gap_in_the_stream_is_repaired_by_a_snapshot(operator):
    comm, _, _ = await open_dashboard(operator)
    broadcaster = broadcasting.current()
    await submit(kind="noop")
    while (message := await comm.receive_json_from(timeout=5))["type"] != "changes":
        pass  # this change is lost: not applied
    await submit(kind="noop", priority=4)
    message = await comm.receive_json_from(timeout=5)
    assert message["type"] == "changes" and message["seq"] > comm.dashboard["seq"] + 1  # a gap
    await comm.send_json_to({"action": "resync", "ref": 1})
    message = await comm.receive_json_from(timeout=5)
    assert message["type"] == "snapshot" and message["seq"] == broadcaster.seq
    follow(comm, message)
    await submit(kind="noop", priority=9)
    state = await state_where(comm, lambda s: s["counts"]["pending"] == 3)
    expected = await database_sync_to_async(snapshot.build)()
    assert [r["id"] for r in state["queue"]] == [r["id"] for r in expected["queue"]]
    assert state["queue"] == expected["queue"] and state["events"] == expected["events"]
    await comm.disconnect()


async def test_a_viewer_who_lost_view_all_jobs_gets_no_state_on_resync(staff_readonly):
    """The stream is for accounts that see every job: once that permission is gone, asking for
    the state again closes the socket (4003) instead of sending it (the periodic check closes it
    within 5 s anyway: tests/dashboard/test_live_permissions.py)."""
    comm, _, _ = await open_dashboard(staff_readonly)
    await database_sync_to_async(
        lambda: staff_readonly.user_permissions.remove(Permission.objects.get(codename="view_all_jobs")))()
    await submit(kind="noop")
    await comm.send_json_to({"action": "resync"})
    received = []
    while (output := await comm.receive_output(timeout=5))["type"] != "websocket.close":
        received.append(json.loads(output["text"])["type"])
    assert output["code"] == 4003
    assert "snapshot" not in received and received[-1] == "error"
    await comm.disconnect()


async def test_resync_is_refused_once_the_session_ended(operator):
    comm, _, _ = await open_dashboard(operator)
    await database_sync_to_async(lambda: operator.__class__.objects.filter(pk=operator.pk).update(is_active=False))()
    await comm.send_json_to({"action": "resync"})
    assert await closed_with(comm) == 4001


async def test_last_dashboard_leaving_stops_the_broadcaster(operator):
    one, _, _ = await open_dashboard(operator)
    two, _, _ = await open_dashboard(operator)
    first = broadcasting.current()
    await one.disconnect()
    assert broadcasting.current() is first
    await two.disconnect()
    assert broadcasting.current() is None


# --- operator commands --------------------------------------------------------------------------


async def test_reprioritise_cancel_retry_over_the_socket(operator):
    a, _ = await submit(kind="noop", priority=1)
    b, _ = await submit(kind="noop", priority=2)
    comm, _, state = await open_dashboard(operator)
    assert [r["id"] for r in state["queue"]] == [str(b.uuid), str(a.uuid)]

    reply = await command(comm, action="reprioritise", id=str(a.uuid), priority=80, ref=7)
    assert reply == {"type": "result", "ok": True, "ref": 7, "action": "reprioritise",
                     "job": {"id": str(a.uuid), "status": "pending", "priority": 80}}
    state = await state_where(comm, lambda s: s["queue"][0]["id"] == str(a.uuid))
    assert state["queue"][0]["priority"] == 80
    event = await database_sync_to_async(lambda: JobEvent.objects.filter(job__uuid=a.uuid).last())()
    assert (event.kind, event.actor, event.details) == ("reprioritised", "user:operator", {"before": 1, "after": 80})

    reply = await command(comm, action="cancel", id=str(b.uuid), ref="c")
    assert reply["type"] == "result" and reply["job"]["status"] == "cancelled"
    reply = await command(comm, action="retry", id=str(b.uuid), ref="r")
    assert reply["type"] == "result" and reply["job"]["status"] == "pending"
    await comm.disconnect()


@pytest.mark.parametrize(
    ("message", "field", "text"),
    [
        ({"action": "reprioritise", "priority": 5}, "id", "must be a job id (UUID)"),
        ({"action": "reprioritise", "id": "JOB", "priority": 5}, "id", "must be a job id (UUID)"),
        ({"action": "reprioritise", "id": "{job}"}, "priority", "this field is required"),
        ({"action": "reprioritise", "id": "{job}", "priority": 101}, "priority", "must be between -100 and 100"),
        ({"action": "reprioritise", "id": "{job}", "priority": "high"}, "priority", "must be an integer"),
        ({"action": "reprioritise", "id": "{job}", "priority": True}, "priority", "must be an integer"),
        ({"action": "reprioritise", "id": "{job}", "priority": 1, "extra": 1}, "extra", None),
        ({"action": "explode"}, "action", None),
        ({"action": "submit", "kind": "nope"}, "kind", None),
        ({"action": "submit", "kind": "noop", "payload": [1]}, "payload", "must be a JSON object"),
        ({"action": "submit", "kind": "noop", "dependency": "mars"}, "dependency", None),
        ({"action": "bulk_reprioritise", "priority": 5}, "ids", None),
        ({"action": "bulk_reprioritise", "priority": 5, "ids": ["x"]}, "ids", None),
        ({"action": "bulk_reprioritise", "priority": 5, "filter": {"colour": "red"}}, "filter", None),
    ],
)
async def test_invalid_commands_get_a_field_error_and_change_nothing(operator, message, field, text):
    job, _ = await submit(kind="noop", priority=1)
    comm, _, _ = await open_dashboard(operator)
    message = {k: (str(job.uuid) if v == "{job}" else v) for k, v in message.items()}
    reply = await command(comm, **message, ref=1)
    assert reply["type"] == "error" and reply["field"] == field and reply["ref"] == 1, reply
    if text:
        assert reply["message"] == text
    count = await database_sync_to_async(Job.objects.count)()
    assert count == 1
    assert (await database_sync_to_async(Job.objects.get)(seq=job.seq)).priority == 1
    await comm.disconnect()


async def test_illegal_transition_says_the_status(operator):
    job, _ = await submit(kind="noop")
    comm, _, _ = await open_dashboard(operator)
    reply = await command(comm, action="retry", id=str(job.uuid))
    assert reply["type"] == "error" and reply["code"] == "illegal_transition" and reply["status"] == "pending"
    assert reply["message"] == "cannot retry a job that is pending; it must be failed or cancelled"
    reply = await command(comm, action="cancel", id="00000000-0000-0000-0000-000000000000")
    assert reply["code"] == "not_found"
    await comm.send_to(text_data="not json")
    reply = await next_reply(comm)
    assert reply["type"] == "error" and reply["code"] == "invalid"
    assert reply["message"].startswith("not a JSON command: Expecting value")
    await comm.send_to(text_data="[1]")
    reply = await next_reply(comm)
    assert reply["type"] == "error" and reply["message"] == "a command must be a JSON object"
    await comm.disconnect()


async def test_bulk_reprioritise_preview_and_apply(operator):
    local = [(await submit(kind="noop", priority=1))[0] for _ in range(3)]
    other = (await submit(kind="noop", priority=1, dependency="default"))[0]
    already = (await submit(kind="noop", priority=40))[0]
    comm, _, _ = await open_dashboard(operator)

    reply = await command(comm, action="bulk_reprioritise", filter={"dependency": "local"}, priority=40, dry_run=True)
    assert reply["type"] == "result" and reply["count"] == 3 and reply["dry_run"] is True
    assert {j.priority for j in await database_sync_to_async(list)(Job.objects.all())} == {1, 40}

    reply = await command(comm, action="bulk_reprioritise", ids=[str(local[0].uuid), str(other.uuid)], priority=-7)
    assert reply["count"] == 2
    reply = await command(comm, action="bulk_reprioritise", filter={"dependency": "local", "priority": 1}, priority=40)
    assert reply["count"] == 2
    priorities = dict(await database_sync_to_async(lambda: list(Job.objects.values_list("seq", "priority")))())
    assert priorities == {local[0].seq: -7, local[1].seq: 40, local[2].seq: 40, other.seq: -7, already.seq: 40}
    events = await database_sync_to_async(lambda: list(JobEvent.objects.filter(kind="reprioritised").values_list("job_id", "actor")))()
    assert sorted(events) == sorted([(local[0].seq, "user:operator"), (other.seq, "user:operator"),
                                     (local[1].seq, "user:operator"), (local[2].seq, "user:operator")])
    state = await state_where(comm, lambda s: [r["priority"] for r in s["queue"]] == [40, 40, 40, -7, -7])
    assert state["counts"]["pending"] == 5
    await comm.disconnect()


async def test_submit_over_the_socket(operator):
    comm, _, _ = await open_dashboard(operator)
    reply = await command(comm, action="submit", kind="simulate", payload={"complexity": 0}, priority=4, dependency="local")
    assert reply["type"] == "result" and reply["created"] is True
    job = await database_sync_to_async(Job.objects.get)(uuid=reply["job"]["id"])
    assert (job.kind, job.priority, job.status, job.payload) == ("simulate", 4, JobStatus.PENDING, {"complexity": 0})
    state = await state_where(comm, lambda s: s["queue"])
    assert state["queue"][0]["id"] == reply["job"]["id"]
    await comm.disconnect()


async def test_a_job_scheduled_over_the_socket_waits_with_its_time(operator):
    comm, _, _ = await open_dashboard(operator)
    before = time.time()
    reply = await command(comm, action="submit", kind="noop", delay_seconds=600)
    assert reply["type"] == "result" and reply["created"] is True
    job = await database_sync_to_async(Job.objects.get)(uuid=reply["job"]["id"])
    assert before + 600 <= job.run_after.timestamp() <= time.time() + 600
    assert reply["job"]["run_after"] == job.run_after.isoformat()
    state = await state_where(comm, lambda s: s["queue"])
    assert state["queue"][0]["waiting_for"] == {"reason": "scheduled", "until": job.run_after.isoformat()}
    when = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0).astimezone(timezone(timedelta(hours=2)))
    reply = await command(comm, action="submit", kind="noop", run_after=when.isoformat())
    job = await database_sync_to_async(Job.objects.get)(uuid=reply["job"]["id"])
    assert job.run_after == when and job.run_after.utcoffset() == timedelta(0)
    await comm.disconnect()


@pytest.mark.parametrize(("schedule", "field", "text"), [
    ({"delay_seconds": -1}, "delay_seconds", "must be 0 or more"),
    ({"delay_seconds": "soon"}, "delay_seconds", "must be a number of seconds"),
    ({"delay_seconds": 10**9}, "delay_seconds", "(RESILIENT_MAX_DELAY)"),
    ({"run_after": "2030-01-01T12:00:00"}, "run_after", "must include a time zone"),
    ({"run_after": "tomorrow"}, "run_after", "must be an ISO 8601 date and time with a time zone"),
    ({"run_after": "2030-01-01T12:00:00Z", "delay_seconds": 5}, "run_after", "give run_after or delay_seconds, not both"),
])
async def test_a_bad_schedule_over_the_socket_is_refused_and_stores_nothing(operator, schedule, field, text):
    comm, _, _ = await open_dashboard(operator)
    reply = await command(comm, action="submit", kind="noop", **schedule)
    assert reply["type"] == "error" and reply["field"] == field and text in reply["message"], reply
    assert await database_sync_to_async(Job.objects.count)() == 0
    assert await database_sync_to_async(JobEvent.objects.count)() == 0
    await comm.disconnect()


async def test_read_only_operator_sees_everything_and_changes_nothing(staff_readonly):
    job, _ = await submit(kind="noop", priority=1)
    comm, hello, state = await open_dashboard(staff_readonly)
    assert hello["actions"] == []
    assert state["queue"][0]["id"] == str(job.uuid)
    for message in (
        {"action": "reprioritise", "id": str(job.uuid), "priority": 9},
        {"action": "cancel", "id": str(job.uuid)},
        {"action": "retry", "id": str(job.uuid)},
        {"action": "bulk_reprioritise", "all": True, "priority": 9},
        {"action": "submit", "kind": "noop"},
    ):
        reply = await command(comm, **message)
        assert reply["type"] == "error" and reply["code"] == "permission_denied", reply
    fresh = await database_sync_to_async(Job.objects.get)(seq=job.seq)
    assert (fresh.priority, fresh.status) == (1, JobStatus.PENDING)
    assert await database_sync_to_async(Job.objects.count)() == 1
    await comm.disconnect()


async def test_permissions_are_per_action(staff_readonly):
    grant = database_sync_to_async(
        lambda: staff_readonly.user_permissions.add(Permission.objects.get(codename="cancel_job"))
    )
    await grant()
    job, _ = await submit(kind="noop", priority=1)
    comm, hello, _ = await open_dashboard(staff_readonly)
    assert hello["actions"] == ["cancel"]
    assert (await command(comm, action="reprioritise", id=str(job.uuid), priority=9))["code"] == "permission_denied"
    assert (await command(comm, action="cancel", id=str(job.uuid)))["type"] == "result"
    await comm.disconnect()


def test_snapshot_json_is_plain(db):
    """The state is JSON as built (no datetimes or UUID objects left for the encoder)."""
    services.job_submit(kind="noop")
    json.dumps(snapshot.build())


async def test_throughput_window_counts_finished_jobs(operator):
    job, _ = await submit(kind="noop")
    claimed = await database_sync_to_async(queue.job_claim_next)(worker_id="w")
    await database_sync_to_async(queue.job_succeed)(job=claimed, worker_id="w", result={})
    comm, _, state = await open_dashboard(operator)
    assert sum(state["throughput"]["succeeded"]) == 1 and sum(state["throughput"]["failed"]) == 0
    assert job.seq == claimed.seq
    await asyncio.sleep(0)
    await comm.disconnect()


# --- breakers -----------------------------------------------------------------------------------


force_open = database_sync_to_async(breakers.breaker_force_open)


async def test_snapshot_includes_every_breaker_and_marks_held_jobs(operator):
    held, _ = await submit(kind="noop", priority=5, dependency="default")
    free, _ = await submit(kind="noop", priority=1)
    await force_open(name="default", actor="user:someone", reason="maintenance", ttl_seconds=600)
    comm, _, state = await open_dashboard(operator)
    cards = {b["name"]: b for b in state["breakers"]}
    assert set(cards) == {"default", "local", "validation"}
    default = cards["default"]
    assert (default["state"], default["shadow_state"], default["held"], default["held_bound"]) == ("open", "closed", 1, "exact")
    assert default["override"]["state"] == "open" and default["override"]["reason"] == "maintenance"
    assert default["override"]["actor"] == "user:someone" and default["override"]["expires_at"]
    assert (default["failures"], default["threshold"]) == (0, 3)
    assert cards["local"]["held"] == 0 and cards["local"]["override"] is None
    rows = {r["id"]: r for r in state["queue"]}
    assert rows[str(held.uuid)]["held"] is True and rows[str(free.uuid)]["held"] is False
    waiting = rows[str(held.uuid)]["waiting_for"]
    assert waiting == {"reason": "breaker_open", "dependency": "default", "state": "forced open",
                       "until": default["override"]["expires_at"]}
    # The API's job detail says the same (jobs.selectors.job_waiting_for without prefetched rows).
    from jobs import selectors

    job = await database_sync_to_async(Job.objects.get)(seq=held.seq)
    assert await database_sync_to_async(selectors.job_waiting_for)(job) == waiting
    assert rows[str(free.uuid)]["waiting_for"] == {"reason": "jobs_ahead", "jobs_ahead": 1}
    assert (rows[str(free.uuid)]["held_ahead"], rows[str(held.uuid)]["held_ahead"]) == (1, 0)
    # The feed merges the override with the job events by time, newest first (the held event the
    # override wrote for the job has the override's time and is listed as its consequence).
    assert [(e["source"], e["kind"]) for e in state["events"]] == [
        ("job", "held"), ("breaker", "forced_open"), ("job", "submitted"), ("job", "submitted")]
    assert state["events"][1]["breaker"] == "default" and state["events"][1]["reason"] == "maintenance"
    times = [e["at"] for e in state["events"]]
    assert times == sorted(times, reverse=True)
    await comm.disconnect()


async def test_force_open_release_over_the_socket(operator):
    job, _ = await submit(kind="noop", dependency="default")
    comm, hello, state = await open_dashboard(operator)
    assert {"breaker_force_open", "breaker_force_closed", "breaker_release"} <= set(hello["actions"])
    reply = await command(comm, action="breaker_force_open", name="default", reason="deploying", ttl_seconds=120, ref="b1")
    assert reply["type"] == "result" and reply["ref"] == "b1", reply
    assert reply["breaker"]["override"] == "open" and reply["breaker"]["override_expires_at"]
    event = await database_sync_to_async(lambda: BreakerEvent.objects.order_by("-id").first())()
    assert (event.breaker_id, event.kind, event.actor, event.reason) == ("default", "forced_open", "user:operator", "deploying")
    assert event.details["ttl_seconds"] == 120
    state = await state_where(comm, lambda s: next(b for b in s["breakers"] if b["name"] == "default")["state"] == "open")
    card = next(b for b in state["breakers"] if b["name"] == "default")
    assert card["override"]["actor"] == "user:operator" and card["held"] == 1
    assert state["queue"][0]["held"] is True
    held_events = await database_sync_to_async(lambda: list(JobEvent.objects.filter(kind="held").values_list("job_id", flat=True)))()
    assert held_events == [job.seq]

    reply = await command(comm, action="breaker_release", name="default", reason="done")
    assert reply["type"] == "result" and reply["breaker"]["override"] == ""
    state = await state_where(comm, lambda s: next(b for b in s["breakers"] if b["name"] == "default")["override"] is None)
    assert next(b for b in state["breakers"] if b["name"] == "default")["state"] == "closed"
    assert state["queue"][0]["held"] is False
    kinds = [e["kind"] for e in state["events"] if e["source"] == "breaker"]
    assert kinds[:2] == ["released", "forced_open"]
    await comm.disconnect()


async def test_force_closed_shows_the_shadow_state(operator):
    comm, _, _ = await open_dashboard(operator)
    reply = await command(comm, action="breaker_force_closed", name="local", reason="false alarm")
    assert reply["type"] == "result"
    state = await state_where(comm, lambda s: next(b for b in s["breakers"] if b["name"] == "local")["override"])
    card = next(b for b in state["breakers"] if b["name"] == "local")
    assert (card["state"], card["shadow_state"], card["override"]["state"], card["override"]["expires_at"]) == (
        "closed", "closed", "closed", None)
    await comm.disconnect()


@pytest.mark.parametrize(
    ("message", "field", "code", "text"),
    [
        ({"action": "breaker_force_open", "name": "default", "ttl_seconds": 0}, "ttl_seconds", "invalid",
         "must be more than 0 and at most 2592000"),
        ({"action": "breaker_force_open", "name": "default", "ttl_seconds": "soon"}, "ttl_seconds", "invalid",
         "must be a number of seconds"),
        ({"action": "breaker_force_closed", "name": "default", "ttl_seconds": -5}, "ttl_seconds", "invalid", None),
        ({"action": "breaker_force_open", "name": "default", "reason": 7}, "reason", "invalid", "must be a string"),
        ({"action": "breaker_force_open", "name": "default", "reason": "x" * 501}, "reason", "invalid", None),
        ({"action": "breaker_release", "name": "default", "ttl_seconds": 60}, "ttl_seconds", "invalid", None),
        ({"action": "breaker_force_open", "reason": "r"}, "name", "invalid", "this field is required"),
        ({"action": "breaker_force_open", "name": "mars"}, None, "not_found", "no breaker 'mars'"),
        ({"action": "breaker_force_open", "name": "default", "colour": "red"}, "colour", "invalid", None),
    ],
)
async def test_invalid_breaker_commands_change_nothing(operator, message, field, code, text):
    comm, _, _ = await open_dashboard(operator)
    reply = await command(comm, **message)
    assert reply["type"] == "error" and reply["field"] == field and reply["code"] == code, reply
    if text:
        assert reply["message"] == text
    assert await database_sync_to_async(BreakerEvent.objects.count)() == 0
    assert await database_sync_to_async(Breaker.objects.exclude(override="").count)() == 0
    await comm.disconnect()


async def test_read_only_operator_cannot_override_breakers(staff_readonly):
    comm, hello, state = await open_dashboard(staff_readonly)
    assert not {a for a in hello["actions"] if a.startswith("breaker_")}
    assert len(state["breakers"]) == 3  # sees every breaker
    for action in ("breaker_force_open", "breaker_force_closed", "breaker_release"):
        reply = await command(comm, action=action, name="default", reason="r")
        assert reply["type"] == "error" and reply["code"] == "permission_denied", reply
        assert reply["message"] == "needs the 'jobs.override_breaker' permission"
    assert await database_sync_to_async(BreakerEvent.objects.count)() == 0
    await comm.disconnect()


async def test_breaker_transition_by_the_worker_path_reaches_the_dashboard(operator):
    """Automatic transitions notify dashboards too: three counted failures trip the breaker."""
    comm, _, _ = await open_dashboard(operator)
    for _ in range(3):
        await database_sync_to_async(breakers.breaker_record)(name="default", outcome=breakers.Outcome.FAILURE, error="HTTP 503")
    state = await state_where(comm, lambda s: next(b for b in s["breakers"] if b["name"] == "default")["state"] == "open")
    card = next(b for b in state["breakers"] if b["name"] == "default")
    assert card["override"] is None and card["retry_at"] and card["failures"] == 3
    assert [e["kind"] for e in state["events"] if e["source"] == "breaker"] == ["opened"]
    await comm.disconnect()


async def test_limits_change_over_the_socket_is_audited_and_shown_on_the_card(operator):
    comm, hello, _ = await open_dashboard(operator)
    assert "breaker_limits" in hello["actions"]
    bad = await command(comm, action="breaker_limits", name="default", reason="slow down", rate_limit="fast")
    assert bad["type"] == "error" and bad["field"] == "rate_limit", bad
    reply = await command(comm, action="breaker_limits", name="default", reason="slow down", max_concurrency=2,
                          rate_limit="5/s", ref="l1")
    assert reply["type"] == "result" and reply["breaker"]["limits"] == {"max_concurrency": 2, "rate_limit": "5/s"}
    event = await database_sync_to_async(lambda: BreakerEvent.objects.order_by("-id").first())()
    assert (event.kind, event.actor, event.reason) == ("limits_changed", "user:operator", "slow down")
    state = await state_where(
        comm, lambda s: next(b for b in s["breakers"] if b["name"] == "default")["flow"]["max_concurrency"] == 2)
    card = next(b for b in state["breakers"] if b["name"] == "default")
    assert card["flow"]["rate_limit"] == "5/s" and card["flow"]["in_flight"] == 0
    reply = await command(comm, action="breaker_limits", name="default", reason="over", reset=True)
    assert reply["breaker"]["limits"] == {}
    await comm.disconnect()
