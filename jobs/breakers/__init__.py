"""Shared circuit breakers: one Breaker row per dependency, changed only by conditional UPDATEs.

Every process (web, any number of workers) reads and changes the same row, so a failure recorded
by one worker counts for all of them and an operator override is honoured everywhere at the next
claim. The worker's claim (``jobs.queue.jobs_claim``) is its admission: it reads ``claim_gates``
and takes the half-open trial lease in the claim's transaction; ``jobs.worker.outcomes`` then
records each finished job with ``breaker_record``. ``breaker_admit`` and ``call_protected`` serve
callers outside the worker; ``storage`` exposes the same row to plain pybreaker users (see docs/breakers.md).

rules (pure decisions) · flow (flow control's pure rules: probe limit, slow start, cap, rate) · sql · store (rows) · history (events, log lines) · holds (held jobs) ·
admission · transitions (the automatic state machine) · overrides · limits (operators' live limits) · protected · storage (pybreaker)
"""

from __future__ import annotations

from jobs.breakers import flow
from jobs.breakers.admission import (
    breaker_admit,
    rate_settle,
    rate_take,
    trial_acquire,
    trial_renew,
)
from jobs.breakers.history import recent_errors
from jobs.breakers.holds import HELD_EVENTS_LIMIT, held_events, held_logged, holds_read
from jobs.breakers.limits import breaker_limits_change, limits_view
from jobs.breakers.overrides import (
    MAX_REASON_CHARS,
    MAX_TTL_SECONDS,
    breaker_force_closed,
    breaker_force_open,
    breaker_release,
    breakers_expire_overrides,
)
from jobs.breakers.protected import call_protected
from jobs.breakers.rules import (
    SYSTEM,
    Admission,
    Decision,
    Outcome,
    classify,
    decide,
    default_owner,
    effective_state,
    override_in_force,
    success_changes_nothing,
)
from jobs.breakers.store import (
    breaker_row,
    breakers_ensure,
    breakers_lock,
    claim_gates,
    jobs_in_flight,
)
from jobs.breakers.transitions import breaker_record
from jobs.exceptions import CircuitOpen

__all__ = [
    "HELD_EVENTS_LIMIT", "MAX_REASON_CHARS", "MAX_TTL_SECONDS", "SYSTEM", "Admission", "CircuitOpen", "Decision", "Outcome",
    "breaker_admit", "breaker_limits_change", "breaker_force_closed", "breaker_force_open", "breaker_record",
    "breaker_release", "breaker_row", "breakers_ensure", "breakers_expire_overrides", "breakers_lock",
    "call_protected", "claim_gates", "classify", "decide", "default_owner", "effective_state", "flow",
    "held_events", "held_logged", "holds_read", "jobs_in_flight", "limits_view", "override_in_force", "rate_settle", "rate_take", "recent_errors",
    "success_changes_nothing", "trial_acquire", "trial_renew",
]
