"""Exponential backoff with jitter. Pure: no Django."""

from __future__ import annotations

import random
from collections.abc import Callable


def backoff_seconds(
    attempt: int, *, base: float, cap: float, rand: Callable[[], float] = random.random
) -> float:
    """Delay before attempt ``attempt + 1``: base x 2^(attempt-1), capped, times 75-100 % jitter.

    The jitter spreads a burst of retries out; its 75 % floor keeps each delay at least 1.5x the
    previous uncapped one, so delays always grow until the cap.
    """
    exponent = max(0, attempt - 1)
    delay = cap if exponent >= 64 else min(cap, base * (2**exponent))
    return delay * (0.75 + 0.25 * rand())
