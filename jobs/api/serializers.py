"""Shapes of the HTTP contract. Output only translates; input rules live in jobs.services."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from jobs import breakers, dependencies, redaction, selectors
from jobs.handlers import registry
from jobs.models import MAX_ATTEMPTS_LIMIT, PRIORITY_MAX, PRIORITY_MIN, Job, JobEvent


class JobSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="uuid", read_only=True)
    payload = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = [
            "id", "kind", "dependency", "payload", "priority", "status", "attempts", "max_attempts",
            "run_after", "created_at", "started_at", "finished_at", "last_error", "result",
        ]
        read_only_fields = fields

    def get_payload(self, job: Job) -> dict:
        """The payload with secret-looking header values hidden (the worker sees them)."""
        return redaction.payload_redacted(job.payload)


_TIME = serializers.DateTimeField()  # unbound: only its to_representation is used


def _time(value) -> str | None:
    return _TIME.to_representation(value) if value is not None else None


def job_data(job: Job) -> dict:
    """``JobSerializer(job).data`` without building a serializer for each job: what a submission
    answers (one job, or a thousand in a batch). tests/jobs/api/test_batch.py holds the two equal."""
    return {
        "id": str(job.uuid), "kind": job.kind, "dependency": job.dependency,
        "payload": redaction.payload_redacted(job.payload), "priority": job.priority, "status": job.status,
        "attempts": job.attempts, "max_attempts": job.max_attempts, "run_after": _time(job.run_after),
        "created_at": _time(job.created_at), "started_at": _time(job.started_at),
        "finished_at": _time(job.finished_at), "last_error": job.last_error, "result": job.result,
    }


class JobEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = JobEvent
        fields = ["kind", "at", "actor", "details"]
        read_only_fields = fields


class WaitingForSerializer(serializers.Serializer):
    reason = serializers.CharField(help_text="retry_scheduled, breaker_open, probing, slow_start, max_concurrency, "
                                             "adaptive_concurrency, rate_limit, jobs_ahead or next")
    until = serializers.DateTimeField(required=False)
    jobs_ahead = serializers.IntegerField(required=False)
    dependency = serializers.CharField(required=False)
    state = serializers.CharField(required=False)
    in_flight = serializers.IntegerField(required=False)
    limit = serializers.IntegerField(required=False)
    when = serializers.CharField(required=False)
    at_latest = serializers.DateTimeField(required=False)
    rate_limit = serializers.CharField(required=False)


class JobDetailSerializer(JobSerializer):
    position = serializers.SerializerMethodField()
    waiting_for = serializers.SerializerMethodField()
    events = JobEventSerializer(many=True, read_only=True)

    class Meta(JobSerializer.Meta):
        fields = [*JobSerializer.Meta.fields, "position", "waiting_for", "events"]
        read_only_fields = fields

    def get_position(self, job: Job) -> int | None:
        return selectors.job_position(job)

    def get_waiting_for(self, job: Job) -> WaitingForSerializer(allow_null=True):  # type: ignore[valid-type]
        return selectors.job_waiting_for(job)


# --- Breaker shapes: what jobs.presenters builds, for the OpenAPI schema. --------------------


class OverrideSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=["open", "closed"])
    reason = serializers.CharField()
    actor = serializers.CharField()
    at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True)


class TrialSerializer(serializers.Serializer):
    owner = serializers.CharField()
    job = serializers.UUIDField(allow_null=True)
    expires_at = serializers.DateTimeField()


class LimitsSerializer(serializers.Serializer):
    max_concurrency = serializers.IntegerField(allow_null=True)
    rate_limit = serializers.CharField(allow_null=True)
    adaptive = serializers.DictField(allow_null=True, help_text="{min, max} of adaptive concurrency.")


# "from" is a Python keyword, so this serializer is built with type() rather than a class body.
AdaptiveChangeSerializer = type("AdaptiveChangeSerializer", (serializers.Serializer,), {
    "at": serializers.DateTimeField(),
    "from": serializers.IntegerField(help_text="The limit before, in whole calls."),
    "to": serializers.IntegerField(help_text="The limit after, in whole calls."),
    "cause": serializers.CharField(
        help_text='Why: "healthy round" (growth), or the counted failure: "503 from downstream", "timeout", '
                  '"slow call", "error calling downstream".'),
})


class FlowSerializer(LimitsSerializer):
    in_flight = serializers.IntegerField(help_text="Calls in flight now: running jobs with a live lease.")
    allowance = serializers.IntegerField(allow_null=True, help_text="Calls in flight allowed now (null: no limit).")
    allowance_reason = serializers.CharField(
        allow_null=True, help_text="The tightest limit: probing, slow_start, max_concurrency, adaptive_concurrency.")
    adaptive_limit = serializers.IntegerField(allow_null=True)
    adaptive_change = AdaptiveChangeSerializer(
        allow_null=True, help_text="The adaptive limit's last change of whole calls and why (null before any).")
    rate_next_start = serializers.DateTimeField(allow_null=True, help_text="Set while the rate limit holds jobs.")
    configured = LimitsSerializer()
    live = serializers.DictField(help_text="Operators' live limits (PATCH), each winning over the configured one.")
    held_by_limit = serializers.IntegerField(help_text="Pending jobs waiting for a free slot now.")
    held_by_rate = serializers.IntegerField(help_text="Pending jobs waiting for the rate limit's next start now.")


class BreakerSerializer(serializers.Serializer):
    name = serializers.CharField()
    state = serializers.ChoiceField(choices=["closed", "open", "half-open"], help_text="What callers get now.")
    shadow_state = serializers.ChoiceField(
        choices=["closed", "open", "half-open"], help_text="The automatic state (differs while overridden)."
    )
    override = OverrideSerializer(allow_null=True)
    failures = serializers.IntegerField(help_text="Consecutive counted failures.")
    threshold = serializers.IntegerField()
    opened_at = serializers.DateTimeField(allow_null=True)
    retry_at = serializers.DateTimeField(allow_null=True)
    retry_in_ms = serializers.IntegerField(allow_null=True)
    ready_to_test = serializers.BooleanField()
    held = serializers.IntegerField(help_text="Pending jobs this breaker holds back now.")
    pending = serializers.IntegerField(help_text="The dependency's pending jobs (held or not).")
    pending_bound = serializers.ChoiceField(
        choices=["exact", "estimate"],
        help_text="How pending (and held) was counted: exact up to 10,000; above, PostgreSQL's estimate.",
    )
    trial = TrialSerializer(allow_null=True)
    level = serializers.IntegerField(help_text="Reopens since the trip (the backoff exponent).")
    reset_timeout = serializers.FloatField()
    max_reset_timeout = serializers.FloatField()
    slow_call_seconds = serializers.FloatField()
    updated_at = serializers.DateTimeField()
    flow = FlowSerializer(help_text="Flow control: calls in flight, the allowance and the limits in force.")


class BreakerEventSerializer(serializers.Serializer):
    kind = serializers.CharField()
    at = serializers.DateTimeField()
    actor = serializers.CharField()
    from_state = serializers.CharField()
    to_state = serializers.CharField()
    reason = serializers.CharField()
    details = serializers.DictField()


class RecentErrorSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    job = serializers.CharField(allow_null=True)
    error = serializers.CharField()


class BreakerDetailSerializer(BreakerSerializer):
    recent_errors = RecentErrorSerializer(many=True)
    events = BreakerEventSerializer(many=True)


@extend_schema_field({"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": breakers.MAX_TTL_SECONDS})
class TtlField(serializers.FloatField):
    """More than 0 (the service refuses 0): OpenAPI 3.0 says so with ``exclusiveMinimum``."""


class LimitsRequestSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=breakers.MAX_REASON_CHARS, help_text="Why (required; audited).")
    max_concurrency = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=100_000,
        help_text="Calls in flight at once across all workers; null: no cap.")
    rate_limit = serializers.RegexField(
        r"^[1-9][0-9]{0,8}/[smh]$", required=False, allow_null=True,
        help_text='Calls started per period across all workers: "N/s", "N/m" or "N/h"; null: no limit.')
    adaptive_min = serializers.IntegerField(required=False, min_value=1, max_value=100_000,
                                            help_text="Adaptive concurrency's lower bound (only when configured).")
    adaptive_max = serializers.IntegerField(required=False, min_value=1, max_value=100_000,
                                            help_text="Adaptive concurrency's upper bound (only when configured).")
    reset = serializers.BooleanField(required=False,
                                     help_text="true: back to the configured limits (send no other limit).")


class OverrideRequestSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=breakers.MAX_REASON_CHARS)
    ttl_seconds = TtlField(
        required=False,  # the range is the service's (jobs.breakers), stated in TtlField's schema
        help_text="Lift the override by itself after this many seconds, more than 0 (not for release).",
    )


class CircuitSerializer(BreakerSerializer):
    dependency = serializers.CharField(help_text="The dependency this breaker guards (the one described).")
    state = serializers.CharField(help_text='"Closed (failures: N)", "Open (reopening in N ms)", '
                                            '"Open (ready to test)", "Half-Open" or "Open (forced)".')
    status = serializers.ChoiceField(choices=["closed", "open", "half-open"])
    recent_errors = RecentErrorSerializer(many=True)


# --- Request shapes: for the OpenAPI schema; jobs.services validates. -------------------------


class JobSubmitSerializer(serializers.Serializer):
    """Optional fields may be omitted or null: both mean the default."""

    kind = serializers.ChoiceField(choices=[], help_text="A registered job kind.")
    payload = serializers.DictField(required=False, help_text="Arguments for the handler (a JSON object).")
    priority = serializers.IntegerField(required=False, min_value=PRIORITY_MIN, max_value=PRIORITY_MAX)
    emergency = serializers.BooleanField(required=False, help_text="Shorthand for priority 10.")
    dependency = serializers.ChoiceField(
        choices=[], required=False, help_text="Breaker to call through; defaults per kind."
    )
    max_attempts = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ATTEMPTS_LIMIT)
    idempotency_key = serializers.CharField(required=False, max_length=200)
    run_after = serializers.DateTimeField(
        required=False, help_text="Not runnable before this time (ISO 8601 with a time zone); not with delay_seconds."
    )
    delay_seconds = serializers.FloatField(
        required=False, min_value=0, help_text="Not runnable for this many seconds; not with run_after."
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Read when the schema is generated, so kinds and dependencies added by settings appear.
        self.fields["kind"].choices = registry.names()
        self.fields["dependency"].choices = sorted(dependencies.configured())


class JobBatchSerializer(serializers.Serializer):
    jobs = JobSubmitSerializer(many=True, help_text="Up to RESILIENT_MAX_BATCH jobs, stored all or nothing, in order.")


class JobCreatedSerializer(JobSerializer):
    created = serializers.BooleanField(help_text="False: an earlier job with this idempotency key.")

    class Meta(JobSerializer.Meta):
        fields = [*JobSerializer.Meta.fields, "created"]
        read_only_fields = fields


class JobBatchResultSerializer(serializers.Serializer):
    jobs = JobCreatedSerializer(many=True)


class JobPatchSerializer(serializers.Serializer):
    priority = serializers.IntegerField(min_value=PRIORITY_MIN, max_value=PRIORITY_MAX)


class QueueSerializer(serializers.Serializer):
    size = serializers.IntegerField()
    by_status = serializers.DictField(child=serializers.IntegerField())
    by_dependency = serializers.DictField(child=serializers.IntegerField())
    estimated = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="The counts above the exact-count limit (10,000) that are PostgreSQL's estimates: "
                  "{by_status: [status, …], by_dependency: [name, …]}.",
    )
    next = JobSerializer(many=True)


class QueueSizeSerializer(serializers.Serializer):
    size = serializers.IntegerField()


# --- Error shapes: for the OpenAPI schema (jobs.api.errors produces them). --------------------


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    code = serializers.CharField(help_text="Machine-readable: not_found, illegal_transition, throttled, ...")
    status = serializers.CharField(required=False, help_text="409 only: the job's current status.")


class SubmissionRefusedSerializer(serializers.Serializer):
    """503 CIRCUIT_OPEN / 502 VALIDATION_ERROR: the write-up's shape, plus ``detail`` like every error."""

    code = serializers.ChoiceField(choices=["CIRCUIT_OPEN", "VALIDATION_ERROR"])
    error = serializers.CharField()
    detail = serializers.CharField()
