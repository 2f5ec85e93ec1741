"""Who may see and act on which jobs: the one policy every entry point goes through.

A user sees and acts on their own jobs. ``jobs.view_all_jobs`` sees every job; acting on a job
that is not yours needs the action's own permission on a staff account (``jobs.cancel_job``, ...).
``None`` is the system (the worker, management commands): it may do anything.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q

from jobs.exceptions import Forbidden, JobNotFound

VIEW_ALL = "jobs.view_all_jobs"
HIGH_PRIORITY = "jobs.submit_high_priority"
TUNE_KINDS = "jobs.tune_job_kinds"


def _active(user: Any) -> bool:
    return bool(user is not None and user.is_authenticated and user.is_active)


def has(user: Any, permission: str) -> bool:
    """True for the system and for active users holding ``permission`` (superusers hold all)."""
    return user is None or (_active(user) and user.has_perm(permission))


def can_view_all(user: Any) -> bool:
    """True for the system and for holders of ``jobs.view_all_jobs``."""
    return has(user, VIEW_ALL)


def can_operate(user: Any, permission: str) -> bool:
    """True when ``user`` may take an operator action on any job: staff with ``permission``."""
    return has(user, permission) and (user is None or user.is_staff)


def visible_filter(user: Any, *, through: str = "") -> Q:
    """The jobs ``user`` may see, as a filter (every job for the system and view-all holders).

    ``through`` filters another model by its job (``"job__"`` for JobEvent)."""
    if can_view_all(user):
        return Q()
    if not _active(user):
        return Q(pk__in=[])
    return Q(**{f"{through}submitter_id": user.pk})


def job_check_action(*, user: Any, submitter_id: int | None, permission: str) -> None:
    """Allow an action on a job: yours, or any job with the operator permission.

    A job the user cannot see answers ``JobNotFound`` (its existence is not revealed); a job they
    can see but not change answers ``Forbidden``."""
    if user is None or (_active(user) and submitter_id == user.pk):
        return
    if can_operate(user, permission):
        return
    if can_view_all(user):
        raise Forbidden(f"needs a staff account with the {permission!r} permission")
    raise JobNotFound("no such job")
