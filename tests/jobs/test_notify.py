"""Wake-ups are hints: a full or broken channel layer never breaks a submission."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.test import override_settings

from jobs import services
from jobs.models import Job
from jobs.notify import JOBS_CHANNEL
from tests.support.channel_layer import messages_received

pytestmark = pytest.mark.django_db(transaction=True)

TINY_LAYER = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 2}}}
BROKEN_LAYER = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [("127.0.0.1", 1)]}}}


@override_settings(CHANNEL_LAYERS=TINY_LAYER)
def test_a_full_jobs_channel_is_harmless():
    layer = get_channel_layer()
    for _ in range(2):
        async_to_sync(layer.send)(JOBS_CHANNEL, {"type": "jobs.wake"})
    job, created = services.job_submit(kind="noop")  # the wake-up hits ChannelFull
    assert created and Job.objects.filter(seq=job.seq).exists()


@override_settings(CHANNEL_LAYERS=BROKEN_LAYER)
def test_an_unreachable_channel_layer_does_not_fail_the_submission(caplog):
    job, created = services.job_submit(kind="noop")
    assert created and Job.objects.filter(seq=job.seq).exists()
    assert "could not send worker wake-up" in caplog.text


@override_settings(CHANNEL_LAYERS={"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}})
def test_one_transaction_sends_dashboards_one_hint_however_many_jobs_it_changes():
    from django.db import transaction

    from jobs import queue
    from jobs.notify import DASHBOARD_GROUP
    from jobs.worker import outcomes

    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(DASHBOARD_GROUP, channel)

    def hints() -> int:
        return async_to_sync(messages_received)(layer, channel, quiet=0.05)

    for _ in range(5):
        services.job_submit(kind="noop")
    hints()  # the submissions' own hints
    claimed = queue.jobs_claim(worker_id="w", limit=3)
    assert hints() == 1
    with transaction.atomic():
        outcomes.record_and_claim(worker_id="w", finished=[outcomes.Attempt(job=j) for j in claimed], want=2)
    assert hints() == 1


@override_settings(CHANNEL_LAYERS={"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}})
async def test_a_submission_from_a_server_thread_sends_both_hints_on_the_servers_loop_without_waiting():
    import asyncio

    from channels.db import database_sync_to_async

    from jobs.notify import DASHBOARD_GROUP

    layer = get_channel_layer()
    await layer.group_add(DASHBOARD_GROUP, "dashboard-listener")
    # As under Daphne: the view runs in a sync_to_async thread of the server's loop.
    job, created = await database_sync_to_async(services.job_submit)(kind="noop")
    assert created
    wake = await asyncio.wait_for(layer.receive(JOBS_CHANNEL), timeout=5)
    hint = await asyncio.wait_for(layer.receive("dashboard-listener"), timeout=5)
    assert wake == {"type": "jobs.wake"} and hint == {"type": "dashboard.changed"}


@override_settings(CHANNEL_LAYERS=BROKEN_LAYER)
async def test_a_failing_send_from_a_server_thread_is_logged_not_raised(caplog):
    import asyncio

    from channels.db import database_sync_to_async

    job, created = await database_sync_to_async(services.job_submit)(kind="noop")
    assert created
    for _ in range(100):
        if "could not send worker wake-up" in caplog.text:
            break
        await asyncio.sleep(0.05)
    assert "could not send worker wake-up" in caplog.text


async def test_on_redis_a_submission_from_a_server_thread_wakes_a_worker_and_tells_dashboards(redis_url):
    import asyncio
    import uuid

    from channels.db import database_sync_to_async

    from jobs.notify import DASHBOARD_GROUP

    layers = {"default": {"BACKEND": "resilient.channel_layer.RedisChannelLayer",
                          "CONFIG": {"hosts": [redis_url], "prefix": f"test-{uuid.uuid4().hex[:8]}"}}}
    with override_settings(CHANNEL_LAYERS=layers):  # channels builds the layer afresh
        layer = get_channel_layer()
        listener = await layer.new_channel()
        await layer.group_add(DASHBOARD_GROUP, listener)
        job, created = await database_sync_to_async(services.job_submit)(kind="noop")
        assert created
        assert await asyncio.wait_for(layer.receive(JOBS_CHANNEL), timeout=5) == {"type": "jobs.wake"}
        assert await asyncio.wait_for(layer.receive(listener), timeout=5) == {"type": "dashboard.changed"}
        await layer.flush()
