"""What the commands print for people (``--json`` prints the server's answers instead)."""

from __future__ import annotations

import json
from typing import Any


def _cell(value: Any) -> str:
    return "—" if value in (None, "") else str(value)


def table(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    """Rows as aligned columns, ``columns`` being (heading, key)."""
    cells = [[heading for heading, _ in columns]] + [[_cell(row.get(key)) for _, key in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "\n".join("  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip()
                     for line in cells)


JOB_COLUMNS = [("ID", "short"), ("KIND", "kind"), ("DEPENDENCY", "dependency"), ("PRIORITY", "priority"),
               ("STATUS", "status"), ("ATTEMPTS", "tries"), ("RUN AFTER", "run_after"), ("CREATED", "created_at")]


def jobs(rows: list[dict]) -> str:
    shaped = [{**job, "short": job["id"][:8], "tries": f"{job['attempts']}/{job['max_attempts']}"} for job in rows]
    return table(shaped, JOB_COLUMNS)


def job_line(job: dict, *, created: bool | None = None) -> str:
    """One job in a sentence: what ``submit``, ``cancel`` and ``retry`` print."""
    verb = "" if created is None else ("submitted " if created else "already stored (same idempotency key) ")
    when = f", runs after {job['run_after']}" if job.get("run_after") and job["status"] == "pending" else ""
    return f"{verb}{job['id']} {job['kind']} priority {job['priority']} {job['status']}{when}"


def waiting(w: dict | None) -> str:
    if not w:
        return "—"
    reason = w.get("reason")
    if reason == "scheduled":
        return f"scheduled for {w['until']}"
    if reason == "retry_scheduled":
        return f"retry scheduled for {w['until']}"
    if reason == "breaker_open":
        until = f" until {w['until']}" if w.get("until") else ""
        return f"held by breaker {w.get('dependency')} ({w.get('state')}){until}"
    if reason == "jobs_ahead":
        return f"{w['jobs_ahead']} jobs ahead"
    if reason == "next":
        return "next to run"
    if reason == "rate_limit":
        return f"held by {w.get('dependency')}'s rate limit {w.get('rate_limit')}; next start at {w.get('until')}"
    if reason in FLOW_LIMITS:
        latest = f", at the latest {w['at_latest']}" if w.get("at_latest") else ""
        return (f"held by {w.get('dependency')}'s {FLOW_LIMITS[reason]} ({w.get('in_flight')} of {w.get('limit')} "
                f"calls in flight); starts when a call in flight finishes{latest}")
    return json.dumps(w)


# The flow-control limits a ``waiting_for`` can name (docs/breakers.md, flow control).
FLOW_LIMITS = {
    "probing": "probe limit after failures",
    "slow_start": "slow start",
    "max_concurrency": "concurrency cap",
    "adaptive_concurrency": "adaptive concurrency limit",
}


def job_detail(job: dict) -> str:
    """A job's fields, then its timeline (every event, oldest first)."""
    fields = [
        ("id", job["id"]), ("kind", job["kind"]), ("dependency", job["dependency"]),
        ("priority", job["priority"]), ("status", job["status"]),
        ("attempts", f"{job['attempts']}/{job['max_attempts']}"), ("position", job.get("position")),
        ("waiting for", waiting(job.get("waiting_for"))), ("run after", job["run_after"]),
        ("created", job["created_at"]), ("started", job["started_at"]), ("finished", job["finished_at"]),
        ("last error", job["last_error"]), ("payload", json.dumps(job["payload"])),
        ("result", json.dumps(job["result"]) if job["result"] is not None else None),
    ]
    width = max(len(name) for name, _ in fields)
    lines = [f"{name.ljust(width)}  {_cell(value)}" for name, value in fields]
    lines.append("")
    lines.append("timeline:")
    for event in job.get("events", []):
        details = " ".join(f"{k}={json.dumps(v)}" for k, v in (event.get("details") or {}).items())
        lines.append(f"  {event['at']}  {event['kind']:<16} {event['actor']:<24} {details}".rstrip())
    return "\n".join(lines)


BREAKER_COLUMNS = [("NAME", "name"), ("STATE", "state"), ("AUTOMATIC", "shadow_state"), ("OVERRIDE", "forced"),
                   ("FAILURES", "counts"), ("RETRY AT", "retry_at"), ("HELD", "held"), ("PENDING", "pending")]


def breakers(rows: list[dict]) -> str:
    shaped = []
    for row in rows:
        override = row.get("override")
        forced = None
        if override:
            forced = f"forced {override['state']}" + (f" until {override['expires_at']}" if override.get("expires_at") else "")
        shaped.append({**row, "forced": forced, "counts": f"{row['failures']}/{row['threshold']}"})
    return table(shaped, BREAKER_COLUMNS)


def breaker_line(row: dict) -> str:
    override = row.get("override")
    why = f" (forced {override['state']}: {override['reason'] or 'no reason given'})" if override else ""
    return f"breaker {row['name']} is {row['state']}{why}"
