"""The submission throttle on Redis (one script per submission) decides exactly as DRF's own."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import pytest
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache
from django.test import override_settings

from jobs.api.throttles import SubmitThrottle

USER = SimpleNamespace(user=SimpleNamespace(pk=7, is_authenticated=True))
# Seconds at which one user submits: a full window, the edge of a minute, a second window.
TIMES = [0, 1, 2, 3, 30, 59.999, 60, 60.5, 61, 62, 62.5, 90, 121, 121, 122]


def _decisions(cache) -> list[tuple[bool, float | None]]:
    answers = []
    for t in TIMES:
        throttle = SubmitThrottle()
        throttle.cache, throttle.timer = cache, (lambda t=t: 1_700_000_000 + t)
        allowed = throttle.allow_request(USER, None)
        answers.append((allowed, None if allowed else round(throttle.wait(), 6)))
    return answers


@override_settings(RESILIENT={"SUBMIT_RATE": "3/min"})
def test_redis_window_answers_like_drfs_history(redis_url):
    redis = RedisCache(redis_url, {"KEY_PREFIX": f"throttle-test-{uuid.uuid4().hex[:8]}"})
    local = LocMemCache(f"throttle-test-{uuid.uuid4().hex[:8]}", {})
    drf_key = SubmitThrottle().cache_format % {"scope": "submit", "ident": 7}
    redis.set(drf_key, [1_700_000_000.0])  # DRF's own history, left by a process of an older release
    ours, drfs = _decisions(redis), _decisions(local)
    assert ours == drfs
    assert [allowed for allowed, _ in ours].count(False) >= 5  # the sequence does hit the limit
    key = redis.make_and_validate_key(f"{drf_key}:zset")
    client = redis._cache.get_client(key)
    assert client.type(key) == b"zset"  # the script kept the window under its own key
    assert redis.get(drf_key) == [1_700_000_000.0]  # and left DRF's list alone
    client.delete(key, redis.make_and_validate_key(drf_key))


@override_settings(RESILIENT={"SUBMIT_RATE": "2/min"})
def test_the_default_cache_on_redis_takes_the_script(redis_url, settings):
    """As served: DRF's throttle reads Django's proxy of the default cache (Redis in the PG run)."""
    from django.core.cache import cache

    if not isinstance(cache._connections[cache._alias], RedisCache):
        pytest.skip("the default cache is not Redis (set REDIS_URL)")
    user = SimpleNamespace(user=SimpleNamespace(pk=uuid.uuid4().int % 10**9, is_authenticated=True))
    answers = [SubmitThrottle().allow_request(user, None) for _ in range(3)]
    assert answers == [True, True, False]
    key = cache.make_and_validate_key(SubmitThrottle().cache_format % {"scope": "submit", "ident": user.user.pk} + ":zset")
    client = cache._cache.get_client(key)
    assert client.type(key) == b"zset"
    client.delete(key)


@pytest.mark.parametrize("rate", ["off", "0"])
def test_no_rate_admits_everything_without_touching_the_cache(rate, redis_url):
    prefix = f"throttle-test-{uuid.uuid4().hex[:8]}"
    redis = RedisCache(redis_url, {"KEY_PREFIX": prefix})
    with override_settings(RESILIENT={"SUBMIT_RATE": rate}):
        throttle = SubmitThrottle()
        throttle.cache = redis
        assert all(throttle.allow_request(USER, None) for _ in range(5))
    assert redis._cache.get_client("k").keys(f"{prefix}*") == []
