"""Rules a submission and a resubmission share: priority, permissions, the pending cap, reasons."""

from __future__ import annotations

from typing import Any

from jobs import access, conf, validation
from jobs.exceptions import Forbidden, InvalidInput, TooManyPending
from jobs.handlers import registry
from jobs.models import (
    PRIORITY_DEFAULT,
    PRIORITY_EMERGENCY,
    PRIORITY_MAX,
    PRIORITY_MIN,
    Job,
    JobStatus,
)

MAX_REASON_CHARS = 1_000


def priority_resolve(*, priority: Any, emergency: Any) -> int:
    """The priority a submission asks for: explicit, or from the emergency flag, or the default."""
    if emergency is not None and not isinstance(emergency, bool):
        raise InvalidInput("emergency", "must be true or false")
    if priority is not None and emergency:
        raise InvalidInput("priority", "give priority or emergency, not both")
    if priority is None:
        return PRIORITY_EMERGENCY if emergency else PRIORITY_DEFAULT
    return priority_check(field="priority", value=priority)


def priority_check(*, field: str, value: Any) -> int:
    """``value`` as a priority in −100…100, else ``InvalidInput`` on ``field``."""
    return validation.check_int(field, value, low=PRIORITY_MIN, high=PRIORITY_MAX)


def reason_check(*, reason: Any) -> str:
    """An operator's reason: optional, a bounded string of text."""
    if reason is None:
        return ""
    if not isinstance(reason, str):
        raise InvalidInput("reason", "must be a string")
    if len(reason) > MAX_REASON_CHARS:
        raise InvalidInput("reason", f"must be at most {MAX_REASON_CHARS} characters")
    validation.check_text("reason", reason)
    return reason


def priority_check_allowed(*, user: Any, priority: int, operator_permission: str | None = None) -> None:
    """Priorities above the ceiling need ``jobs.submit_high_priority`` (or the operator's permission)."""
    ceiling = conf.get("PRIORITY_CEILING")
    if priority <= ceiling or access.has(user, access.HIGH_PRIORITY):
        return
    if operator_permission is not None and access.can_operate(user, operator_permission):
        return
    raise Forbidden(f"priority above {ceiling} needs the {access.HIGH_PRIORITY!r} permission")


def options_check_privileged(*, user: Any, job_kind: registry.JobKind, payload: dict, dependency: str) -> None:
    """A kind's privileged options (e.g. simulate's failure_rate) need ``jobs.tune_job_kinds``."""
    if job_kind.privileged is None or access.has(user, access.TUNE_KINDS):
        return
    needs = job_kind.privileged(payload, dependency)
    if needs:
        raise Forbidden(f"{needs} needs the {access.TUNE_KINDS!r} permission")


def pending_check_cap(*, user: Any, adding: int = 1) -> None:
    """At most RESILIENT_MAX_PENDING_PER_USER pending jobs per submitter (0: no cap), counting
    the ``adding`` jobs about to be stored (a batch must fit whole).

    Counted with a LIMIT, so the check costs at most ``cap`` index entries. Concurrent
    submissions of one user may pass it together: the cap is a guard rail, not an exact quota."""
    cap = conf.get("MAX_PENDING_PER_USER")
    if user is None or cap <= 0:
        return
    pending = Job.objects.filter(submitter_id=user.pk, status=JobStatus.PENDING)[:cap].count()
    if pending + adding > cap:
        if adding == 1:
            raise TooManyPending(
                f"you already have {cap} pending jobs (RESILIENT_MAX_PENDING_PER_USER); "
                "wait for some to run or cancel some"
            )
        raise TooManyPending(
            f"you have {pending} pending jobs and the batch adds {adding}, more than the cap of {cap} "
            "(RESILIENT_MAX_PENDING_PER_USER); send a smaller batch, or wait for some to run"
        )
