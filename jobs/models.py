"""The job store: Job and its append-only JobEvent audit trail."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

PRIORITY_MIN = -100
PRIORITY_MAX = 100
PRIORITY_DEFAULT = 0
PRIORITY_EMERGENCY = 10
MAX_ATTEMPTS_LIMIT = 100
ACTOR_MAX_LENGTH = 200  # "user:" + a username of up to 150 characters, or a worker id


class JobStatus(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class EventKind(models.TextChoices):
    SUBMITTED = "submitted"
    CLAIMED = "claimed"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    RETRY_SCHEDULED = "retry_scheduled"
    REPRIORITISED = "reprioritised"
    CANCELLED = "cancelled"
    RETRIED = "retried"
    LEASE_EXPIRED = "lease_expired"
    RELEASED = "released"
    HELD = "held"


class Job(models.Model):
    """A unit of work. ``seq`` (the primary key) is the monotonic FIFO tie-break; ``uuid`` is public."""

    seq = models.BigAutoField(primary_key=True)
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    kind = models.CharField(max_length=64)
    payload = models.JSONField(default=dict, blank=True)
    dependency = models.CharField(max_length=64)
    priority = models.SmallIntegerField(
        default=PRIORITY_DEFAULT,
        validators=[MinValueValidator(PRIORITY_MIN), MaxValueValidator(PRIORITY_MAX)],
    )
    status = models.CharField(max_length=16, choices=JobStatus, default=JobStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveSmallIntegerField(default=5)
    run_after = models.DateTimeField(default=timezone.now)
    lease_owner = models.CharField(max_length=128, blank=True, default="")
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    result = models.JSONField(null=True, blank=True)
    # Who submitted it (None: the system or a deleted account). A user sees their own jobs;
    # ``jobs.view_all_jobs`` sees every job.
    submitter = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs",
        db_index=False,  # job_submitter_status leads with it
    )
    # Unique per submitter; the fingerprint of the first request tells a replay from a conflict.
    idempotency_key = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001 - NULL: no key
    idempotency_fingerprint = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # "Next job in pop order" is one walk of this partial index: pending rows only, in
            # exactly (priority desc, seq asc) order, whatever the size of the table.
            models.Index(
                fields=["-priority", "seq"],
                condition=Q(status=JobStatus.PENDING),
                name="job_pop_order",
            ),
            models.Index(
                fields=["dependency", "-priority", "seq"],
                condition=Q(status=JobStatus.PENDING),
                name="job_pop_order_by_dependency",
            ),
            models.Index(
                fields=["lease_expires_at"],
                condition=Q(status=JobStatus.RUNNING),
                name="job_running_lease",
            ),
            models.Index(fields=["status", "dependency"], name="job_status_dependency"),
            models.Index(fields=["status", "-finished_at"], name="job_status_finished"),
            models.Index(fields=["submitter", "status"], name="job_submitter_status"),
            models.Index(fields=["submitter", "-seq"], name="job_submitter_recent"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["submitter", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="job_idempotency_per_submitter",
            ),
            # NULLs are distinct in a unique index: the system's own keys need their own.
            models.UniqueConstraint(
                fields=["idempotency_key"],
                condition=Q(idempotency_key__isnull=False, submitter__isnull=True),
                name="job_idempotency_system",
            ),
        ]
        permissions = [
            ("view_all_jobs", "Can see every user's jobs"),
            ("reprioritise_job", "Can reprioritise any job"),
            ("cancel_job", "Can cancel any job"),
            ("retry_job", "Can retry any job"),
            ("submit_high_priority", "Can submit jobs above the priority ceiling"),
            ("tune_job_kinds", "Can use privileged payload options (simulate's failure_rate, long runs)"),
        ]

    def __str__(self) -> str:
        return f"{self.short_id} {self.kind} ({self.status})"

    @property
    def short_id(self) -> str:
        return str(self.uuid)[:8]


class JobEvent(models.Model):
    """One line of a job's history, written in the same transaction as the change it records."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=32, choices=EventKind)
    at = models.DateTimeField(default=timezone.now)
    actor = models.CharField(max_length=ACTOR_MAX_LENGTH)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.kind} by {self.actor}"


class WorkerHeartbeat(models.Model):
    """A worker process that is alive: upserted every poll interval, deleted on clean shutdown."""

    worker_id = models.CharField(max_length=128, unique=True)
    hostname = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    last_seen = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return self.worker_id


# --- Circuit breakers ---------------------------------------------------------------------------


class BreakerState(models.TextChoices):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class BreakerOverride(models.TextChoices):
    NONE = "", "none"
    OPEN = "open", "forced open"
    CLOSED = "closed", "forced closed"


class BreakerEventKind(models.TextChoices):
    FAILURE = "failure"  # one counted failure (the evidence behind a trip)
    OPENED = "opened"  # closed -> open: the failure threshold was reached
    HALF_OPENED = "half_opened"  # open -> half-open: a trial call was admitted
    REOPENED = "reopened"  # half-open -> open: the trial failed, backoff doubled
    CLOSED = "closed"  # half-open -> closed: the trial succeeded
    TRIAL_ABANDONED = "trial_abandoned"  # the trial ended without a verdict (4xx, shutdown)
    FORCED_OPEN = "forced_open"
    FORCED_CLOSED = "forced_closed"
    RELEASED = "released"
    OVERRIDE_EXPIRED = "override_expired"
    LIMITS_CHANGED = "limits_changed"  # an operator changed flow-control limits live (old -> new)


