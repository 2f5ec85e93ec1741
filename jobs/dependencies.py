"""Named downstream dependencies and their settings (base URL, timeouts, breaker thresholds, flow control)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, fields
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from jobs import conf, http
from jobs.exceptions import InvalidInput

LOCAL = "local"
DEFAULT = "default"
VALIDATION = "validation"


@dataclass(frozen=True)
class Rate:
    """A rate limit: at most ``calls`` started per ``per_seconds`` across all workers."""

    calls: int
    per_seconds: float

    @property
    def interval(self) -> float:
        """Seconds between two starts (the GCRA emission interval)."""
        return self.per_seconds / self.calls

    def __str__(self) -> str:
        return f"{self.calls}/{_UNIT_NAMES[self.per_seconds]}"


@dataclass(frozen=True)
class Adaptive:
    """Adaptive (AIMD) concurrency between ``min`` and ``max`` calls in flight."""

    min: int = 1
    max: int = 64


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}
_UNIT_NAMES = {seconds: unit for unit, seconds in _UNITS.items()}
_RATE = re.compile(r"([1-9][0-9]{0,8})/([smh])")
MAX_CONCURRENCY_LIMIT = 100_000  # more than any fleet has slots; above it is a typo


def parse_rate(value: object) -> Rate:
    """``"N/s"``, ``"N/m"`` or ``"N/h"`` as a ``Rate``; ``ValueError`` saying what is wanted."""
    match = _RATE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError('must be a string "N/s", "N/m" or "N/h" with N a whole number from 1')
    return Rate(calls=int(match[1]), per_seconds=_UNITS[match[2]])


def parse_max_concurrency(value: object) -> int:
    """A cap on calls in flight: a whole number from 1; ``ValueError`` saying what is wanted."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CONCURRENCY_LIMIT:
        raise ValueError(f"must be a whole number from 1 to {MAX_CONCURRENCY_LIMIT}")
    return value


def parse_adaptive(value: object) -> Adaptive:
    """``{"mode": "adaptive", "min": 1, "max": 64}`` as ``Adaptive``; ``ValueError`` naming the key."""
    if not isinstance(value, dict):
        raise ValueError('must be an object like {"mode": "adaptive", "min": 1, "max": 64}')
    unknown = set(value) - {"mode", "min", "max"}
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)}; known: ['max', 'min', 'mode']")
    if value.get("mode") != "adaptive":
        raise ValueError('mode must be "adaptive"')
    bounds = {}
    for key, default in (("min", Adaptive.min), ("max", Adaptive.max)):
        try:
            bounds[key] = parse_max_concurrency(value.get(key, default))
        except ValueError as exc:
            raise ValueError(f"{key} {exc}") from None
    if bounds["min"] > bounds["max"]:
        raise ValueError("min must not be above max")
    return Adaptive(**bounds)


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
    # Flow control (docs/breakers.md): enforced at the claim, shared by every worker.
    max_concurrency: int | None = None  # calls in flight at once; None = no cap
    rate_limit: Rate | None = None  # calls started per period
    concurrency: Adaptive | None = None  # adaptive (AIMD) concurrency
    # Sent with every call to this dependency (e.g. Authorization): never shown, stored or logged.
    headers: tuple[tuple[str, str], ...] = ()

    def __repr__(self) -> str:  # keep header values out of logs and tracebacks
        return f"Dependency(name={self.name!r}, base_url={self.base_url!r}, headers={[n for n, _ in self.headers]})"


_OVERRIDES = {  # option -> the setting that applies it to every dependency
    "failure_threshold": "BREAKER_FAILURE_THRESHOLD",
    "reset_timeout": "BREAKER_RESET_TIMEOUT",
    "max_reset_timeout": "BREAKER_MAX_RESET_TIMEOUT",
}


def _global_overrides() -> dict:
    """RESILIENT_BREAKER_* environment variables apply to every dependency."""
    values = {key: conf.get(name) for key, name in _OVERRIDES.items()}
    return {key: value for key, value in values.items() if value is not None}


ENV_DEPENDENCIES = conf.SETTINGS["DEPENDENCIES_JSON"].env
# Everything configured() reads: it is rebuilt when any of them changes.
_SOURCES = ("DEFAULT_BASE_URL", "VALIDATION_URL", *_OVERRIDES.values(), "DEPENDENCIES_JSON")
_memo: tuple[Any, tuple, dict[str, Dependency]] | None = None


def configured() -> dict[str, Dependency]:
    """Every dependency: the built-in three, settings.RESILIENT["DEPENDENCIES"], RESILIENT_DEPENDENCIES.

    Remembered while the settings object and the environment variables it reads stay the same
    (the worker asks on every trip to the database; ``override_settings`` swaps the object)."""
    global _memo
    declared_setting = conf.get("DEPENDENCIES")
    sources = tuple(conf.get(name) for name in _SOURCES)
    if _memo is not None and _memo[0] is declared_setting and _memo[1] == sources:
        return dict(_memo[2])
    result = _build()
    _memo = (declared_setting, sources, result)
    return dict(result)


