"""The protected-call client: run one call through a breaker outside the worker (admit, call, record)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from jobs.breakers import admission, rules, transitions
from jobs.exceptions import error_text

T = TypeVar("T")


def call_protected(name: str, func: Callable[[], T], *, owner: str | None = None, actor: str = rules.SYSTEM) -> T:
    """Run the sync ``func`` through ``name``'s breaker (admit, call, record). Raises CircuitOpen.

    No lock is held during the call (unlike pybreaker's ``call()``), so concurrent callers in a
    process do not serialise.
    """
    admitted = admission.breaker_admit(name=name, owner=owner or rules.default_owner())
    started = time.monotonic()
    try:
        result = func()
    except BaseException as exc:
        outcome = rules.classify(exc)
        transitions.breaker_record(name=name, outcome=outcome, admission=admitted,
                                   duration=time.monotonic() - started, error=error_text(exc),
                                   retry_after=getattr(exc, "retry_after", None), actor=actor)
        raise
    transitions.breaker_record(name=name, outcome=rules.Outcome.SUCCESS, admission=admitted,
                               duration=time.monotonic() - started, actor=actor)
    return result
