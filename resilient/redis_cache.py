"""One Redis connection pool and one client per process for Django's cache, instead of one per request.

Django keeps a cache object per thread and per async context, and each ``RedisCache`` builds its
own connection pool. Under Daphne every request runs in a thread of its own, so every request that
touched the cache (the submission throttle, the login limit) opened a new TCP connection to Redis
and said hello on it: about a third of a one-job submission's extra cost over a bare create on
PostgreSQL + Redis (Django ticket #35651). redis-py's pools are thread-safe and start afresh in a
forked child, so one per (URL, options) serves every thread of the process. Its client too: Django
builds a ``redis.Redis`` for every cache call, a tenth of a millisecond each, on every submission
(the throttle); redis-py's clients are thread-safe, so each pool keeps one (``RedisCache``).
"""

from __future__ import annotations

import threading
from typing import Any

import redis
from django.core.cache.backends import redis as django_redis


class SharedConnectionPool(redis.ConnectionPool):
    """``CACHES[...]["OPTIONS"]["pool_class"]``: ``from_url`` answers one pool per URL and options."""

    _pools: dict[tuple[str, str], redis.ConnectionPool] = {}
    _registry_lock = threading.Lock()  # (redis-py gives each pool a `_lock` of its own)

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> redis.ConnectionPool:
        key = (url, repr(sorted(kwargs.items())))
        with cls._registry_lock:
            pool = cls._pools.get(key)
            if pool is None:
                pool = cls._pools[key] = super().from_url(url, **kwargs)
            return pool

    def shared_client(self) -> redis.Redis:
        """The one ``redis.Redis`` on this pool."""
        client = self.__dict__.get("_shared_client")
        if client is None:
            with SharedConnectionPool._registry_lock:
                client = self.__dict__.setdefault("_shared_client", redis.Redis(connection_pool=self))
        return client


class _SharedClientCacheClient(django_redis.RedisCacheClient):
    def get_client(self, key=None, *, write=False) -> redis.Redis:
        pool = self._get_connection_pool(write)
        return pool.shared_client()


class RedisCache(django_redis.RedisCache):
    """``CACHES[...]["BACKEND"]``: Django's Redis cache on ``SharedConnectionPool`` and its one client."""

    def __init__(self, server, params) -> None:
        params = {**params, "OPTIONS": {**params.get("OPTIONS", {}), "pool_class": SharedConnectionPool}}
        super().__init__(server, params)
        self._class = _SharedClientCacheClient
