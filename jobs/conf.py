"""Resilient's own settings: every ``RESILIENT_*`` name, its default and its type, in one table.

Read at call time, never at import time, so tests can use ``override_settings`` and
``monkeypatch.setenv``: ``settings.RESILIENT[name]`` wins, then the environment variable, then our
default. A few knobs are Django's own settings, read once by ``resilient.settings`` at startup.
Pure: imports no models (``resilient.settings`` imports it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from django.conf import settings


@dataclass(frozen=True)
class Setting:
    """One knob: its default, the type an environment string becomes, and its variable."""

    default: Any
    env: str | None  # the environment variable that sets it; None: settings.RESILIENT only
    cast: type | None = None  # how an environment string becomes a value; None: the default's type
    in_settings: bool = True  # False: the environment alone sets it (no settings.RESILIENT key)


def _env(name: str, default: Any, **options: Any) -> Setting:
    return Setting(default, f"RESILIENT_{name}", **options)


SETTINGS: dict[str, Setting] = {
    # Worker
    "POLL_INTERVAL": _env("POLL_INTERVAL", 1.0),  # seconds between polls when no wake-up arrives
    "LEASE_SECONDS": _env("LEASE_SECONDS", 60.0),  # a claimed job's lease; renewed while it runs
    "SHUTDOWN_GRACE": _env("SHUTDOWN_GRACE", 30.0),  # seconds a stopping worker lets its running job finish
    # jobs one worker runs at once (and claims per transaction at most)
    "WORKER_CONCURRENCY": _env("WORKER_CONCURRENCY", 10),
    "WORKER_DB_CONN_MAX_AGE": _env("WORKER_DB_CONN_MAX_AGE", 300),  # seconds a worker keeps its connection
    "RETRY_BACKOFF_BASE": _env("RETRY_BACKOFF_BASE", 1.0),
    "RETRY_BACKOFF_MAX": _env("RETRY_BACKOFF_MAX", 300.0),
    "DEFAULT_MAX_ATTEMPTS": Setting(5, None),
    # Input limits
    "MAX_PAYLOAD_BYTES": _env("MAX_PAYLOAD_BYTES", 256 * 1024),
    "MAX_JSON_DEPTH": _env("MAX_JSON_DEPTH", 32),
    "MAX_IDEMPOTENCY_KEY_LENGTH": Setting(200, None),
    "MAX_BATCH": _env("MAX_BATCH", 1000),  # jobs in one POST /api/jobs/bulk/
    # the body limit of POST /api/jobs/bulk/ (other requests: RESILIENT_MAX_BODY_BYTES); 0: it
    # scales with the batch, BATCH_BODY_BYTES_PER_JOB per job of RESILIENT_MAX_BATCH (jobs.api.parsers)
    "MAX_BATCH_BODY_BYTES": _env("MAX_BATCH_BODY_BYTES", 0),
    "MAX_DELAY": _env("MAX_DELAY", 365 * 86400.0),  # seconds ahead a job may be scheduled (run_after, delay_seconds)
    # Fairness between users
    "PRIORITY_CEILING": _env("PRIORITY_CEILING", 10),  # higher priorities need jobs.submit_high_priority
    "MAX_PENDING_PER_USER": _env("MAX_PENDING_PER_USER", 10_000),  # pending jobs per submitter (0: no cap)
    # Handlers
    "HANDLER_MODULES": _env("HANDLER_MODULES", []),  # extra modules that register job kinds with @handler
    "HTTP_ALLOWED_HOSTS": _env("HTTP_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "::1"]),
    "HTTP_RESULT_EXCERPT_BYTES": Setting(2048, None),
    # Dependencies (jobs.dependencies merges and checks them)
    "DEPENDENCIES": Setting({}, None),  # name -> options; RESILIENT_DEPENDENCIES adds to it, option by option
    "DEPENDENCIES_JSON": _env("DEPENDENCIES", "", in_settings=False),  # the same, as a JSON object
    "DEFAULT_BASE_URL": _env("DEFAULT_BASE_URL", "", in_settings=False),  # the `default` dependency
    "VALIDATION_URL": Setting("", "VALIDATION_URL", in_settings=False),  # the write-up's name, no prefix
    # for every dependency, under its own options
    "BREAKER_FAILURE_THRESHOLD": _env("BREAKER_FAILURE_THRESHOLD", None, cast=int, in_settings=False),
    "BREAKER_RESET_TIMEOUT": _env("BREAKER_RESET_TIMEOUT", None, cast=float, in_settings=False),
    "BREAKER_MAX_RESET_TIMEOUT": _env("BREAKER_MAX_RESET_TIMEOUT", None, cast=float, in_settings=False),
    # Operations
    "READY_WORKER_SECONDS": _env("READY_WORKER_SECONDS", 60.0),  # /readyz wants a heartbeat at most this old
    "READY_REQUIRE_WORKER": _env("READY_REQUIRE_WORKER", True),  # False: web nodes are ready without a worker
    "READY_CHANNEL_TIMEOUT": _env("READY_CHANNEL_TIMEOUT", 2.0),  # seconds for the channel round trip in /readyz
    "METRICS_ENABLED": _env("METRICS_ENABLED", True),  # False: /metrics answers 404
    "METRICS_TOKEN": _env("METRICS_TOKEN", ""),  # set: /metrics needs "Authorization: Bearer <token>"
    "METRICS_WINDOW": _env("METRICS_WINDOW", 300.0),  # seconds of finished jobs behind the recent-window metrics
    # Retention (jobs.services.retention): 0 keeps that kind of row forever
    "FINISHED_RETENTION_SECONDS": _env("FINISHED_RETENTION_SECONDS", 7 * 86400.0),  # succeeded, cancelled
    "FAILED_RETENTION_SECONDS": _env("FAILED_RETENTION_SECONDS", 30 * 86400.0),
    "BREAKER_EVENT_RETENTION_SECONDS": _env("BREAKER_EVENT_RETENTION_SECONDS", 30 * 86400.0),
    "PRUNE_INTERVAL": _env("PRUNE_INTERVAL", 60.0),  # seconds between prunes, across all workers
    "PRUNE_BATCH": _env("PRUNE_BATCH", 500),  # rows per short delete transaction
    "SUBMIT_RATE": _env("SUBMIT_RATE", "6000/min"),  # per-user API submission throttle (DRF rate syntax)
    "LOGIN_MAX_FAILURES": _env("LOGIN_MAX_FAILURES", 10),  # failed logins per (client address, username)...
    "LOGIN_WINDOW": _env("LOGIN_WINDOW", 300),  # ...per this many seconds; then 429 until the window passes
}

# Django's own settings that resilient.settings reads from these variables once, at startup.
STARTUP: dict[str, Setting] = {
    "VAR_DIR": _env("VAR_DIR", ""),  # "": var/ beside manage.py
    "HTTPS": _env("HTTPS", False),
    "HSTS_SECONDS": _env("HSTS_SECONDS", 31_536_000),
    "HSTS_INCLUDE_SUBDOMAINS": _env("HSTS_INCLUDE_SUBDOMAINS", True),
    "HSTS_PRELOAD": _env("HSTS_PRELOAD", True),
    "PROXY_SSL_HEADER": _env("PROXY_SSL_HEADER", False),
    "CHANNEL_CAPACITY": _env("CHANNEL_CAPACITY", 1000),
    "MAX_BODY_BYTES": _env("MAX_BODY_BYTES", 1024 * 1024),
    "PAGE_SIZE": _env("PAGE_SIZE", 50),
}

DEFAULTS: dict[str, Any] = {name: setting.default for name, setting in SETTINGS.items() if setting.in_settings}

_TRUE = {"1", "true", "yes", "on"}


def get(name: str) -> Any:
    """Setting ``name``: settings.RESILIENT, else its environment variable, else our default; typed."""
    setting = SETTINGS[name]
    declared = getattr(settings, "RESILIENT", {}) if setting.in_settings else {}
    if name in declared:
        return _coerce(setting, declared[name])
    return _from_env(setting)


def startup(name: str) -> Any:
    """A Django setting's knob from the environment (for resilient.settings, at import)."""
    return _from_env(STARTUP[name])


def _from_env(setting: Setting) -> Any:
    raw = os.environ.get(setting.env) if setting.env else None
    return setting.default if raw in (None, "") else _coerce(setting, raw)


def _coerce(setting: Setting, value: Any) -> Any:
    default = setting.default
    if isinstance(default, list) and isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(default, bool):
        return value.strip().lower() in _TRUE if isinstance(value, str) else bool(value)
    wanted = setting.cast or type(default)
    return wanted(value) if wanted in (int, float) else value