def _from_env() -> dict[str, dict]:
    """RESILIENT_DEPENDENCIES: a JSON object, dependency name -> options."""
    raw = conf.get("DEPENDENCIES_JSON").strip()
    if not raw:
        return {}
    try:
        declared = json.loads(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{ENV_DEPENDENCIES} is not valid JSON ({exc})") from None
    if not isinstance(declared, dict):
        raise ImproperlyConfigured(f"{ENV_DEPENDENCIES} must be a JSON object: dependency name -> options")
    return declared


def _positive(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and value > 0


def _not_negative(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and value >= 0


_RULES = {
    "connect_timeout": (_positive, "a number of seconds above 0"),
    "read_timeout": (_positive, "a number of seconds above 0"),
    "failure_threshold": (lambda v: not isinstance(v, bool) and isinstance(v, int) and v >= 1, "a whole number from 1"),
    "reset_timeout": (_not_negative, "a number of seconds, 0 or more"),
    "max_reset_timeout": (_not_negative, "a number of seconds, 0 or more"),
    "slow_call_seconds": (_not_negative, "a number of seconds, 0 or more"),
}


def _checked(source: str, name: Any, options: Any) -> dict[str, Any]:
    """``options`` of dependency ``name`` with their types checked; headers as a tuple of pairs."""
    where = f"{source}: dependency {name!r}"
    if not isinstance(name, str) or not name:
        raise ImproperlyConfigured(f"{where}: a dependency name must be a non-empty string")
    if not isinstance(options, dict):
        raise ImproperlyConfigured(f"{where}: options must be an object")
    known = {f.name for f in fields(Dependency)} - {"name"}
    unknown = set(options) - known
    if unknown:
        raise ImproperlyConfigured(f"{where}: unknown options {sorted(unknown)}; known: {sorted(known)}")
    result = dict(options)
    for key, (ok, wanted) in _RULES.items():
        if key in options and not ok(options[key]):
            raise ImproperlyConfigured(f"{where}: {key} must be {wanted}")
    if "base_url" in options:
        base_url = options["base_url"]
        if not isinstance(base_url, str):
            raise ImproperlyConfigured(f"{where}: base_url must be a string")
        if base_url:
            try:
                http.parse(base_url)
            except http.UnsafeURL as exc:
                raise ImproperlyConfigured(f"{where}: base_url: {exc}") from None
    if "headers" in options:
        result["headers"] = _headers(where, options["headers"])
    for key, parse in _PARSED.items():
        if key in options and options[key] is not None:
            try:
                result[key] = parse(options[key])
            except ValueError as exc:
                raise ImproperlyConfigured(f"{where}: {key} {exc}") from None
    return result


_PARSED = {  # flow-control options: None means "not limited"
    "max_concurrency": parse_max_concurrency,
    "rate_limit": parse_rate,
    "concurrency": parse_adaptive,
}


def _headers(where: str, headers: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(headers, dict):
        raise ImproperlyConfigured(f"{where}: headers must be an object of header names to strings")
    lowered = [name.lower() for name in headers if isinstance(name, str)]
    if len(set(lowered)) != len(lowered):
        raise ImproperlyConfigured(f"{where}: headers names the same header twice")
    for name, value in headers.items():
        problem = http.header_problem(name, value)
        if problem:
            raise ImproperlyConfigured(f"{where}: headers: {problem}")
    return tuple(headers.items())


def _build() -> dict[str, Dependency]:
    declared: dict[str, dict] = {
        LOCAL: {},
        DEFAULT: _checked("RESILIENT_DEFAULT_BASE_URL", DEFAULT,
                          {"base_url": conf.get("DEFAULT_BASE_URL")}),
        VALIDATION: _checked("VALIDATION_URL", VALIDATION,
                             {"base_url": conf.get("VALIDATION_URL"), "read_timeout": 0.5, "connect_timeout": 0.5}),
    }
    sources = (
        ('settings.RESILIENT["DEPENDENCIES"]', conf.get("DEPENDENCIES")),
        (ENV_DEPENDENCIES, _from_env()),  # the environment wins, option by option
    )
    for source, more in sources:
        for name, options in more.items():
            declared.setdefault(name, {}).update(_checked(source, name, options))
    overrides = _global_overrides()
    result = {}
    for name, options in declared.items():
        if options.get("headers") and not options.get("base_url"):
            # Checked once the sources are merged: a secret with no fixed destination is never safe.
            raise ImproperlyConfigured(f"dependency {name!r}: headers need a base_url (they are sent only under it)")
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
