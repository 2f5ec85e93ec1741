"""Per-user throttle on job submission; its rate is a setting read at request time."""

from __future__ import annotations

import uuid

from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from django.core.cache import cache as default_cache
from django.core.cache.backends.redis import RedisCache
from rest_framework.throttling import UserRateThrottle

from jobs import conf

OFF = {"off", "none", "0"}

# DRF's sliding window in one round trip: drop what left the window, count, and add this request
# if it fits. KEYS[1] the user's key; ARGV: now, window seconds, allowed requests, a unique member.
# Answers {allowed (1/0), requests in the window, the oldest one's time}.
_WINDOW = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]) - tonumber(ARGV[2]))
local n = redis.call('ZCARD', KEYS[1])
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2] or ARGV[1]
if n >= tonumber(ARGV[3]) then
    return {0, n, oldest}
end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2])))
return {1, n + 1, oldest}
"""


class SubmitThrottle(UserRateThrottle):
    """``RESILIENT_SUBMIT_RATE`` submissions per user (per address when anonymous), e.g. 6000/min.

    On Redis (the scale-out shape) the window is a sorted set updated by one script, one round
    trip per submission instead of DRF's read then write (and two submissions of one user at the
    same instant can no longer both take the last place). Elsewhere it is DRF's own."""

    scope = "submit"

    def get_rate(self) -> str | None:
        rate = str(conf.get("SUBMIT_RATE")).strip()
        return None if rate.lower() in OFF else rate

    def allow_request(self, request, view) -> bool:
        # DRF's ``cache`` is Django's proxy of the default cache: this thread's backend behind it.
        backend = caches[DEFAULT_CACHE_ALIAS] if self.cache is default_cache else self.cache
        if self.rate is None or not isinstance(backend, RedisCache):
            return super().allow_request(request, view)
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = self.timer()
        # Its own key: DRF keeps a pickled list under ``self.key``, this a sorted set (a rolling
        # deploy or a rollback with both kinds of process must not read the other's as its own).
        key = backend.make_and_validate_key(f"{self.key}:zset")
        client = backend._cache.get_client(key, write=True)  # Django's client: its shared pool
        allowed, count, oldest = client.eval(
            _WINDOW, 1, key, repr(self.now), self.duration, self.num_requests, uuid.uuid4().hex
        )
        # What DRF's wait() reads: as many entries as the window holds, the oldest last.
        self.history = [float(oldest)] * int(count)
        return bool(allowed)
