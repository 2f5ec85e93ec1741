"""Operator commands that arrive over the dashboard socket: check the permission, call one
service, translate the outcome. Sync code (run through ``database_sync_to_async``).

A command is ``{"action": ..., "ref": <anything the client wants echoed>, ...}``; the reply is
``{"type": "result", "ref", "action", "ok": true, ...}`` or ``{"type": "error", "ref", "action",
"field"?, "message", "code"}`` with the same rules and messages as the REST API.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django.core.exceptions import PermissionDenied
from rest_framework.exceptions import APIException

from dashboard import access, throttle
from jobs import breakers, errors, services
from jobs.exceptions import Forbidden, InvalidInput, ResilientError

log = logging.getLogger("resilient.dashboard")


@dataclass(frozen=True)
class Command:
    permission: str
    run: Callable[[dict[str, Any], Any], dict[str, Any]]  # (message, the acting user)
    fields: frozenset[str]
    throttled: bool = False  # counts against the per-user submission throttle, as POST /api/jobs/


def _job_id(message: dict[str, Any]) -> UUID:
    value = message.get("id")
    try:
        return UUID(value)
    except (TypeError, ValueError, AttributeError):
        raise InvalidInput("id", "must be a job id (UUID)") from None


def _required(message: dict[str, Any], field: str) -> Any:
    if field not in message:
        raise InvalidInput(field, "this field is required")
    return message[field]


def _job(job) -> dict[str, Any]:
    return {"id": str(job.uuid), "status": job.status, "priority": job.priority}


def _reprioritise(message, user):
    job = services.job_reprioritise(job_id=_job_id(message), priority=_required(message, "priority"), user=user)
    return {"job": _job(job)}


def _cancel(message, user):
    return {"job": _job(services.job_cancel(job_id=_job_id(message), user=user, reason=message.get("reason") or ""))}


def _retry(message, user):
    return {"job": _job(services.job_retry(job_id=_job_id(message), user=user))}


def _bulk_reprioritise(message, user):
    selection = message.get("filter")
    if selection is not None and not isinstance(selection, dict):
        raise InvalidInput("filter", "must be an object with dependency, kind and/or priority")
    selection = selection or {}
    unknown = sorted(set(selection) - {"dependency", "kind", "priority"})
    if unknown:
        raise InvalidInput("filter", f"unknown key {unknown[0]!r}; allowed: dependency, kind, priority")
    if message.get("ids") is None and not selection and not message.get("all"):
        raise InvalidInput("ids", "select jobs, or give a filter (or all: true)")
    dry_run = message.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise InvalidInput("dry_run", "must be true or false")
    count = services.jobs_bulk_reprioritise(
        priority=_required(message, "priority"),
        user=user,
        job_ids=message.get("ids"),
        dependency=selection.get("dependency") or None,
        kind=selection.get("kind") or None,
        current_priority=selection.get("priority"),
        dry_run=dry_run,
    )
    return {"count": count, "dry_run": dry_run}


def _submit(message, user):
    # The schedule goes to the service as given: it checks it exactly as for POST /api/jobs/.
    job, created = services.job_submit(
        kind=_required(message, "kind"),
        payload=message.get("payload"),
        priority=message.get("priority"),
        dependency=message.get("dependency") or None,
        run_after=message.get("run_after"),
        delay_seconds=message.get("delay_seconds"),
        submitter=user,
    )
    return {"job": {**_job(job), "run_after": job.run_after.isoformat()}, "created": created}


def _breaker(row) -> dict[str, Any]:
    return {"name": row.name, "state": row.state, "override": row.override,
            "override_expires_at": row.override_expires_at.isoformat() if row.override_expires_at else None}


def _breaker_command(service: Callable[..., Any]) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    def run(message: dict[str, Any], user: Any) -> dict[str, Any]:
        # Same input rules as POST /api/breakers/{name}/...: the service checks reason and ttl.
        kwargs = {"name": _required(message, "name"), "actor": services.actor_name(user), "reason": message.get("reason")}
        if "ttl_seconds" in message:
            kwargs["ttl_seconds"] = message["ttl_seconds"]
        return {"breaker": _breaker(service(**kwargs))}

    return run


def _breaker_limits(message: dict[str, Any], user: Any) -> dict[str, Any]:
    # Same input rules as PATCH /api/breakers/{name}/: the service checks every value and the reason.
    changes = {k: message[k] for k in breakers.limits.FIELDS if k in message}
    row = breakers.breaker_limits_change(name=_required(message, "name"), actor=services.actor_name(user),
                                         reason=message.get("reason"), changes=changes)
    return {"breaker": {**_breaker(row), "limits": row.limits}}


COMMON = frozenset({"action", "ref"})
COMMANDS: dict[str, Command] = {
    "reprioritise": Command("jobs.reprioritise_job", _reprioritise, COMMON | {"id", "priority"}),
    "cancel": Command("jobs.cancel_job", _cancel, COMMON | {"id", "reason"}),
    "retry": Command("jobs.retry_job", _retry, COMMON | {"id"}),
    "bulk_reprioritise": Command(
        "jobs.reprioritise_job", _bulk_reprioritise, COMMON | {"ids", "filter", "all", "priority", "dry_run"}
    ),
    "submit": Command(
        "jobs.add_job", _submit, COMMON | {"kind", "payload", "priority", "dependency", "run_after", "delay_seconds"},
        throttled=True,
    ),
    "breaker_force_open": Command(
        "jobs.override_breaker", _breaker_command(breakers.breaker_force_open), COMMON | {"name", "reason", "ttl_seconds"}
    ),
    "breaker_force_closed": Command(
        "jobs.override_breaker", _breaker_command(breakers.breaker_force_closed), COMMON | {"name", "reason", "ttl_seconds"}
    ),
    "breaker_release": Command(
        "jobs.override_breaker", _breaker_command(breakers.breaker_release), COMMON | {"name", "reason", "ttl_seconds"}
    ),
    "breaker_limits": Command(
        "jobs.override_breaker", _breaker_limits, COMMON | {"name", "reason", *breakers.limits.FIELDS}
    ),
}


RESYNC = "resync"  # not a command: the socket's request for the whole state again (dashboard.consumers)


def is_resync(message: Any) -> bool:
    """``{"action": "resync", "ref"?}``: a client that saw a gap in the change stream."""
    return isinstance(message, dict) and message.get("action") == RESYNC and set(message) <= COMMON


def allowed_actions(user: Any) -> list[str]:
    """The actions ``user`` may take (the page hides the controls for the others)."""
    return sorted(name for name, command in COMMANDS.items() if user.is_staff and user.has_perm(command.permission))


def refusal_reply(refusal: access.Refusal, *, message: Any) -> dict[str, Any]:
    """The error sent before the socket closes: the session ended or dashboard access is gone."""
    ref, action = (message.get("ref"), message.get("action")) if isinstance(message, dict) else (None, None)
    return {"type": "error", "ref": ref, "action": action, "field": None, "message": refusal.message, "code": refusal.code}


def command_receive(*, session_key: str | None, user_id: Any, message: Any) -> tuple[dict[str, Any], access.Refusal | None]:
    """Check the session and the account afresh (a user instance caches its permissions), then
    run the command; the reply and, when the socket must close, why."""
    try:
        user, refusal = access.operator(session_key, user_id=user_id)
    except Exception:
        log.exception("dashboard: could not check the session")
        return _server_error(message), None
    if refusal is not None:
        return refusal_reply(refusal, message=message), refusal
    return command_run(user=user, message=message), None


def _server_error(message: Any) -> dict[str, Any]:
    ref, action = (message.get("ref"), message.get("action")) if isinstance(message, dict) else (None, None)
    return {"type": "error", "ref": ref, "action": action, "field": None,
            "message": "the server could not run this command; its log says why", "code": "server_error"}


def _error_reply(reply: dict[str, Any], error: ResilientError) -> dict[str, Any]:
    """A domain error as the socket reply, described as the REST API describes it."""
    return {**reply, **errors.error_socket_fields(payload=errors.error_describe(error=error))}


def command_run(*, user: Any, message: Any) -> dict[str, Any]:
    """Run one operator command for ``user``; always returns a reply, never raises for bad input."""
    if not isinstance(message, dict):
        return {"type": "error", "ref": None, "action": None, "field": None, "message": "a command must be a JSON object", "code": "invalid"}
    ref, action = message.get("ref"), message.get("action")
    reply = {"ref": ref, "action": action}
    command = COMMANDS.get(action) if isinstance(action, str) else None
    if command is None:
        return _error_reply(reply, InvalidInput("action", f"unknown action; allowed: {', '.join(sorted(COMMANDS))}"))
    if not (user.is_staff and user.has_perm(command.permission)):
        return _error_reply(reply, Forbidden(f"needs the {command.permission!r} permission"))
    unknown = sorted(set(message) - command.fields)
    if unknown:
        return _error_reply(reply, InvalidInput(unknown[0], f"unknown field; allowed: {', '.join(sorted(command.fields - COMMON))}"))
    try:
        if command.throttled:
            throttle.submission_count(user)
        result = command.run(message, user)
    except ResilientError as exc:
        return _error_reply(reply, exc)
    except PermissionDenied as exc:  # Django's, e.g. from a service enforcing who owns a job
        payload = errors.ErrorPayload(http_status=403, code="permission_denied", message=str(exc) or "permission denied")
        return {**reply, **errors.error_socket_fields(payload=payload)}
    except APIException as exc:  # DRF's, e.g. Throttled: the REST API's message and code
        wait = getattr(exc, "wait", None)
        payload = errors.ErrorPayload(http_status=exc.status_code, code=exc.default_code, message=str(exc.detail),
                                      retry_after=math.ceil(wait) if wait is not None else None)
        return {**reply, **errors.error_socket_fields(payload=payload)}
    except Exception:
        # Whatever went wrong, the operator gets an answer and keeps the socket.
        log.exception("dashboard command %r failed", action)
        return _server_error(message)
    return {**reply, "type": "result", "ok": True, **result}
