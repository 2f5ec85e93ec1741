"""channels_redis's layer with ``send`` in one round trip to Redis instead of four.

Every submission wakes a worker with a ``send`` on the "jobs" channel. Upstream (4.3) drops
expired messages, counts, adds and sets the expiry as four commands, each a round trip and a turn
of the event loop on the web process; this does the same four in one Lua script, with the same
capacity rule (``ChannelFull`` when the channel already holds ``capacity`` messages).
"""

from __future__ import annotations

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


class RedisChannelLayer(core.RedisChannelLayer):
    async def send(self, channel: str, message: dict) -> None:
        """Send a message onto a (general or specific) channel, as upstream does."""
        assert isinstance(message, dict), "message is not a dict"
        assert self.require_valid_channel_name(channel), "Channel name not valid"
        assert "__asgi_channel__" not in message
        channel_non_local_name = channel
        if "!" in channel:
            message = dict(message.items())
            message["__asgi_channel__"] = channel
            channel_non_local_name = self.non_local_name(channel)
        channel_key = self.prefix + channel_non_local_name
        index = self.consistent_hash(channel) if "!" in channel else next(self._send_index_generator)
        now = time.time()
        sent = await self.connection(index).eval(
            _SEND, 1, channel_key, self.serialize(message), now, int(now) - int(self.expiry),
            self.get_capacity(channel), int(self.expiry),
        )
        if not sent:
            raise ChannelFull()
