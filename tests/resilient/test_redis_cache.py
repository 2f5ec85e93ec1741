"""The cache's Redis connections and client are per process, not per request thread (resilient/redis_cache.py)."""

from __future__ import annotations

import threading

from resilient.redis_cache import RedisCache, SharedConnectionPool


def _cache(url: str) -> RedisCache:
    # What Django builds for each new thread or async context: a RedisCache of settings.CACHES.
    return RedisCache(url, {})


def test_caches_of_different_threads_share_one_pool_and_one_connection(redis_url, monkeypatch):
    monkeypatch.setattr(SharedConnectionPool, "_pools", {})  # not the pool earlier tests used
    pools, clients, errors = [], [], []

    def request_thread(n: int) -> None:
        try:
            cache = _cache(redis_url)
            cache.set(f"shared-pool-test-{n}", n, timeout=30)
            assert cache.get(f"shared-pool-test-{n}") == n
            pools.append(cache._cache._get_connection_pool(write=True))
            clients.append(cache._cache.get_client(write=True))
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    for n in range(3):  # one after the other, like a single client's requests
        thread = threading.Thread(target=request_thread, args=(n,))
        thread.start()
        thread.join()
    assert not errors
    assert len({id(pool) for pool in pools}) == 1
    assert isinstance(pools[0], SharedConnectionPool)
    assert len({id(client) for client in clients}) == 1 and clients[0].connection_pool is pools[0]
    # Three requests, one TCP connection: the pool handed the same one back each time.
    assert len(pools[0]._available_connections) + len(pools[0]._in_use_connections) == 1


def test_other_options_get_their_own_pool(redis_url):
    assert SharedConnectionPool.from_url(redis_url) is SharedConnectionPool.from_url(redis_url)
    assert SharedConnectionPool.from_url(redis_url, socket_timeout=5) is not SharedConnectionPool.from_url(redis_url)

