"""One Redis connection pool per process for Django's cache, instead of one per request.

Django keeps a cache object per thread and per async context, and each ``RedisCache`` builds its
own connection pool. Under Daphne every request runs in a thread of its own, so every request that
touched the cache (the submission throttle, the login limit) opened a new TCP connection to Redis
and said hello on it: about a third of a one-job submission's extra cost over a bare create on
PostgreSQL + Redis (Django ticket #35651). redis-py's pools are thread-safe and start afresh in a
forked child, so one per (URL, options) serves every thread of the process.
"""

from __future__ import annotations

import threading
from typing import Any

import redis


class SharedConnectionPool(redis.ConnectionPool):
    """``CACHES[...]["OPTIONS"]["pool_class"]``: ``from_url`` answers one pool per URL and options."""

    _pools: dict[tuple[str, str], redis.ConnectionPool] = {}
    _lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> redis.ConnectionPool:
        key = (url, repr(sorted(kwargs.items())))
        with cls._lock:
            pool = cls._pools.get(key)
            if pool is None:
                pool = cls._pools[key] = super().from_url(url, **kwargs)
            return pool
