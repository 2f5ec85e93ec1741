"""Every mutation a client or operator makes to jobs. One transaction each, event included.

The worker's primitives (claim, finish, fail, leases) live beside these in ``jobs.queue``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any
from uuid import UUID

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from jobs import (
    access,
    breakers,
    conf,
    dependencies,
    events,
    logs,
    notify,
    remote_validation,
    validation,
)
from jobs.exceptions import (
    Forbidden,
    IdempotencyConflict,
    IllegalTransition,
    InvalidInput,
    JobNotFound,
    TooManyPending,
)
from jobs.handlers import registry
from jobs.models import (
    ACTOR_MAX_LENGTH,
    MAX_ATTEMPTS_LIMIT,
    PRIORITY_DEFAULT,
    PRIORITY_EMERGENCY,
    PRIORITY_MAX,
    PRIORITY_MIN,
    EventKind,
    Job,
    JobStatus,
)

SYSTEM = "system"
BULK_REPRIORITISE_LIMIT = 10_000  # one transaction writes one event per job: keep it bounded
BULK_IDS_LIMIT = 1_000
MAX_REASON_CHARS = 1_000
_CHUNK = 500


def actor_name(user: Any) -> str:
    """How a user appears in the audit trail (bounded: the actor columns have a length)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return SYSTEM
    return f"user:{user.get_username()}"[:ACTOR_MAX_LENGTH]


def _actor(user: Any, actor: str | None) -> str:
    return actor if actor is not None else actor_name(user)


def _resolve_priority(priority: Any, emergency: Any) -> int:
    if emergency is not None and not isinstance(emergency, bool):
        raise InvalidInput("emergency", "must be true or false")
    if priority is not None and emergency:
        raise InvalidInput("priority", "give priority or emergency, not both")
    if priority is None:
        return PRIORITY_EMERGENCY if emergency else PRIORITY_DEFAULT
    return validation.check_int("priority", priority, low=PRIORITY_MIN, high=PRIORITY_MAX)


def _check_reason(reason: Any) -> str:
    if reason is None:
        return ""
    if not isinstance(reason, str):
        raise InvalidInput("reason", "must be a string")
    if len(reason) > MAX_REASON_CHARS:
        raise InvalidInput("reason", f"must be at most {MAX_REASON_CHARS} characters")
    validation.check_text("reason", reason)
    return reason


def _check_priority_allowed(user: Any, priority: int, *, operator_permission: str | None = None) -> None:
    """Priorities above the ceiling need ``jobs.submit_high_priority`` (or the operator's permission)."""
    ceiling = conf.get("PRIORITY_CEILING")
    if priority <= ceiling or access.has(user, access.HIGH_PRIORITY):
        return
    if operator_permission is not None and access.can_operate(user, operator_permission):
        return
    raise Forbidden(f"priority above {ceiling} needs the {access.HIGH_PRIORITY!r} permission")


def _check_privileged(user: Any, job_kind: registry.JobKind, payload: dict, dependency: str) -> None:
    """A kind's privileged options (e.g. simulate's failure_rate) need ``jobs.tune_job_kinds``."""
    if job_kind.privileged is None or access.has(user, access.TUNE_KINDS):
        return
    needs = job_kind.privileged(payload, dependency)
    if needs:
        raise Forbidden(f"{needs} needs the {access.TUNE_KINDS!r} permission")


def _check_pending_cap(user: Any) -> None:
    """At most RESILIENT_MAX_PENDING_PER_USER pending jobs per submitter (0: no cap).

    Counted with a LIMIT, so the check costs at most ``cap`` index entries. Concurrent
    submissions of one user may pass it together: the cap is a guard rail, not an exact quota."""
    cap = conf.get("MAX_PENDING_PER_USER")
    if user is None or cap <= 0:
        return
    pending = Job.objects.filter(submitter_id=user.pk, status=JobStatus.PENDING)[:cap].count()
    if pending >= cap:
        raise TooManyPending(
            f"you already have {cap} pending jobs (RESILIENT_MAX_PENDING_PER_USER); "
            "wait for some to run or cancel some"
        )


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
    actor = _actor(submitter, actor)
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
    resolved_priority = _resolve_priority(priority, emergency)
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
    _check_priority_allowed(submitter, resolved_priority)
    _check_privileged(submitter, job_kind, payload, dependency)
    _check_pending_cap(submitter)
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