class Breaker(models.Model):
    """One dependency's shared circuit breaker. Every process reads and changes this row.

    ``state`` is the automatic state; ``override`` (with reason, actor, optional expiry) wins over
    it while in force. Thresholds come from ``jobs.dependencies`` (settings), not from this row.
    Every change is a conditional UPDATE (see ``jobs.breakers``), never a read-modify-write.
    """

    name = models.CharField(max_length=64, primary_key=True)
    state = models.CharField(max_length=16, choices=BreakerState, default=BreakerState.CLOSED)
    failures = models.PositiveIntegerField(default=0)  # consecutive counted failures while closed
    successes = models.PositiveIntegerField(default=0)  # pybreaker's half-open success counter
    level = models.PositiveSmallIntegerField(default=0)  # reopens since the trip: the backoff exponent
    period = models.PositiveIntegerField(default=0)  # open periods so far (trip .. close is one)
    opened_at = models.DateTimeField(null=True, blank=True)
    retry_at = models.DateTimeField(null=True, blank=True)
    held_since = models.DateTimeField(null=True, blank=True)  # when it last stopped admitting calls
    trial_owner = models.CharField(max_length=ACTOR_MAX_LENGTH, blank=True, default="")
    trial_job = models.BigIntegerField(null=True, blank=True)  # Job.seq of the half-open trial
    trial_expires_at = models.DateTimeField(null=True, blank=True)
    override = models.CharField(max_length=8, choices=BreakerOverride, blank=True, default="")
    override_reason = models.TextField(blank=True, default="")
    override_actor = models.CharField(max_length=ACTOR_MAX_LENGTH, blank=True, default="")
    override_at = models.DateTimeField(null=True, blank=True)
    override_expires_at = models.DateTimeField(null=True, blank=True)
    # Flow control (jobs/breakers/flow.py). ``probe_window``: the slow-start allowance grown by
    # successes, 0 while no success is on record since the last failure, trip or close.
    probe_window = models.PositiveIntegerField(default=0)
    rate_tat = models.FloatField(null=True, blank=True)  # rate limit: GCRA theoretical arrival time, epoch s
    adaptive_limit = models.FloatField(null=True, blank=True)  # adaptive concurrency: the AIMD limit
    # The adaptive limit's last change of whole calls, written by the UPDATE that moves it
    # (``transitions._adapt``): when, from, to, and its cause ("503 from downstream", "healthy round").
    adaptive_changed_at = models.DateTimeField(null=True, blank=True)
    adaptive_change_from = models.FloatField(null=True, blank=True)
    adaptive_change_to = models.FloatField(null=True, blank=True)
    adaptive_change_cause = models.CharField(max_length=64, blank=True, default="")
    # Operators' live limits, each key present wins over the configured option (null = no limit):
    # max_concurrency, rate_limit, adaptive_min, adaptive_max.
    limits = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        permissions = [("override_breaker", "Can force breakers open or closed, release them and change their limits")]

    def __str__(self) -> str:
        return f"{self.name} ({self.state})"


class BreakerEvent(models.Model):
    """One line of a breaker's history: a transition, an override, or a counted failure, with why."""

    breaker = models.ForeignKey(Breaker, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=32, choices=BreakerEventKind)
    at = models.DateTimeField(default=timezone.now)
    actor = models.CharField(max_length=ACTOR_MAX_LENGTH)
    from_state = models.CharField(max_length=16, blank=True, default="")
    to_state = models.CharField(max_length=16, blank=True, default="")
    reason = models.TextField(blank=True, default="")
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["breaker", "kind", "-id"], name="breakerevent_recent")]

    def __str__(self) -> str:
        return f"{self.breaker_id} {self.kind} by {self.actor}"


# --- Operations ------------------------------------------------------------------------------------


class CounterMetric(models.TextChoices):
    SUBMITTED = "submitted"  # jobs stored, by dependency
    FINISHED = "finished"  # jobs reaching succeeded / failed / cancelled, by dependency and status
    BREAKER_TRANSITIONS = "breaker_transitions"  # BreakerEvents other than counted failures, by kind


class Counter(models.Model):
    """One share of a Prometheus counter that never goes down: pruning rows does not lower it.

    Written in the transaction that records what it counts (``jobs.counters``), as an upsert that
    adds. ``shard`` spreads one series over a few rows so that concurrent writers (workers,
    web processes) rarely wait on the same row lock; ``/metrics`` sums the shards."""

    metric = models.CharField(max_length=32, choices=CounterMetric)
    dependency = models.CharField(max_length=64)
    label = models.CharField(max_length=32, blank=True, default="")  # the status, or the breaker event kind
    shard = models.PositiveSmallIntegerField(default=0)
    value = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["metric", "dependency", "label", "shard"], name="counter_series_shard"),
        ]

    def __str__(self) -> str:
        return f"{self.metric}{{{self.dependency},{self.label}}}[{self.shard}] = {self.value}"


class HousekeepingLease(models.Model):
    """Who runs a housekeeping task (pruning) now: at most one worker holds a task's lease."""

    name = models.CharField(max_length=32, primary_key=True)
    owner = models.CharField(max_length=ACTOR_MAX_LENGTH, blank=True, default="")
    expires_at = models.DateTimeField(null=True, blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.owner or 'free'})"
