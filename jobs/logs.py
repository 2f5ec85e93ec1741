"""Structured log lines: one per job transition (and per breaker transition).

Fields travel in ``extra=`` so ``JsonFormatter`` (``LOG_FORMAT=json``) emits them as JSON keys,
while the plain-text message repeats them as ``key=value`` for humans and grep. Pure: no models.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

job_log = logging.getLogger("resilient.jobs")
breaker_log = logging.getLogger("resilient.breakers")

# Attributes every LogRecord has; anything else on a record came in through ``extra=``.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the ``extra=`` fields, exc_info."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def _text(fields: dict[str, Any]) -> str:
    parts = []
    for name, value in fields.items():
        if value is None:
            continue
        if name == "duration":
            value = f"{value:.3f}s"
        elif isinstance(value, str) and (" " in value or not value):
            value = repr(value)
        parts.append(f"{name}={value}")
    return " ".join(parts)


def job_transition(event: str, job: Any, *, attempt: int | None = None, level: int = logging.INFO, **fields: Any) -> None:
    """Log one job transition (``submitted``, ``claimed``, ``succeeded``, ...) with the job's fields."""
    if not job_log.isEnabledFor(level):
        return
    data = {
        "job": job.short_id,
        "kind": job.kind,
        "dependency": job.dependency,
        "priority": job.priority,
        "attempt": job.attempts if attempt is None else attempt,
        **fields,
    }
    job_log.log(level, "job %s %s", event, _text(data), extra={"event": f"job.{event}", "job_id": str(job.uuid), **data})


def breaker_transition(
    dependency: str, *, from_state: str, to_state: str, actor: str, reason: str = "", kind: str = "",
    level: int = logging.WARNING, **fields: Any,
) -> None:
    """Log one breaker transition or override (``jobs.breakers`` calls this with the event's
    ``kind``: opened, half_opened, reopened, closed, forced_open, released, ...)."""
    data = {"dependency": dependency, "from_state": from_state, "to_state": to_state, "actor": actor, "reason": reason or None, **fields}
    breaker_log.log(
        level, "breaker %s %s", kind or to_state, _text(data),
        extra={"event": f"breaker.{kind}" if kind else "breaker.transition", **({"kind": kind} if kind else {}), **data},
    )
