"""Counts by status for the dashboard, cheap at any table size.

Up to ``EXACT_LIMIT`` jobs per status the count is exact on every tick (a bounded index walk).
Above it the count is flagged as estimated: PostgreSQL answers from planner statistics (no rows
read); SQLite, which keeps no usable statistics, counts exactly but at most every
``RECOUNT_SECONDS`` per process, and shows the last count in between.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from jobs import selectors

EXACT_LIMIT = selectors.EXACT_COUNT_LIMIT
RECOUNT_SECONDS = 5.0


class StatusCounter:
    def __init__(self, *, exact_limit: int = EXACT_LIMIT, clock: Callable[[], float] = time.monotonic) -> None:
        self.exact_limit = exact_limit
        self.clock = clock
        self.large: dict[str, tuple[float, int]] = {}  # status -> (when counted, count)

    def read(self) -> tuple[dict[str, int], list[str]]:
        """(counts by status, statuses whose count is an estimate)."""
        counts = selectors.by_status_bounded(limit=self.exact_limit, beyond=self._recent_exact)
        for status, c in counts.items():
            if c.bound == selectors.EXACT:
                self.large.pop(status, None)
        return ({status: c.n for status, c in counts.items()},
                [status for status, c in counts.items() if c.bound != selectors.EXACT])

    def _recent_exact(self, status: str, queryset) -> selectors.Bounded:
        """Past the limit on SQLite: an exact count at most every RECOUNT_SECONDS, flagged as an
        estimate (it may be that old)."""
        now = self.clock()
        cached = self.large.get(status)
        if cached is None or now - cached[0] >= RECOUNT_SECONDS:
            cached = self.large[status] = (now, queryset.count())
        return selectors.Bounded(max(cached[1], self.exact_limit + 1), selectors.ESTIMATE)