def _transition(
    *,
    job_id: UUID,
    action: str,
    allowed: tuple[str, ...],
    changes: dict[str, Any],
    user: Any,
    permission: str,
) -> tuple[Job, int]:
    """Apply ``changes`` iff ``user`` may act on the job and its status is in ``allowed``.

    One conditional UPDATE, no race. Returns the job after the change and its priority before."""
    job_id = validation.job_uuid(job_id)
    row = Job.objects.filter(uuid=job_id).values_list("seq", "submitter_id", "priority").first()
    if row is None:
        raise JobNotFound(f"no job {job_id}")
    seq, submitter_id, before = row
    try:
        access.job_check_action(user=user, submitter_id=submitter_id, permission=permission)
    except JobNotFound:
        raise JobNotFound(f"no job {job_id}") from None
    updated = Job.objects.filter(seq=seq, status__in=allowed).update(**changes, updated_at=timezone.now())
    job = Job.objects.get(seq=seq)
    if not updated:
        raise IllegalTransition(action=action, status=job.status, allowed=allowed)
    return job, before


def job_reprioritise(*, job_id: UUID, priority: Any, user: Any = None, actor: str | None = None) -> Job:
    """Change a pending job's priority; it moves in pop order at once."""
    priority = validation.check_int("priority", priority, low=PRIORITY_MIN, high=PRIORITY_MAX)
    _check_priority_allowed(user, priority, operator_permission="jobs.reprioritise_job")
    actor = _actor(user, actor)
    with transaction.atomic():
        job, before = _transition(
            job_id=job_id,
            action="reprioritise",
            allowed=(JobStatus.PENDING,),
            changes={"priority": priority},
            user=user,
            permission="jobs.reprioritise_job",
        )
        events.event_record(job=job, kind=EventKind.REPRIORITISED, actor=actor, before=before, after=priority)
        notify.dashboard_changed_on_commit()
    logs.job_transition("reprioritised", job, actor=actor, before=before)
    return job


def job_cancel(*, job_id: UUID, user: Any = None, actor: str | None = None, reason: Any = "") -> Job:
    """Cancel a pending or failed job."""
    reason = _check_reason(reason)
    actor = _actor(user, actor)
    with transaction.atomic():
        job, _ = _transition(
            job_id=job_id,
            action="cancel",
            allowed=(JobStatus.PENDING, JobStatus.FAILED),
            changes={"status": JobStatus.CANCELLED, "finished_at": timezone.now()},
            user=user,
            permission="jobs.cancel_job",
        )
        events.event_record(job=job, kind=EventKind.CANCELLED, actor=actor, reason=reason)
        notify.dashboard_changed_on_commit()
    logs.job_transition("cancelled", job, actor=actor, reason=reason or None)
    return job


def _check_resubmission(user: Any, job_id: UUID) -> None:
    """A retry by the job's own submitter makes it pending again, like a new submission: the
    pending cap, the priority ceiling and the kind's privileged options apply as they do now
    (permissions may have changed since). Operators with ``jobs.retry_job`` are not limited."""
    if user is None or access.can_operate(user, "jobs.retry_job"):
        return
    job = Job.objects.filter(uuid=validation.job_uuid(job_id), submitter_id=user.pk).first()
    if job is None:
        return  # not theirs: _transition answers (404)
    _check_priority_allowed(user, job.priority)
    try:
        job_kind = registry.get(job.kind)
    except InvalidInput:
        return  # a kind no longer registered: the worker fails it
    _check_privileged(user, job_kind, job.payload, job.dependency)
    _check_pending_cap(user)


