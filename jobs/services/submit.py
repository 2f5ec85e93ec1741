"""Submitting jobs, one or a batch: the checks, idempotent replay, the remote validation, one
transaction. Both ``job_submit`` and ``jobs_submit_batch`` end in ``_store``, the one path where
ownership, permissions, the pending cap, events and the wake-up happen."""

from __future__ import annotations

import collections
from typing import Any

from django.db import IntegrityError
from django.utils import timezone

from jobs import breakers, conf, logs, notify, remote_validation
from jobs.exceptions import Forbidden, IdempotencyConflict, InvalidInput, InvalidItems
from jobs.models import CounterMetric, EventKind, Job
from jobs.services import rules, submission, submit_rows
from jobs.services.actors import actor_resolve
from jobs.services.submission import FIELDS, Submission, submission_check

__all__ = ["FIELDS", "job_submit", "jobs_submit_batch"]

# A concurrent submission with one of our keys makes the insert fail: look again, this often.
_RACE_RETRIES = 3


def job_submit(*, submitter: Any = None, actor: str | None = None, **fields: Any) -> tuple[Job, bool]:
    """Store a new pending job for ``submitter`` (None: the system) and wake a worker.

    ``fields`` are a job's fields (``submission.FIELDS``: kind, payload, priority, emergency,
    dependency, max_attempts, idempotency_key, run_after, delay_seconds); an unknown one is a TypeError.

    Returns (job, created). A repeated ``idempotency_key`` of the same submitter returns the first
    job with ``created`` False, or ``IdempotencyConflict`` when the parameters differ. Raises
    ``InvalidInput`` naming the field, ``Forbidden`` for a priority above the ceiling or a
    privileged payload option without the permission, ``TooManyPending`` past the per-user cap;
    nothing is stored then. With VALIDATION_URL set, the job is first validated remotely:
    ``CircuitOpen`` or ``ValidationFailed``, nothing stored. ``run_after`` (ISO 8601 with a time
    zone) or ``delay_seconds`` keeps it pending but not runnable until then.
    """
    actor = actor_resolve(user=submitter, actor=actor)
    checked = submission_check(**fields, now=timezone.now())
    [answer] = _store([checked], submitter=submitter, actor=actor, label=lambda index: "")
    return answer


def jobs_submit_batch(*, items: Any, submitter: Any = None, actor: str | None = None) -> list[tuple[Job, bool]]:
    """Store a batch of jobs all or nothing, in list order, for ``submitter``.

    Every item is checked first; any bad item raises ``InvalidItems`` naming each bad item's
    index and field, and nothing is stored. Then one transaction and one wake-up. Idempotency
    keys work per item: a key stored before answers that item with the existing job (created
    False); a key repeated inside the batch with the same parameters answers with the job of its
    first occurrence (created False), with other parameters it is a bad item. The priority
    ceiling, privileged options and the pending cap apply to the batch as a whole (the whole
    batch must fit under the cap). Returns (job, created) per item, in order.
    """
    actor = actor_resolve(user=submitter, actor=actor)
    limit = conf.get("MAX_BATCH")
    if not isinstance(items, list):
        raise InvalidInput("jobs", "must be a list of jobs")
    if not items:
        raise InvalidInput("jobs", "must list at least one job")
    if len(items) > limit:
        raise InvalidInput("jobs", f"must list at most {limit} jobs (RESILIENT_MAX_BATCH); split it")
    now = timezone.now()
    limits = submission.limits_read()
    checked: list[Submission] = []
    bad: dict[str, dict[str, list[str]]] = {}
    first_of_key: dict[str, Submission] = {}
    for index, item in enumerate(items):
        try:
            checked_item = submission_check(**_item_fields(item), now=now, limits=limits)
        except InvalidInput as error:
            bad[str(index)] = {error.field: [error.message]}
            continue
        key = checked_item.idempotency_key
        if key is not None:
            first = first_of_key.setdefault(key, checked_item)
            if first.fingerprint != checked_item.fingerprint:
                bad[str(index)] = {"idempotency_key": ["repeats an earlier item's key with different parameters"]}
                continue
        checked.append(checked_item)
    if bad:
        raise InvalidItems("jobs", bad)
    return _store(checked, submitter=submitter, actor=actor, label=lambda index: f"jobs[{index}]: ")


def _item_fields(item: Any) -> dict[str, Any]:
    """One batch item as ``submission_check``'s keywords; ``InvalidInput`` like a single body."""
    if not isinstance(item, dict):
        raise InvalidInput("non_field_errors", "each job must be a JSON object")
    unknown = sorted(set(item) - FIELDS)
    if unknown:
        field = unknown[0].encode("utf-8", "backslashreplace").decode("utf-8")
        raise InvalidInput(field, f"unknown field; allowed: {', '.join(sorted(FIELDS))}")
    if "kind" not in item:
        raise InvalidInput("kind", "this field is required")
    for field, value in item.items():
        if value is None:
            raise InvalidInput(field, "may not be null")
    return item


