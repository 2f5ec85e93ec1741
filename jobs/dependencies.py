"""Named downstream dependencies and their settings (base URL, timeouts, breaker thresholds)."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Any

from django.conf import settings

from jobs.exceptions import InvalidInput

LOCAL = "local"
DEFAULT = "default"
VALIDATION = "validation"


@dataclass(frozen=True)
class Dependency:
    name: str
    base_url: str = ""
    connect_timeout: float = 3.05
    read_timeout: float = 10.0
    failure_threshold: int = 3
    reset_timeout: float = 30.0
    max_reset_timeout: float = 600.0
    slow_call_seconds: float = 0.0  # 0 = slow calls are not failures


def _global_overrides() -> dict:
    """RESILIENT_BREAKER_* environment variables apply to every dependency."""
    env = {
        "failure_threshold": ("RESILIENT_BREAKER_FAILURE_THRESHOLD", int),
        "reset_timeout": ("RESILIENT_BREAKER_RESET_TIMEOUT", float),
        "max_reset_timeout": ("RESILIENT_BREAKER_MAX_RESET_TIMEOUT", float),
    }
    return {key: cast(os.environ[var]) for key, (var, cast) in env.items() if os.environ.get(var)}


_ENV = ("RESILIENT_DEFAULT_BASE_URL", "VALIDATION_URL", "RESILIENT_BREAKER_FAILURE_THRESHOLD",
        "RESILIENT_BREAKER_RESET_TIMEOUT", "RESILIENT_BREAKER_MAX_RESET_TIMEOUT")
_memo: tuple[Any, tuple, dict[str, Dependency]] | None = None


def configured() -> dict[str, Dependency]:
    """Every dependency: the built-in three plus settings.RESILIENT["DEPENDENCIES"].

    Remembered while the settings object and the environment variables it reads stay the same
    (the worker asks on every trip to the database; ``override_settings`` swaps the object)."""
    global _memo
    declared_setting = getattr(settings, "RESILIENT", {}).get("DEPENDENCIES")
    env = tuple(os.environ.get(name) for name in _ENV)
    if _memo is not None and _memo[0] is declared_setting and _memo[1] == env:
        return dict(_memo[2])
    result = _build()
    _memo = (declared_setting, env, result)
    return dict(result)


def _build() -> dict[str, Dependency]:
    declared: dict[str, dict] = {
        LOCAL: {},
        DEFAULT: {"base_url": os.environ.get("RESILIENT_DEFAULT_BASE_URL", "")},
        VALIDATION: {"base_url": os.environ.get("VALIDATION_URL", ""), "read_timeout": 0.5, "connect_timeout": 0.5},
    }
    for name, options in getattr(settings, "RESILIENT", {}).get("DEPENDENCIES", {}).items():
        declared.setdefault(name, {}).update(options)
    known = {f.name for f in fields(Dependency)}
    overrides = _global_overrides()
    result = {}
    for name, options in declared.items():
        unknown = set(options) - known
        if unknown:
            raise ValueError(f"dependency {name!r}: unknown options {sorted(unknown)}")
        result[name] = Dependency(name=name, **{**overrides, **options})
    return result


def get(name: str) -> Dependency:
    """The dependency ``name``; ``InvalidInput`` on field ``dependency`` when unknown."""
    deps = configured()
    try:
        return deps[name]
    except (KeyError, TypeError):
        raise InvalidInput(
            "dependency", f"unknown dependency {name!r}; known: {', '.join(sorted(deps))}"
        ) from None