def job_retry(*, job_id: UUID, user: Any = None, actor: str | None = None) -> Job:
    """Send a failed or cancelled job back to pending with a fresh set of attempts."""
    actor = _actor(user, actor)
    _check_resubmission(user, job_id)
    with transaction.atomic():
        job, _ = _transition(
            job_id=job_id,
            action="retry",
            allowed=(JobStatus.FAILED, JobStatus.CANCELLED),
            changes={
                "status": JobStatus.PENDING,
                "attempts": 0,
                "run_after": timezone.now(),
                "started_at": None,
                "finished_at": None,
                "result": None,
            },
            user=user,
            permission="jobs.retry_job",
        )
        events.event_record(job=job, kind=EventKind.RETRIED, actor=actor)
        notify.wake_workers_on_commit()
        notify.dashboard_changed_on_commit()
    logs.job_transition("retried", job, actor=actor)
    return job


def _uuids(field: str, values: Any) -> list[UUID]:
    if not isinstance(values, list):
        raise InvalidInput(field, "must be a list of job ids")
    if len(values) > BULK_IDS_LIMIT:
        raise InvalidInput(field, f"must list at most {BULK_IDS_LIMIT} jobs")
    try:
        return [UUID(value) for value in values]
    except (TypeError, ValueError, AttributeError):
        raise InvalidInput(field, "must be a list of job ids (UUIDs)") from None


def jobs_bulk_reprioritise(
    *,
    priority: Any,
    user: Any = None,
    actor: str | None = None,
    job_ids: Any = None,
    dependency: Any = None,
    kind: Any = None,
    current_priority: Any = None,
    dry_run: bool = False,
) -> int:
    """Give every pending job that matches (ids and/or dependency, kind, current priority) a new
    priority, in one transaction with one event per job. Returns how many jobs change
    (``dry_run``: would change; nothing is written). Jobs already at ``priority`` are left alone.
    """
    if not access.can_operate(user, "jobs.reprioritise_job"):
        raise Forbidden("needs a staff account with the 'jobs.reprioritise_job' permission")
    actor = _actor(user, actor)
    priority = validation.check_int("priority", priority, low=PRIORITY_MIN, high=PRIORITY_MAX)
    matching = Job.objects.filter(status=JobStatus.PENDING).exclude(priority=priority)
    if job_ids is not None:
        matching = matching.filter(uuid__in=_uuids("ids", job_ids))
    for field, value in (("dependency", dependency), ("kind", kind)):
        if value is not None:
            if not isinstance(value, str):
                raise InvalidInput(field, "must be a string")
            matching = matching.filter(**{field: value})
    if current_priority is not None:
        current = validation.check_int("current_priority", current_priority, low=PRIORITY_MIN, high=PRIORITY_MAX)
        matching = matching.filter(priority=current)
    rows_query = matching.order_by("-priority", "seq").values_list("seq", "priority")
    if dry_run:
        count = matching[: BULK_REPRIORITISE_LIMIT + 1].count()
        if count > BULK_REPRIORITISE_LIMIT:
            raise InvalidInput("filter", f"matches more than {BULK_REPRIORITISE_LIMIT} jobs; narrow it")
        return count
    now = timezone.now()
    with transaction.atomic():
        if connection.features.has_select_for_update:
            rows_query = rows_query.select_for_update()
        rows = list(rows_query[: BULK_REPRIORITISE_LIMIT + 1])
        if len(rows) > BULK_REPRIORITISE_LIMIT:
            raise InvalidInput("filter", f"matches more than {BULK_REPRIORITISE_LIMIT} jobs; narrow it")
        for start in range(0, len(rows), _CHUNK):
            chunk = [seq for seq, _ in rows[start : start + _CHUNK]]
            Job.objects.filter(seq__in=chunk, status=JobStatus.PENDING).update(priority=priority, updated_at=now)
        events.events_record([
            (seq, EventKind.REPRIORITISED, actor, now, {"before": before, "after": priority, "bulk": True})
            for seq, before in rows
        ])
        if rows:
            notify.dashboard_changed_on_commit()
    return len(rows)
