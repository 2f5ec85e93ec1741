"""One submitted job's fields checked into a ``Submission`` value, before anything is stored.

Pure checks (no writes, no remote calls): ``job_submit`` and ``jobs_submit_batch`` both run every
item through ``submission_check``, so a single job and a batch item obey the same rules.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from jobs import conf, dependencies, validation
from jobs.exceptions import InvalidInput
from jobs.handlers import registry
from jobs.models import MAX_ATTEMPTS_LIMIT
from jobs.services import rules

# The fields a client may send for one job (the REST body, a batch item).
FIELDS = frozenset({
    "kind", "payload", "priority", "emergency", "dependency", "max_attempts", "idempotency_key",
    "run_after", "delay_seconds",
})


@dataclass(frozen=True)
class Submission:
    """A job that passed every input check: what will be stored, and what identifies the request."""

    job_kind: registry.JobKind
    kind: str
    payload: dict
    priority: int
    dependency: str
    max_attempts: int
    idempotency_key: str | None
    fingerprint: str
    run_after: datetime  # ``now`` unless the client scheduled it later


@dataclass(frozen=True)
class Limits:
    """The settings every item's checks read, read once per submission (a batch checks 1,000)."""

    max_depth: int
    max_payload_bytes: int
    default_max_attempts: int
    max_delay: float
    max_key_length: int
    dependencies: frozenset[str]  # the configured ones


def limits_read() -> Limits:
    return Limits(
        max_depth=conf.get("MAX_JSON_DEPTH"), max_payload_bytes=conf.get("MAX_PAYLOAD_BYTES"),
        default_max_attempts=conf.get("DEFAULT_MAX_ATTEMPTS"), max_delay=conf.get("MAX_DELAY"),
        max_key_length=conf.get("MAX_IDEMPOTENCY_KEY_LENGTH"), dependencies=frozenset(dependencies.configured()),
    )


def _fingerprint(**parameters: Any) -> str:
    """What makes two submissions with one idempotency key the same request."""
    canonical = json.dumps(parameters, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def schedule_resolve(*, run_after: Any, delay_seconds: Any, now: datetime, limit: float) -> tuple[datetime, dict[str, Any]]:
    """When the job may first run, and the schedule as the client gave it (for the fingerprint).

    ``run_after``: ISO 8601 with a time zone; a past time means now. ``delay_seconds``: a number
    of seconds from now, at least 0. Either, not both; at most RESILIENT_MAX_DELAY ahead."""
    if run_after is not None and delay_seconds is not None:
        raise InvalidInput("run_after", "give run_after or delay_seconds, not both")
    if delay_seconds is not None:
        if isinstance(delay_seconds, bool) or not isinstance(delay_seconds, int | float):
            raise InvalidInput("delay_seconds", "must be a number of seconds")
        # Compared before any conversion: an integer of hundreds of digits is no float.
        if isinstance(delay_seconds, float) and not math.isfinite(delay_seconds) or delay_seconds < 0:
            raise InvalidInput("delay_seconds", "must be 0 or more")
        if delay_seconds > limit:
            raise InvalidInput("delay_seconds", f"must be at most {limit:g} seconds (RESILIENT_MAX_DELAY)")
        return now + timedelta(seconds=delay_seconds), {"delay_seconds": delay_seconds}
    if run_after is None:
        return now, {}
    if not isinstance(run_after, str):
        raise InvalidInput("run_after", "must be an ISO 8601 date and time with a time zone")
    try:
        when = datetime.fromisoformat(run_after)
    except ValueError:
        raise InvalidInput("run_after", "must be an ISO 8601 date and time with a time zone, "
                                        "e.g. 2030-01-01T12:00:00Z") from None
    if when.tzinfo is None or when.utcoffset() is None:
        raise InvalidInput("run_after", "must include a time zone (e.g. Z or +02:00)")
    too_far = f"must be at most {limit:g} seconds ahead (RESILIENT_MAX_DELAY)"
    try:
        # In UTC: PostgreSQL refuses offsets beyond ±15:59 that Python parses.
        when = when.astimezone(UTC)
    except OverflowError:  # beyond datetime's range in UTC: year 1 is long past, year 9999 too far
        if when.year > 1:
            raise InvalidInput("run_after", too_far) from None
        return now, {"run_after": run_after}
    if (when - now).total_seconds() > limit:
        raise InvalidInput("run_after", too_far)
    # A past time means now; the fingerprint keeps the time asked for, so a resend is a replay.
    return max(when, now), {"run_after": when.isoformat()}


def submission_check(
    *,
    kind: Any,
    payload: Any = None,
    priority: Any = None,
    emergency: Any = None,
    dependency: Any = None,
    max_attempts: Any = None,
    idempotency_key: Any = None,
    run_after: Any = None,
    delay_seconds: Any = None,
    now: datetime,
    limits: Limits | None = None,
) -> Submission:
    """Every input rule of one job; ``InvalidInput`` naming the first bad field. ``limits``: the
    settings, when the caller checks many jobs (read here otherwise)."""
    limits = limits or limits_read()
    if not isinstance(kind, str):
        raise InvalidInput("kind", "must be a string")
    job_kind = registry.get(kind)
    payload = {} if payload is None else payload
    if not isinstance(payload, dict):
        raise InvalidInput("payload", "must be a JSON object")
    validation.check_json("payload", payload, max_depth=limits.max_depth, max_bytes=limits.max_payload_bytes)
    resolved_priority = rules.priority_resolve(priority=priority, emergency=emergency)
    if dependency is None:
        dependency = job_kind.dependency
    if not isinstance(dependency, str):
        raise InvalidInput("dependency", "must be a string")
    if dependency not in limits.dependencies:
        dependencies.get(dependency)  # raises InvalidInput naming the configured ones
    if dependency == dependencies.VALIDATION:
        # Its breaker guards every submission: a job failing through it would stop them all.
        raise InvalidInput("dependency", "'validation' is reserved for submission-time validation")
    if max_attempts is None:
        max_attempts = limits.default_max_attempts
    validation.check_int("max_attempts", max_attempts, low=1, high=MAX_ATTEMPTS_LIMIT)
    if job_kind.validate is not None:
        job_kind.validate(payload, dependency)
    when, schedule = schedule_resolve(run_after=run_after, delay_seconds=delay_seconds, now=now, limit=limits.max_delay)
    fingerprint = ""
    if idempotency_key is not None:
        if not isinstance(idempotency_key, str) or not idempotency_key:
            raise InvalidInput("idempotency_key", "must be a non-empty string")
        limit = limits.max_key_length
        if len(idempotency_key) > limit:
            raise InvalidInput("idempotency_key", f"must be at most {limit} characters")
        validation.check_text("idempotency_key", idempotency_key)
        # The schedule joins the fingerprint only when given, so unscheduled requests keep the
        # fingerprints stored before scheduling existed.
        fingerprint = _fingerprint(kind=kind, payload=payload, priority=resolved_priority,
                                   dependency=dependency, max_attempts=max_attempts, **schedule)
    return Submission(
        job_kind=job_kind,
        kind=kind,
        payload=payload,
        priority=resolved_priority,
        dependency=dependency,
        max_attempts=max_attempts,
        idempotency_key=idempotency_key,
        fingerprint=fingerprint,
        run_after=when,
    )
