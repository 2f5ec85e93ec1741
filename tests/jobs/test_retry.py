"""Exponential backoff with jitter: pure functions, no database."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobs.retry import backoff_seconds

LOW = lambda: 0.0  # noqa: E731 - the smallest jitter factor (0.75)
HIGH = lambda: 1.0  # noqa: E731 - the largest (1.0; random.random() stays just below it)


@pytest.mark.parametrize("attempt", range(1, 11))
def test_grows_exponentially_between_jitter_bounds(attempt):
    raw = 0.5 * 2 ** (attempt - 1)
    assert backoff_seconds(attempt, base=0.5, cap=10_000, rand=HIGH) == raw
    assert backoff_seconds(attempt, base=0.5, cap=10_000, rand=LOW) == 0.75 * raw
    assert backoff_seconds(attempt, base=0.5, cap=10_000, rand=lambda: 0.5) == 0.875 * raw


def test_first_retry_waits_about_base():
    assert backoff_seconds(1, base=3.0, cap=300, rand=HIGH) == 3.0
    assert backoff_seconds(0, base=3.0, cap=300, rand=HIGH) == 3.0  # no negative exponents


@pytest.mark.parametrize("attempt", [10, 20, 63, 64, 65, 1000, 10**9])
def test_is_capped_without_overflow(attempt):
    assert backoff_seconds(attempt, base=1.0, cap=300.0, rand=HIGH) == 300.0
    assert backoff_seconds(attempt, base=1.0, cap=300.0, rand=LOW) == 225.0


def test_default_jitter_spreads_delays_within_bounds():
    delays = [backoff_seconds(4, base=1.0, cap=300.0) for _ in range(200)]
    assert all(6.0 <= d <= 8.0 for d in delays)
    assert len(set(delays)) > 100  # jittered, not constant


@given(
    attempt=st.integers(min_value=1, max_value=10_000),
    base=st.floats(min_value=0.001, max_value=100.0),
    cap=st.floats(min_value=0.001, max_value=100_000.0),
    r=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
)
def test_delay_is_75_to_100_percent_of_the_capped_exponential(attempt, base, cap, r):
    target = cap if attempt - 1 >= 64 else min(cap, base * 2 ** (attempt - 1))
    delay = backoff_seconds(attempt, base=base, cap=cap, rand=lambda: r)
    assert 0.75 * target <= delay <= target
    assert delay <= cap


@given(
    attempt=st.integers(min_value=1, max_value=40),
    base=st.floats(min_value=0.001, max_value=100.0),
    r1=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
    r2=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
)
def test_uncapped_delays_always_grow_whatever_the_jitter(attempt, base, r1, r2):
    cap = float("inf")
    this = backoff_seconds(attempt, base=base, cap=cap, rand=lambda: r1)
    following = backoff_seconds(attempt + 1, base=base, cap=cap, rand=lambda: r2)
    assert following >= 1.5 * this - 1e-9 * this
