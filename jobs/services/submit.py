"""Submitting a job: its checks, idempotent replay, the remote validation, one transaction."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.db import IntegrityError, transaction

from jobs import (
    breakers,
    conf,
    counters,
    dependencies,
    events,
    logs,
    notify,
    remote_validation,
    validation,
)
from jobs.exceptions import IdempotencyConflict, InvalidInput
from jobs.handlers import registry
from jobs.models import MAX_ATTEMPTS_LIMIT, CounterMetric, EventKind, Job
from jobs.services import rules
from jobs.services.actors import actor_resolve


def _fingerprint(**parameters: Any) -> str:
    """What makes two submissions with one idempotency key the same request."""
    canonical = json.dumps(parameters, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _replay(existing: Job, fingerprint: str) -> tuple[Job, bool]:
    if existing.idempotency_fingerprint and existing.idempotency_fingerprint != fingerprint:
        raise IdempotencyConflict(
            "this idempotency key was already used with different parameters; "
            "use a new key for a different job"
        )
    return existing, False


def job_submit(
    *,
    kind: Any,
    payload: Any = None,
    priority: Any = None,
    emergency: Any = None,
    dependency: Any = None,
    max_attempts: Any = None,
    idempotency_key: Any = None,
    submitter: Any = None,
    actor: str | None = None,
) -> tuple[Job, bool]:
    """Store a new pending job for ``submitter`` (None: the system) and wake a worker.

    Returns (job, created). A repeated ``idempotency_key`` of the same submitter returns the first
    job with ``created`` False, or ``IdempotencyConflict`` when the parameters differ. Raises
    ``InvalidInput`` naming the field, ``Forbidden`` for a priority above the ceiling or a
    privileged payload option without the permission, ``TooManyPending`` past the per-user cap;
    nothing is stored then. With VALIDATION_URL set, the job is first validated remotely:
    ``CircuitOpen`` or ``ValidationFailed``, nothing stored.
    """
    actor = actor_resolve(user=submitter, actor=actor)
    if not isinstance(kind, str):
        raise InvalidInput("kind", "must be a string")
    job_kind = registry.get(kind)
    payload = {} if payload is None else payload
    if not isinstance(payload, dict):
        raise InvalidInput("payload", "must be a JSON object")
    validation.check_json(
        "payload",
        payload,
        max_depth=conf.get("MAX_JSON_DEPTH"),
        max_bytes=conf.get("MAX_PAYLOAD_BYTES"),
    )
    resolved_priority = rules.priority_resolve(priority=priority, emergency=emergency)
    if dependency is None:
        dependency = job_kind.dependency
    if not isinstance(dependency, str):
        raise InvalidInput("dependency", "must be a string")
    dependencies.get(dependency)
    if dependency == dependencies.VALIDATION:
        # Its breaker guards every submission: a job failing through it would stop them all.
        raise InvalidInput("dependency", "'validation' is reserved for submission-time validation")
    if max_attempts is None:
        max_attempts = conf.get("DEFAULT_MAX_ATTEMPTS")
    validation.check_int("max_attempts", max_attempts, low=1, high=MAX_ATTEMPTS_LIMIT)
    if job_kind.validate is not None:
        job_kind.validate(payload, dependency)
    fingerprint = ""
    if idempotency_key is not None:
        if not isinstance(idempotency_key, str) or not idempotency_key:
            raise InvalidInput("idempotency_key", "must be a non-empty string")
        limit = conf.get("MAX_IDEMPOTENCY_KEY_LENGTH")
        if len(idempotency_key) > limit:
            raise InvalidInput("idempotency_key", f"must be at most {limit} characters")
        validation.check_text("idempotency_key", idempotency_key)
        fingerprint = _fingerprint(kind=kind, payload=payload, priority=resolved_priority,
                                   dependency=dependency, max_attempts=max_attempts)
        existing = _by_key(submitter, idempotency_key)
        if existing is not None:
            return _replay(existing, fingerprint)
    rules.priority_check_allowed(user=submitter, priority=resolved_priority)
    rules.options_check_privileged(user=submitter, job_kind=job_kind, payload=payload, dependency=dependency)
    rules.pending_check_cap(user=submitter)
    # Last, once the input is known good: the remote check (through the `validation` breaker).
    remote_validation.submission_validate(
        document={"kind": kind, "payload": payload, "priority": resolved_priority, "dependency": dependency},
        actor=actor,
    )

    try:
        with transaction.atomic():
            job = Job.objects.create(
                kind=kind,
                payload=payload,
                dependency=dependency,
                priority=resolved_priority,
                max_attempts=max_attempts,
                idempotency_key=idempotency_key,
                idempotency_fingerprint=fingerprint,
                submitter=submitter,
            )
            events.event_record(job=job, kind=EventKind.SUBMITTED, actor=actor, priority=resolved_priority)
            if not breakers.hold_if_rejecting(job=job, actor=actor):
                notify.wake_workers_on_commit()
            notify.dashboard_changed_on_commit()
            counters.counter_add(CounterMetric.SUBMITTED, dependency)  # last: the row lock is held to the commit
    except IntegrityError:
        # A concurrent submission with the same key won the race: answer as a replay of it.
        existing = _by_key(submitter, idempotency_key) if idempotency_key is not None else None
        if existing is None:
            raise
        return _replay(existing, fingerprint)
    logs.job_transition("submitted", job, actor=actor)
    return job, True


def _by_key(submitter: Any, key: str) -> Job | None:
    """The submitter's job with idempotency ``key`` (keys of different submitters never meet)."""
    owner = {"submitter__isnull": True} if submitter is None else {"submitter_id": submitter.pk}
    return Job.objects.filter(idempotency_key=key, **owner).first()
