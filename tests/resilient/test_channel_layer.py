"""The Redis channel layer's one-round-trip send keeps upstream's contract (resilient/channel_layer.py)."""

from __future__ import annotations

import uuid

import pytest
from channels.exceptions import ChannelFull
from channels_redis.core import RedisChannelLayer as UpstreamLayer

from resilient.channel_layer import RedisChannelLayer


@pytest.fixture
def layers(redis_url):
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    ours = RedisChannelLayer(hosts=[redis_url], prefix=prefix, capacity=3, expiry=60)
    upstream = UpstreamLayer(hosts=[redis_url], prefix=prefix, capacity=3, expiry=60)
    yield ours, upstream


async def test_a_message_sent_is_received_by_upstream_in_order(layers):
    ours, upstream = layers
    await ours.send("jobs", {"type": "jobs.wake", "n": 1})
    await ours.send("jobs", {"type": "jobs.wake", "n": 2})
    assert (await upstream.receive("jobs"))["n"] == 1
    assert (await upstream.receive("jobs"))["n"] == 2
    await ours.flush()


async def test_a_full_channel_raises_channel_full_and_keeps_what_it_holds(layers):
    ours, upstream = layers
    for n in range(3):
        await ours.send("jobs", {"type": "jobs.wake", "n": n})
    with pytest.raises(ChannelFull):
        await ours.send("jobs", {"type": "jobs.wake", "n": 3})
    assert [(await upstream.receive("jobs"))["n"] for _ in range(3)] == [0, 1, 2]
    await ours.send("jobs", {"type": "jobs.wake", "n": 4})  # room again
    assert (await upstream.receive("jobs"))["n"] == 4
    await ours.flush()


async def test_a_process_specific_channel_reaches_its_receiver(layers):
    ours, _ = layers
    channel = await ours.new_channel()
    await ours.send(channel, {"type": "x.y"})
    assert (await ours.receive(channel))["type"] == "x.y"
    await ours.flush()