def _store(checked: list[Submission], *, submitter: Any, actor: str, label) -> list[tuple[Job, bool]]:
    """Replays, permissions, the cap, the remote check, then one transaction for the new jobs.

    ``label(index)`` prefixes an item's error (empty for a single job)."""
    for _ in range(_RACE_RETRIES):
        answers = _replays(checked, submitter=submitter, label=label)
        first_of_key: dict[str, int] = {}
        new: list[tuple[int, Submission]] = []
        for index, sub in enumerate(checked):
            key = sub.idempotency_key
            if answers[index] is not None or (key is not None and key in first_of_key):
                continue  # a replay, or a repeat of an earlier item's key (answered below)
            if key is not None:
                first_of_key[key] = index
            new.append((index, sub))
        _check_allowed(new, submitter=submitter, label=label)
        for _, sub in new:
            # Last, once the input is known good: the remote check (through the `validation` breaker).
            remote_validation.submission_validate(
                document={"kind": sub.kind, "payload": sub.payload, "priority": sub.priority,
                          "dependency": sub.dependency},
                actor=actor,
            )
        try:
            created = _insert([sub for _, sub in new], submitter=submitter, actor=actor)
        except IntegrityError:
            # A concurrent submission with one of the keys won the race: look again, answer as replays.
            if not any(sub.idempotency_key for _, sub in new):
                raise
            continue
        for (index, _), job in zip(new, created, strict=True):
            answers[index] = (job, True)
        for index, sub in enumerate(checked):
            if answers[index] is None:
                answers[index] = (answers[first_of_key[sub.idempotency_key]][0], False)
        for job in created:
            logs.job_transition("submitted", job, actor=actor)
        return answers
    raise IdempotencyConflict("the idempotency keys kept colliding with concurrent submissions; try again")


def _replays(checked: list[Submission], *, submitter: Any, label) -> list[tuple[Job, bool] | None]:
    """Per item: (the stored job, False) when its key was used before, else None."""
    answers: list[tuple[Job, bool] | None] = [None] * len(checked)
    keys = {sub.idempotency_key for sub in checked if sub.idempotency_key is not None}
    if not keys:
        return answers
    owner = {"submitter__isnull": True} if submitter is None else {"submitter_id": submitter.pk}
    by_key = {"idempotency_key__in": keys} if len(keys) > 1 else {"idempotency_key": next(iter(keys))}
    stored = {job.idempotency_key: job for job in Job.objects.filter(**by_key, **owner)}
    for index, sub in enumerate(checked):
        existing = stored.get(sub.idempotency_key)
        if existing is None:
            continue
        if existing.idempotency_fingerprint and existing.idempotency_fingerprint != sub.fingerprint:
            raise IdempotencyConflict(
                f"{label(index)}this idempotency key was already used with different parameters; "
                "use a new key for a different job"
            )
        answers[index] = (existing, False)
    return answers


def _check_allowed(new: list[tuple[int, Submission]], *, submitter: Any, label) -> None:
    """The priority ceiling and privileged options per new job, the pending cap for all of them."""
    for index, sub in new:
        try:
            rules.priority_check_allowed(user=submitter, priority=sub.priority)
            rules.options_check_privileged(user=submitter, job_kind=sub.job_kind, payload=sub.payload,
                                           dependency=sub.dependency)
        except Forbidden as error:
            raise Forbidden(f"{label(index)}{error}") from None
    if new:
        rules.pending_check_cap(user=submitter, adding=len(new))


def _insert(new: list[Submission], *, submitter: Any, actor: str) -> list[Job]:
    """The jobs in list order (ascending ``seq``), their events, holds and counts, then the hints."""
    if not new:
        return []
    now = timezone.now()
    jobs = [
        Job(
            kind=sub.kind, payload=sub.payload, dependency=sub.dependency, priority=sub.priority,
            max_attempts=sub.max_attempts, idempotency_key=sub.idempotency_key,
            idempotency_fingerprint=sub.fingerprint, submitter=submitter, run_after=sub.run_after,
            created_at=now,
        )
        for sub in new
    ]
    submitted = [(job, EventKind.SUBMITTED, actor, now, _submitted_details(job, now)) for job in jobs]
    counts = collections.Counter(job.dependency for job in jobs)
    # With them, a held event for each job whose breaker rejects calls now (read in the same statement).
    held = submit_rows.jobs_insert(
        jobs=jobs, new_events=submitted, actor=actor, now=now,
        increments={(CounterMetric.SUBMITTED, dep, ""): n for dep, n in counts.items()},
    )
    breakers.held_logged(held)
    notify.jobs_added_on_commit(runnable=len(held) < len(jobs))
    return jobs


def _submitted_details(job: Job, now) -> dict[str, Any]:
    if job.run_after > now:
        return {"priority": job.priority, "run_after": job.run_after.isoformat()}
    return {"priority": job.priority}
