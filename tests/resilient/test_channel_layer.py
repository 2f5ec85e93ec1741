"""The Redis channel layer's one-round-trip send and group send keep upstream's contract (resilient/channel_layer.py)."""

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


async def test_a_group_send_reaches_every_member_and_no_one_else(layers):
    ours, upstream = layers
    first, second, outsider = await ours.new_channel(), await ours.new_channel(), await ours.new_channel()
    await ours.group_add("dashboard", first)
    await upstream.group_add("dashboard", second)  # added by upstream: the same group key
    await ours.group_send("dashboard", {"type": "dashboard.changed"})
    assert (await ours.receive(first))["type"] == "dashboard.changed"
    assert (await ours.receive(second))["type"] == "dashboard.changed"
    await ours.send(outsider, {"type": "other"})
    assert (await ours.receive(outsider))["type"] == "other"  # the group message never reached it
    await ours.flush()


async def test_a_group_send_to_an_empty_group_sends_nothing(layers):
    ours, _ = layers
    await ours.group_send("nobody-here", {"type": "dashboard.changed"})
    channel = await ours.new_channel()
    await ours.group_add("nobody-here", channel)
    await ours.group_discard("nobody-here", channel)
    await ours.group_send("nobody-here", {"type": "dashboard.changed"})
    connection = ours.connection(0)
    assert await connection.zcard(ours.prefix + ours.non_local_name(channel)) == 0
    await ours.flush()


async def test_a_group_send_skips_a_full_member_and_drops_expired_members(layers, redis_url):
    ours, _ = layers
    # Another process's layer: its specific channels live under a key of their own.
    other = RedisChannelLayer(hosts=[redis_url], prefix=ours.prefix, capacity=3, expiry=60)
    full, fine = await ours.new_channel(), await other.new_channel()
    for channel in (full, fine):
        await ours.group_add("dashboard", channel)
    for n in range(3):
        await ours.send(full, {"type": "filler", "n": n})
    await ours.group_send("dashboard", {"type": "dashboard.changed"})
    assert await ours.connection(0).zcard(ours.prefix + ours.non_local_name(full)) == 3  # at capacity: skipped
    assert await other.receive(fine) == {"type": "dashboard.changed"}
    await ours.flush()

    ours.group_expiry = 1
    channel = await ours.new_channel()
    await ours.connection(0).zadd(ours._group_key("stale"), {channel: 0})  # joined at the epoch
    await ours.group_send("stale", {"type": "dashboard.changed"})
    assert await ours.connection(0).zcard(ours._group_key("stale")) == 0
    assert await ours.connection(0).zcard(ours.prefix + ours.non_local_name(channel)) == 0
    await ours.flush()


async def test_a_send_and_group_send_reaches_the_channel_and_every_member(layers):
    ours, upstream = layers
    member = await ours.new_channel()
    await ours.group_add("dashboard", member)
    await ours.send_and_group_send("jobs", {"type": "jobs.wake"}, "dashboard", {"type": "dashboard.changed"})
    assert await upstream.receive("jobs") == {"type": "jobs.wake"}
    assert await ours.receive(member) == {"type": "dashboard.changed"}
    await ours.send_and_group_send("jobs", {"type": "jobs.wake"}, "nobody-here", {"type": "dashboard.changed"})
    assert await upstream.receive("jobs") == {"type": "jobs.wake"}
    await ours.flush()


async def test_a_full_channel_still_lets_the_group_hear_then_raises(layers):
    ours, upstream = layers
    member = await ours.new_channel()
    await ours.group_add("dashboard", member)
    for n in range(3):
        await ours.send("jobs", {"type": "jobs.wake", "n": n})
    with pytest.raises(ChannelFull):
        await ours.send_and_group_send("jobs", {"type": "jobs.wake", "n": 3}, "dashboard", {"type": "dashboard.changed"})
    assert await ours.receive(member) == {"type": "dashboard.changed"}
    assert [(await upstream.receive("jobs"))["n"] for _ in range(3)] == [0, 1, 2]
    await ours.flush()


async def test_with_two_hosts_wake_ups_still_go_round_both(redis_url):
    base = redis_url.rsplit("/", 1)[0]
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    # Two Redis databases stand for two hosts.
    layer = RedisChannelLayer(hosts=[f"{base}/14", f"{base}/15"], prefix=prefix, capacity=100, expiry=60)
    for _ in range(8):
        await layer.send_and_group_send("jobs", {"type": "jobs.wake"}, "dashboard", {"type": "dashboard.changed"})
    counts = [await layer.connection(index).zcard(prefix + "jobs") for index in (0, 1)]
    assert counts == [4, 4]  # round robin, as plain sends go (a receiver listens on one host at a time)
    await layer.flush()
