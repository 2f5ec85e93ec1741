"""Reprioritising many pending jobs at once: one transaction, one event per job."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.db import connection, transaction
from django.utils import timezone

from jobs import access, events, notify
from jobs.exceptions import Forbidden, InvalidInput
from jobs.models import EventKind, Job, JobStatus
from jobs.services import rules
from jobs.services.actors import actor_resolve

BULK_REPRIORITISE_LIMIT = 10_000  # one transaction writes one event per job: keep it bounded
BULK_IDS_LIMIT = 1_000
_CHUNK = 500


def _uuids(*, field: str, values: Any) -> list[UUID]:
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
    actor = actor_resolve(user=user, actor=actor)
    priority = rules.priority_check(field="priority", value=priority)
    matching = Job.objects.filter(status=JobStatus.PENDING).exclude(priority=priority)
    if job_ids is not None:
        matching = matching.filter(uuid__in=_uuids(field="ids", values=job_ids))
    for field, value in (("dependency", dependency), ("kind", kind)):
        if value is not None:
            if not isinstance(value, str):
                raise InvalidInput(field, "must be a string")
            matching = matching.filter(**{field: value})
    if current_priority is not None:
        current = rules.priority_check(field="current_priority", value=current_priority)
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
