"""Flow control's pure rules: how many calls a dependency may have in flight, and its rate limit.

No database access: every function judges the Breaker row and the Dependency it is handed. The
claim (``jobs.queue.claim``) enforces them; ``transitions`` moves the row's ``probe_window``.

- Probe, don't flood: from a dependency's first counted failure until its next success, and
  while no success is on record since its last failure, trip or close (``probe_window == 0``), at most
  ``max(1, failure_threshold - failures)`` calls are in flight. A dead downstream so receives at
  most ``failure_threshold`` calls before its breaker opens, however many workers claim.
- Slow start: each success adds one to the window (doubling it per round of calls, as TCP's slow
  start does) until ``SLOW_START_CEILING`` or the dependency's cap; from there no probe limit. A
  failure keeps the window it ends (``probing`` is ``failures > 0``); the next success resumes it
  whole after one failure, from half of it after a run of them (fast recovery). A trip and a
  close reset it to 0. A success that widens the window wakes workers (``transitions``).
- Cap (``max_concurrency``), adaptive limit (``concurrency``) and rate limit (``rate_limit``):
  configured per dependency, overridden live by operators (``Breaker.limits``).

``local`` (the in-process kinds) has no probe limit: there is no downstream to flood.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from jobs import dependencies
from jobs.breakers import rules
from jobs.models import BreakerOverride, BreakerState

if TYPE_CHECKING:
    from jobs.models import Breaker

SLOW_START_CEILING = 64  # a window this wide has proved the dependency: no probe limit beyond it
LIMIT_KEYS = ("max_concurrency", "rate_limit", "adaptive_min", "adaptive_max")


@dataclass(frozen=True)
class Limits:
    """The limits in force for a dependency: configured, with the operators' live ones on top."""

    max_concurrency: int | None = None
    rate: dependencies.Rate | None = None
    adaptive: dependencies.Adaptive | None = None


def limits(row: Breaker | None, dep: dependencies.Dependency) -> Limits:
    """Configured limits with the row's live overrides (a key present wins, null lifts)."""
    live: dict[str, Any] = (row.limits if row is not None else None) or {}
    cap = live["max_concurrency"] if "max_concurrency" in live else dep.max_concurrency
    rate = dep.rate_limit
    if "rate_limit" in live:
        rate = dependencies.parse_rate(live["rate_limit"]) if live["rate_limit"] is not None else None
    adaptive = dep.concurrency
    if adaptive is not None and ("adaptive_min" in live or "adaptive_max" in live):
        adaptive = dependencies.Adaptive(min=live.get("adaptive_min") or adaptive.min,
                                         max=live.get("adaptive_max") or adaptive.max)
    return Limits(max_concurrency=cap, rate=rate, adaptive=adaptive)


def probing(row: Breaker) -> bool:
    """Is the dependency unproven: a failure counted, or no success since the last reset?"""
    return row.failures > 0 or row.probe_window == 0


def probe_allowance(row: Breaker, dep: dependencies.Dependency) -> int | None:
    """Calls in flight the failure history allows (None: proven, no probe limit). ``local`` runs
    in the worker itself (``noop``, ``simulate``): nothing downstream to flood, no probe limit."""
    if dep.name == dependencies.LOCAL:
        return None
    if probing(row):
        return max(1, dep.failure_threshold - row.failures)
    return row.probe_window if row.probe_window < growth_ceiling(row, dep) else None


def growth_ceiling(row: Breaker | None, dep: dependencies.Dependency) -> int:
    """Where slow start stops: the cap when one is lower than ``SLOW_START_CEILING``."""
    cap = limits(row, dep).max_concurrency
    return min(SLOW_START_CEILING, cap) if cap else SLOW_START_CEILING


def adaptive_limit(row: Breaker, bounds: dependencies.Adaptive) -> int:
    """The AIMD limit as a whole number of calls, within its bounds (the start: ``min``)."""
    value = row.adaptive_limit if row.adaptive_limit is not None else bounds.min
    return max(bounds.min, min(bounds.max, math.floor(value)))


@dataclass(frozen=True)
class Allowance:
    """What flow control lets a dependency do at one claim. ``calls``: in flight at most (None:
    no limit); ``why``: the tightest limit's name; ``rate``: the rate limit to take a slot of."""

    calls: int | None
    why: str = ""
    rate: dependencies.Rate | None = None

    @property
    def limited(self) -> bool:
        return self.calls is not None or self.rate is not None


UNLIMITED = Allowance(calls=None)


