"""Completions and failures per second over a sliding window, kept up to date incrementally.

The first refresh counts the whole window once; later refreshes recount only the last few
seconds (a job's ``finished_at`` is stamped just before its transaction commits, so a recent
second can still grow). Each refresh is one indexed query over a few seconds of rows, however
fast workers finish jobs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime

from jobs import selectors

WINDOW_SECONDS = 600
RECOUNT_SECONDS = 5


class ThroughputWindow:
    """Per-second counts of succeeded and failed jobs for the last ``seconds`` seconds."""

    def __init__(self, *, seconds: int = WINDOW_SECONDS, clock: Callable[[], float] | None = None) -> None:
        self.seconds = seconds
        self.clock = clock or (lambda: datetime.now(UTC).timestamp())
        self.buckets: dict[int, tuple[int, int]] = {}
        self.counted_from: int | None = None

    def refresh(self) -> None:
        """Recount the seconds that may still change (all of them on the first call)."""
        end = math.floor(self.clock())
        start = end - self.seconds + 1
        recount_from = start if self.counted_from is None else max(start, end - RECOUNT_SECONDS)
        since = datetime.fromtimestamp(recount_from, UTC)
        fresh = selectors.finished_per_second(since=since)
        for second in [s for s in self.buckets if s < start or s >= recount_from]:
            del self.buckets[second]
        self.buckets.update(fresh)
        self.counted_from = recount_from
        self.end = end

    def series(self) -> dict:
        end = getattr(self, "end", math.floor(self.clock()))
        seconds = range(end - self.seconds + 1, end + 1)
        return {
            "end": end,
            "seconds": self.seconds,
            "succeeded": [self.buckets.get(s, (0, 0))[0] for s in seconds],
            "failed": [self.buckets.get(s, (0, 0))[1] for s in seconds],
        }
