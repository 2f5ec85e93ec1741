"""The admin's paginator: estimated counts on PostgreSQL, so a page of a million jobs scans none.

Below ``EXACT_BELOW`` rows the exact count is cheap and is used instead; other databases count
exactly (``jobs.selectors.estimated_count`` says where an estimate comes from).
"""

from __future__ import annotations

from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.utils.functional import cached_property

from jobs import selectors

EXACT_BELOW = 10_000


class EstimatedCountPaginator(Paginator):
    """A Paginator whose ``count`` is PostgreSQL's estimate when that is large."""

    exact_below = EXACT_BELOW

    @cached_property
    def count(self) -> int:
        estimate = selectors.estimated_count(self.object_list) if isinstance(self.object_list, QuerySet) else None
        if estimate is None or estimate < self.exact_below:
            return super().count
        return estimate
