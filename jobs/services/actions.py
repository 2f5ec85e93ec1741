"""An operator's or owner's action on one job: reprioritise, cancel, retry. One conditional UPDATE each."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.db import transaction
from django.utils import timezone

from jobs import access, counters, events, logs, notify, validation
from jobs.exceptions import IllegalTransition, InvalidInput, JobNotFound
from jobs.handlers import registry
from jobs.models import CounterMetric, EventKind, Job, JobStatus
from jobs.services import rules
from jobs.services.actors import actor_resolve


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
    job = Job.objects.filter(seq=seq).first()
    if job is None:  # deleted meanwhile (retention pruned it): as if it had never been found
        raise JobNotFound(f"no job {job_id}")
    if not updated:
        raise IllegalTransition(action=action, status=job.status, allowed=allowed)
    return job, before


def job_reprioritise(*, job_id: UUID, priority: Any, user: Any = None, actor: str | None = None) -> Job:
    """Change a pending job's priority; it moves in pop order at once."""
    priority = rules.priority_check(field="priority", value=priority)
    rules.priority_check_allowed(user=user, priority=priority, operator_permission="jobs.reprioritise_job")
    actor = actor_resolve(user=user, actor=actor)
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
    reason = rules.reason_check(reason=reason)
    actor = actor_resolve(user=user, actor=actor)
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
        counters.counter_add(CounterMetric.FINISHED, job.dependency, JobStatus.CANCELLED)
        notify.dashboard_changed_on_commit()
    logs.job_transition("cancelled", job, actor=actor, reason=reason or None)
    return job


def _check_resubmission(*, user: Any, job_id: UUID) -> None:
    """A retry by the job's own submitter makes it pending again, like a new submission: the
    pending cap, the priority ceiling and the kind's privileged options apply as they do now
    (permissions may have changed since). Operators with ``jobs.retry_job`` are not limited."""
    if user is None or access.can_operate(user, "jobs.retry_job"):
        return
    job = Job.objects.filter(uuid=validation.job_uuid(job_id), submitter_id=user.pk).first()
    if job is None:
        return  # not theirs: _transition answers (404)
    rules.priority_check_allowed(user=user, priority=job.priority)
    try:
        job_kind = registry.get(job.kind)
    except InvalidInput:
        return  # a kind no longer registered: the worker fails it
    rules.options_check_privileged(user=user, job_kind=job_kind, payload=job.payload, dependency=job.dependency)
    rules.pending_check_cap(user=user)


def job_retry(*, job_id: UUID, user: Any = None, actor: str | None = None) -> Job:
    """Send a failed or cancelled job back to pending with a fresh set of attempts."""
    actor = actor_resolve(user=user, actor=actor)
    _check_resubmission(user=user, job_id=job_id)
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
