"""channels_redis's layer with ``send`` in one round trip to Redis instead of four, and
``group_send`` in one instead of two (no member) or two instead of four (members on one host).

Every submission wakes a worker with a ``send`` on the "jobs" channel and tells the dashboards
with a ``group_send``. Upstream (4.3) drops expired messages, counts, adds and sets the expiry as
four commands, each a round trip and a turn of the event loop on the web process; this does the
same four in one Lua script, with the same capacity rule (``ChannelFull`` when the channel already
holds ``capacity`` messages). Its ``group_send`` drops expired members and reads the rest in one
script, then per Redis host drops each member channel's expired messages and adds the message in
another (upstream: a command, a command, a pipeline, a script; with members on several Redis
hosts, one more per host). ``send_and_group_send`` does a submission's two in one round trip while
no dashboard is open and the two keys live on one host.
"""

from __future__ import annotations

import logging
import time

from channels.exceptions import ChannelFull
from channels_redis import core

# KEYS[1] the channel's key; ARGV: message, now, oldest score kept, capacity, expiry seconds.
_SEND = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], 0, ARGV[3])
if redis.call('ZCOUNT', KEYS[1], '-inf', '+inf') >= tonumber(ARGV[4]) then
    return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


# KEYS[1] the group's key; ARGV[1] the oldest score kept. Answers the members left.
_GROUP_MEMBERS = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], 0, ARGV[1])
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""

# KEYS the member channels' keys; ARGV: a message per key, a capacity per key, now, expiry
# seconds, oldest score kept. Upstream's group script with its expiry pass folded in.
_GROUP_SEND = """
local now = ARGV[#ARGV - 2]
local expiry = ARGV[#ARGV - 1]
local oldest = ARGV[#ARGV]
local over_capacity = 0
for i = 1, #KEYS do
    redis.call('ZREMRANGEBYSCORE', KEYS[i], 0, oldest)
    if redis.call('ZCOUNT', KEYS[i], '-inf', '+inf') < tonumber(ARGV[i + #KEYS]) then
        redis.call('ZADD', KEYS[i], now, ARGV[i])
        redis.call('EXPIRE', KEYS[i], expiry)
    else
        over_capacity = over_capacity + 1
    end
end
return over_capacity
"""

# A send and the members of a group in one script (a submission's wake-up and dashboard hint).
# KEYS[1] the channel's key, KEYS[2] the group's; ARGV: _SEND's five, then the oldest member
# score kept. Answers {sent (1/0), the group's members}.
_SEND_AND_MEMBERS = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], 0, ARGV[3])
local sent = 0
if redis.call('ZCOUNT', KEYS[1], '-inf', '+inf') < tonumber(ARGV[4]) then
    redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
    redis.call('EXPIRE', KEYS[1], ARGV[5])
    sent = 1
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], 0, ARGV[6])
return {sent, redis.call('ZRANGE', KEYS[2], 0, -1)}
"""

log = logging.getLogger(__name__)


class RedisChannelLayer(core.RedisChannelLayer):
    async def send(self, channel: str, message: dict) -> None:
        """Send a message onto a (general or specific) channel, as upstream does."""
        index = self.consistent_hash(channel) if "!" in channel else next(self._send_index_generator)
        if not await self._send_at(index, channel, message):
            raise ChannelFull()

    async def _send_at(self, index: int, channel: str, message: dict) -> bool:
        """``send`` on the host ``index``: False when the channel is full."""
        assert isinstance(message, dict), "message is not a dict"
        assert self.require_valid_channel_name(channel), "Channel name not valid"
        assert "__asgi_channel__" not in message
        channel_non_local_name = channel
        if "!" in channel:
            message = dict(message.items())
            message["__asgi_channel__"] = channel
            channel_non_local_name = self.non_local_name(channel)
        channel_key = self.prefix + channel_non_local_name
        now = time.time()
        return bool(await self.connection(index).eval(
            _SEND, 1, channel_key, self.serialize(message), now, int(now) - int(self.expiry),
            self.get_capacity(channel), int(self.expiry),
        ))

    async def group_send(self, group: str, message: dict) -> None:
        """Send a message to every member of ``group``, as upstream does (a full member channel
        misses it, counted in a log line)."""
        assert self.require_valid_group_name(group), "Group name not valid"
        now = time.time()
        members = await self.connection(self.consistent_hash(group)).eval(
            _GROUP_MEMBERS, 1, self._group_key(group), int(now) - self.group_expiry,
        )
        await self._group_deliver(group, members, message, now)

    async def send_and_group_send(self, channel: str, message: dict, group: str, group_message: dict) -> None:
        """``send(channel, message)`` then ``group_send(group, group_message)``, the send and the
        group's members in one round trip when one Redis host holds both (one host: always).
        The group hears even when the channel is full; ``ChannelFull`` is raised after."""
        assert isinstance(message, dict) and "__asgi_channel__" not in message
        assert "!" not in channel, "a general channel only"
        assert self.require_valid_channel_name(channel), "Channel name not valid"
        assert self.require_valid_group_name(group), "Group name not valid"
        index = next(self._send_index_generator)  # the host a plain send would use
        if index != self.consistent_hash(group):
            try:
                sent = await self._send_at(index, channel, message)
            finally:
                await self.group_send(group, group_message)
            if not sent:
                raise ChannelFull()
            return
        now = time.time()
        sent, members = await self.connection(index).eval(
            _SEND_AND_MEMBERS, 2, self.prefix + channel, self._group_key(group), self.serialize(message), now,
            int(now) - int(self.expiry), self.get_capacity(channel), int(self.expiry), int(now) - self.group_expiry,
        )
        await self._group_deliver(group, members, group_message, now)
        if not sent:
            raise ChannelFull()

    async def _group_deliver(self, group: str, members: list[bytes], message: dict, now: float) -> None:
        """Add ``message`` to the channels of ``members`` (read from ``group``), one script per host."""
        if not members:
            return
        channel_names = [member.decode("utf8") for member in members]
        by_connection, messages, capacities = self._map_channel_keys_to_connection(channel_names, message)
        for index, keys in by_connection.items():
            over = await self.connection(index).eval(
                _GROUP_SEND, len(keys), *keys, *[messages[key] for key in keys],
                *[capacities[key] for key in keys], now, int(self.expiry), int(now) - int(self.expiry),
            )
            if over:
                log.info("%s of %s channels over capacity in group %s", over, len(channel_names), group)
