"""An HTTP request's wake-up and dashboard hint leave after its response (resilient/hints.py),
through the real ASGI application: the client's answer never waits for them."""

from __future__ import annotations

import asyncio
import json

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.test import override_settings
from rest_framework.authtoken.models import Token

from jobs.models import Job
from jobs.notify import DASHBOARD_GROUP, JOBS_CHANNEL

pytestmark = pytest.mark.django_db(transaction=True)

IN_MEMORY = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


async def _nothing_on(layer, channel: str) -> bool:
    try:
        await asyncio.wait_for(layer.receive(channel), timeout=0.05)
    except TimeoutError:
        return True
    return False


@override_settings(CHANNEL_LAYERS=IN_MEMORY)
async def test_a_submissions_hints_leave_after_its_response(user):
    from resilient.asgi import application

    layer = get_channel_layer()
    await layer.group_add(DASHBOARD_GROUP, "dashboard-listener")
    token = await database_sync_to_async(lambda: Token.objects.create(user=user).key)()
    body = json.dumps({"kind": "noop"}).encode()
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/api/jobs/", "raw_path": b"/api/jobs/", "query_string": b"", "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()), (b"authorization", f"Token {token}".encode())],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    seen: dict[str, object] = {}

    async def receive():
        return messages.pop(0) if messages else await asyncio.Event().wait()

    async def send(message):
        if message["type"] == "http.response.start":
            seen["status"] = message["status"]
        elif message["type"] == "http.response.body" and not message.get("more_body"):
            # The answer is complete, the job committed: no hint may be out yet.
            seen["job stored"] = await database_sync_to_async(Job.objects.exists)()
            seen["no wake-up yet"] = await _nothing_on(layer, JOBS_CHANNEL)
            seen["no dashboard hint yet"] = await _nothing_on(layer, "dashboard-listener")

    await asyncio.wait_for(application(scope, receive, send), timeout=10)
    assert seen == {"status": 201, "job stored": True, "no wake-up yet": True, "no dashboard hint yet": True}
    assert await asyncio.wait_for(layer.receive(JOBS_CHANNEL), timeout=1) == {"type": "jobs.wake"}
    assert await asyncio.wait_for(layer.receive("dashboard-listener"), timeout=1) == {"type": "dashboard.changed"}


@override_settings(CHANNEL_LAYERS=IN_MEMORY)
async def test_hints_noted_before_an_error_still_leave_each_wake_up_and_one_dashboard_hint():
    from jobs import notify
    from resilient.hints import HintsAfterResponse

    layer = get_channel_layer()
    await layer.group_add(DASHBOARD_GROUP, "dashboard-listener")

    def three_changes() -> None:  # what services ask for after their commits
        for _ in range(3):
            notify.wake_workers_on_commit()
            notify.dashboard_changed_on_commit()

    async def failing_app(scope, receive, send):
        await database_sync_to_async(three_changes)()
        raise RuntimeError("the view failed after its commits")

    with pytest.raises(RuntimeError):
        await HintsAfterResponse(failing_app)({"type": "http", "path": "/x", "method": "POST"}, None, None)
    assert [await asyncio.wait_for(layer.receive(JOBS_CHANNEL), timeout=1) for _ in range(3)] == [{"type": "jobs.wake"}] * 3
    assert await _nothing_on(layer, JOBS_CHANNEL)
    assert await asyncio.wait_for(layer.receive("dashboard-listener"), timeout=1) == {"type": "dashboard.changed"}
    assert await _nothing_on(layer, "dashboard-listener")
