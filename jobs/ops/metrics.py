"""Prometheus metrics at ``/metrics``, with the official client.

What the database knows is read at scrape time by ``DatabaseCollector`` with a handful of
grouped queries, so every web process reports the same truth whichever one Prometheus scrapes.
The only per-process value, submission rejections, is a client ``Counter``; with
``PROMETHEUS_MULTIPROC_DIR`` set (several processes behind one scrape target) the client's
multi-process mode sums it across processes.
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from functools import cache

from django.http import Http404, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from jobs import conf, dependencies, selectors
from jobs.models import CounterMetric, JobStatus

log = logging.getLogger(__name__)

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

COUNTED_STATUSES = (JobStatus.PENDING, JobStatus.RUNNING, JobStatus.FAILED, JobStatus.CANCELLED)

REJECTION_REASONS = ("invalid", "too_large", "throttled", "circuit_open", "validation_error", "other")

SUBMISSIONS_REJECTED = Counter(
    "resilient_submissions_rejected",
    "Job submissions this process answered with an error, by reason (the error code).",
    ["reason"],
    registry=None,
)
for _reason in REJECTION_REASONS:
    SUBMISSIONS_REJECTED.labels(reason=_reason)


def submission_rejected(*, reason: str) -> None:
    """Count one rejected submission (called by the API's exception handler)."""
    SUBMISSIONS_REJECTED.labels(reason=reason if reason in REJECTION_REASONS else "other").inc()


# Other parts plug in here: a callable returning metric families, read at scrape time like the
# rest (inside the collector's try, so a database failure reads resilient_database_up 0).
EXTRA_FAMILIES: list[Callable[[], Iterable[Metric]]] = []

BREAKER_STATES = ("closed", "open", "half-open")
BREAKER_OVERRIDES = ("open", "closed")


def breaker_families(*, pending: dict[str, int] | None = None) -> Iterable[Metric]:
    """Every breaker's state, override, counters, transitions and held jobs (3 small queries;
    ``pending``: the scrape's pending counts by dependency, so they are not counted twice)."""
    snapshot = selectors.breaker_metrics(pending=pending)
    state = GaugeMetricFamily(
        "resilient_breaker_state",
        "Circuit breaker state as callers get it (an override wins): 1 for the current state, 0 "
        "for the others.",
        labels=["dependency", "state"],
    )
    automatic = GaugeMetricFamily(
        "resilient_breaker_automatic_state",
        "The automatic (shadow) state: what the breaker would be without an override. Equals "
        "resilient_breaker_state when not overridden.",
        labels=["dependency", "state"],
    )
    override = GaugeMetricFamily(
        "resilient_breaker_override",
        "1 while an operator override of that kind (open = forced open, closed = forced closed) "
        "is in force, else 0.",
        labels=["dependency", "override"],
    )
    failures = GaugeMetricFamily(
        "resilient_breaker_failures",
        "Consecutive counted failures (reset by a success); the breaker opens at "
        "resilient_breaker_failure_threshold.",
        labels=["dependency"],
    )
    threshold = GaugeMetricFamily(
        "resilient_breaker_failure_threshold", "Consecutive failures that open the breaker.",
        labels=["dependency"],
    )
    held = GaugeMetricFamily(
        "resilient_jobs_held",
        "Pending jobs held back because their breaker admits no call now (open, half-open with a "
        "trial running, forced open); 0 while it admits.",
        labels=["dependency"],
    )
    transitions = CounterMetricFamily(
        "resilient_breaker_transitions",
        "Breaker transitions and overrides so far, by BreakerEvent kind (opened, half_opened, "
        "reopened, closed, trial_abandoned, forced_open, forced_closed, released, override_expired, "
        "limits_changed).",
        labels=["dependency", "kind"],
    )
    flow = {
        "in_flight": GaugeMetricFamily(
            "resilient_dependency_in_flight",
            "Calls in flight to the dependency: running jobs with a live lease (what flow control counts).",
            labels=["dependency"]),
        "allowance": GaugeMetricFamily(
            "resilient_dependency_allowance",
            "Calls in flight flow control allows now (the tightest of the probe limit, slow start, the cap "
            "and the adaptive limit); -1 when nothing limits it.", labels=["dependency"]),
        "max_concurrency": GaugeMetricFamily(
            "resilient_dependency_max_concurrency", "The cap on calls in flight in force; -1 when none.",
            labels=["dependency"]),
        "rate": GaugeMetricFamily(
            "resilient_dependency_rate_limit_per_second", "The rate limit in force, in calls per second; -1 when none.",
            labels=["dependency"]),
        "adaptive_limit": GaugeMetricFamily(
            "resilient_dependency_adaptive_limit", "The adaptive (AIMD) concurrency limit; -1 when not adaptive.",
            labels=["dependency"]),
        "held_by_limit": GaugeMetricFamily(
            "resilient_jobs_held_by_limit",
            "Pending jobs waiting because their dependency is at its allowance (probe, cap or adaptive limit).",
            labels=["dependency"]),
        "held_by_rate": GaugeMetricFamily(
            "resilient_jobs_held_by_rate",
            "Pending jobs waiting for their dependency's rate limit to allow the next start.", labels=["dependency"]),
    }
    adaptive_change = GaugeMetricFamily(
        "resilient_dependency_adaptive_change_timestamp_seconds",
        "When the adaptive limit last changed by a whole call (Unix time), labelled with why: \"healthy round\", "
        "\"503 from downstream\", \"timeout\", \"slow call\", \"error calling downstream\".",
        labels=["dependency", "cause"])
    for b in snapshot:
        name = b["dependency"]
        f = b["flow"]
        if f["adaptive_change"]:
            change = f["adaptive_change"]
            at = datetime.fromisoformat(change["at"]).timestamp()
            adaptive_change.add_metric([name, change["cause"]], at)
        rate = dependencies.parse_rate(f["rate_limit"]) if f["rate_limit"] else None
        values = {"in_flight": f["in_flight"], "allowance": f["allowance"], "max_concurrency": f["max_concurrency"],
                  "rate": rate.calls / rate.per_seconds if rate else None, "adaptive_limit": f["adaptive_limit"],
                  "held_by_limit": f["held_by_limit"], "held_by_rate": f["held_by_rate"]}
        for key, family in flow.items():
            family.add_metric([name], -1 if values[key] is None else values[key])
        for value in BREAKER_STATES:
            state.add_metric([name, value], 1 if b["state"] == value else 0)
            automatic.add_metric([name, value], 1 if b["shadow_state"] == value else 0)
        for value in BREAKER_OVERRIDES:
            override.add_metric([name, value], 1 if b["override"] == value else 0)
        failures.add_metric([name], b["failures"])
        threshold.add_metric([name], b["threshold"])
        held.add_metric([name], b["held"])
        for kind in selectors.TRANSITION_KINDS:
            transitions.add_metric([name, kind], b["transitions"].get(kind, 0))
    return [state, automatic, override, failures, threshold, held, transitions, *flow.values(), adaptive_change]


class DatabaseCollector(Collector):
    """Reads job counts, recent outcomes and durations from the database at scrape time."""

    def describe(self) -> list[Metric]:
        return []  # no collect() at registration (that would query the database at import)

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily(
            "resilient_database_up", "1 if the database answered this scrape's queries, else 0."
        )
        try:
            families = list(self._families())
        except Exception:  # an unreachable database must not turn /metrics into a 500
            log.warning("metrics: database queries failed", exc_info=True)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _families(self) -> Iterable[Metric]:
        now = timezone.now()
        window = conf.get("METRICS_WINDOW")
        since = now - timedelta(seconds=window)

        jobs = GaugeMetricFamily(
            "resilient_jobs",
            "Jobs by status (pending = queue depth, running, failed, cancelled) and dependency. "
            "Succeeded jobs are left out: counting them scans most of the table on every scrape; "
            "see resilient_jobs_finished_recent.",
            labels=["status", "dependency"],
        )
        # Every status x configured dependency is present (0 when empty), so a drained queue
        # reads 0 rather than "no data".
        counts = dict.fromkeys(
            ((status, name) for status in COUNTED_STATUSES for name in dependencies.configured()), 0
        )
        for status, dependency, n in selectors.counts_by_status_and_dependency(statuses=COUNTED_STATUSES):
            counts[(status, dependency)] = n
        for (status, dependency), n in sorted(counts.items()):
            jobs.add_metric([status, dependency], n)
        yield jobs
        # The breakers' held jobs are these pending counts: one bounded read of them per scrape.
        yield from breaker_families(pending={d: n for (status, d), n in counts.items() if status == JobStatus.PENDING})

        submitted = CounterMetricFamily(
            "resilient_jobs_submitted",
            "Jobs stored by a submission so far, by dependency (replays of an idempotency key are not "
            "new jobs). Kept in the database: it survives pruning and restarts and adds up every process.",
            labels=["dependency"],
        )
        totals = selectors.counter_totals(metric=CounterMetric.SUBMITTED)
        for name in sorted({*dependencies.configured(), *(dependency for dependency, _ in totals)}):
            submitted.add_metric([name], totals.get((name, ""), 0))
        yield submitted

        finished = CounterMetricFamily(
            "resilient_jobs_finished",
            "Jobs that reached a final status so far, by dependency and status (succeeded, failed, "
            "cancelled; a retried job that finishes again counts again). Kept in the database: it "
            "survives pruning and restarts and adds up every process.",
            labels=["dependency", "status"],
        )
        totals = selectors.counter_totals(metric=CounterMetric.FINISHED)
        for name in sorted({*dependencies.configured(), *(dependency for dependency, _ in totals)}):
            for status in selectors.FINISHED_STATUSES:
                finished.add_metric([name, status], totals.get((name, status), 0))
        yield finished

        recent = GaugeMetricFamily(
            "resilient_jobs_finished_recent",
            "Jobs that reached a final status (succeeded, failed, cancelled) in the last "
            "resilient_metrics_window_seconds, by outcome and dependency.",
            labels=["outcome", "dependency"],
        )
        for outcome, dependency, n in selectors.finished_since(since=since):
            recent.add_metric([outcome, dependency], n)
        yield recent

        durations = GaugeHistogramMetricFamily(
            "resilient_job_duration_seconds",
            "Duration of the final attempt of jobs that succeeded or failed in the last "
            "resilient_metrics_window_seconds (a gauge histogram over a sliding window).",
            labels=["dependency"],
        )
        histogram = selectors.duration_histogram_since(since=since, bounds=DURATION_BUCKETS)
        for dependency, (counts, total, seconds) in sorted(histogram.items()):
            buckets = [(_bound(b), c) for b, c in zip(DURATION_BUCKETS, counts, strict=True)]
            durations.add_metric([dependency], [*buckets, ("+Inf", total)], seconds)
        yield durations

        yield GaugeMetricFamily(
            "resilient_metrics_window_seconds",
            "Length of the sliding window behind the *_recent metrics and the duration histogram.",
            value=window,
        )
        workers = selectors.workers_seen_since(since=now - timedelta(seconds=conf.get("READY_WORKER_SECONDS")))
        yield GaugeMetricFamily(
            "resilient_workers", "Worker processes with a recent heartbeat.", value=len(workers)
        )
        for extra in EXTRA_FAMILIES:
            yield from extra()


def _bound(value: float) -> str:
    return repr(float(value))


@cache
def registry() -> CollectorRegistry:
    """The process's registry: database values plus this process's (or all processes') counters."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(DatabaseCollector())
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(reg)
    else:
        reg.register(SUBMISSIONS_REJECTED)
    return reg


def _authorised(request) -> bool:
    token = conf.get("METRICS_TOKEN")
    if not token:
        return True
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


@never_cache
@require_GET
def metrics_view(request):
    """The Prometheus text format (or OpenMetrics when the scraper asks for it)."""
    if not conf.get("METRICS_ENABLED"):
        raise Http404("metrics are disabled")
    if not _authorised(request):
        response = HttpResponse("metrics need a bearer token\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encoder(registry()), content_type=content_type)