def allowance(row: Breaker, dep: dependencies.Dependency, now: datetime) -> Allowance:
    """The dependency's flow-control allowance at ``now`` (only meaningful while its breaker admits).

    Forced closed drops the probe limit (the operator vouches for the dependency) but keeps the
    cap and the rate limit; the half-open trial is its own limit of one (``rules``)."""
    in_force = limits(row, dep)
    candidates: list[tuple[int, str]] = []
    forced_closed = rules.override_in_force(row, now) == BreakerOverride.CLOSED
    if row.state == BreakerState.CLOSED and not forced_closed:
        probe = probe_allowance(row, dep)
        if probe is not None:
            candidates.append((probe, "probing" if probing(row) else "slow_start"))
    if in_force.max_concurrency is not None:
        candidates.append((in_force.max_concurrency, "max_concurrency"))
    if in_force.adaptive is not None:
        candidates.append((adaptive_limit(row, in_force.adaptive), "adaptive_concurrency"))
    if not candidates and in_force.rate is None:
        return UNLIMITED
    calls, why = min(candidates) if candidates else (None, "")
    return Allowance(calls=calls, why=why, rate=in_force.rate)


def rate_admits(row: Breaker, rate: dependencies.Rate | None, now: float) -> bool:
    """May a call start at ``now`` (epoch seconds) under the rate limit? GCRA with no burst."""
    return rate is None or row.rate_tat is None or row.rate_tat <= now


def rate_next(row: Breaker, rate: dependencies.Rate, now: float, starts: int = 1) -> float:
    """The theoretical arrival time after ``starts`` more calls start at ``now``."""
    return max(row.rate_tat or now, now) + starts * rate.interval


# A rate limit lets one claim start this long's worth of its calls at once (at least one): a
# generous limit (1,000/s: 10 at once) then costs a worker no trip to the database per job, and a
# one-second window holds at most N + max(1, N / 100) starts. Below 200/s it is one per claim.
RATE_BURST_SECONDS = 0.01


def rate_starts(rate: dependencies.Rate) -> int:
    """How many calls one claim may start at once under ``rate`` (its slots taken together)."""
    return max(1, math.floor(rate.calls / rate.per_seconds * RATE_BURST_SECONDS))


def window_after_success(row: Breaker, dep: dependencies.Dependency) -> int:
    """The slow-start window once a success is recorded: probing → the probe allowance + 1, or
    the window held before the failures if more — whole after one failure (a random failure on a
    busy healthy dependency then costs only the moment until the next success, and a proven
    dependency stays proven), halved after a run of them (TCP's fast recovery)."""
    ceiling = growth_ceiling(row, dep)
    if probing(row):
        held = row.probe_window if row.failures <= 1 else row.probe_window // 2
        return min(ceiling, max(max(1, dep.failure_threshold - row.failures) + 1, held))
    return min(ceiling, row.probe_window + 1)


def success_grows_nothing(row: Breaker, dep: dependencies.Dependency) -> bool:
    """Would a success leave the row as it is (the proven, healthy path)? Never for an adaptive
    dependency: each success may grow its limit."""
    if limits(row, dep).adaptive is not None:
        return False
    return dep.name == dependencies.LOCAL or (not probing(row) and row.probe_window >= growth_ceiling(row, dep))


# Adaptive concurrency: AIMD as in Netflix's concurrency-limits (AIMDLimit). A success while the
# limit is in use (calls in flight at least half of it) adds 1 / limit: one per round of calls at
# the limit. A counted failure (error, timeout, 5xx such as 503, a slow call) multiplies it by
# ADAPTIVE_BACKOFF (TCP's halving: Netflix's 0.9 overshoots a small downstream every few calls),
# once per round: a failure of a call started when more were in flight than the limit now allows
# was admitted before the cut and says nothing new. The limit stays within its bounds.
ADAPTIVE_BACKOFF = 0.5


def adaptive_cut_due(limit: float, in_flight: int) -> bool:
    """Does this failure cut the limit: were no more calls in flight than it allows now?"""
    return in_flight + 1 <= math.floor(limit) + 1


def adaptive_in_use(limit: float, in_flight: int) -> bool:
    """Is the limit in use: at least half of it in flight (counting the call just finished)?"""
    return (in_flight + 1) * 2 >= limit


HEALTHY_ROUND = "healthy round"
_HTTP_STATUS = re.compile(r"HTTP (\d{3}) ")


def adaptive_cause(*, success: bool, error: str) -> str:
    """Why the adaptive limit moved, in the words the card and the API show: "healthy round" for
    growth; for a cut the counted failure's kind ("503 from downstream", "timeout", "slow call")."""
    if success:
        return HEALTHY_ROUND
    if error.startswith("slow call"):
        return "slow call"
    if error.startswith("timeout"):
        return "timeout"
    status = _HTTP_STATUS.match(error)
    if status:
        return f"{status[1]} from downstream"
    return "error calling downstream"


def adaptive_change(row: Breaker) -> dict[str, Any] | None:
    """The adaptive limit's last change in whole calls (``{at, from, to, cause}``), None before any."""
    if row.adaptive_changed_at is None:
        return None
    return {"at": row.adaptive_changed_at.isoformat(), "from": math.floor(row.adaptive_change_from or 0),
            "to": math.floor(row.adaptive_change_to or 0), "cause": row.adaptive_change_cause}
