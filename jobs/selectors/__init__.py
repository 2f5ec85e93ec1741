"""Reads only: jobs, the queue, counts, breakers and metrics aggregates. Nothing here writes.

Import the package (``from jobs import selectors``) and call ``selectors.<name>``; the
submodules say where each read lives.
"""

from __future__ import annotations

from jobs.selectors.breakers import (
    breaker_events_recent,
    breaker_flow,
    breaker_policy,
    breaker_rows,
    breaker_rows_configured,
    breaker_transitions,
    breakers_with_pending,
)
from jobs.selectors.counts import (
    AT_LEAST,
    ESTIMATE,
    EXACT,
    EXACT_COUNT_LIMIT,
    Bounded,
    at_least,
    bounded_counts,
    by_status_bounded,
    count_all,
    counts_by_status,
    estimated_count,
    in_flight_by_dependency,
    known_dependencies,
    pending_by_dependency_bounded,
    pending_count,
)
from jobs.selectors.job_query import ORDERINGS, JobQuery, job_query_parse
from jobs.selectors.jobs import (
    HEAVY_FIELDS,
    events_recent,
    held_events_of_one_hold,
    job_get,
    job_list,
    job_position,
    job_uuid_by_seq,
    job_waiting_for,
    jobs_recently_finished,
    jobs_running,
    workers_seen_since,
)
from jobs.selectors.metrics import (
    FINISHED_STATUSES,
    TRANSITION_KINDS,
    breaker_metrics,
    counter_totals,
    counts_by_status_and_dependency,
    duration_histogram_since,
    finished_per_second,
    finished_since,
)
from jobs.selectors.queue import jobs_in_pop_order, queue_next, queue_summary

__all__ = [
    "AT_LEAST",
    "Bounded",
    "ESTIMATE",
    "EXACT",
    "EXACT_COUNT_LIMIT",
    "FINISHED_STATUSES",
    "HEAVY_FIELDS",
    "JobQuery",
    "ORDERINGS",
    "TRANSITION_KINDS",
    "at_least",
    "bounded_counts",
    "by_status_bounded",
    "breaker_events_recent",
    "breaker_metrics",
    "breaker_flow",
    "breaker_policy",
    "breaker_rows",
    "breaker_rows_configured",
    "breaker_transitions",
    "breakers_with_pending",
    "count_all",
    "counter_totals",
    "counts_by_status",
    "counts_by_status_and_dependency",
    "duration_histogram_since",
    "estimated_count",
    "events_recent",
    "held_events_of_one_hold",
    "finished_per_second",
    "finished_since",
    "job_get",
    "job_list",
    "job_position",
    "job_query_parse",
    "job_uuid_by_seq",
    "job_waiting_for",
    "jobs_in_pop_order",
    "jobs_recently_finished",
    "jobs_running",
    "known_dependencies",
    "in_flight_by_dependency",
    "pending_by_dependency_bounded",
    "pending_count",
    "queue_next",
    "queue_summary",
    "workers_seen_since",
]
