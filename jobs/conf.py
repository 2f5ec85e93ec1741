"""Resilient's own settings, read lazily from ``settings.RESILIENT`` with our defaults.

Read at call time, never at import time, so tests can use ``override_settings``.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # Worker
    "POLL_INTERVAL": 1.0,  # seconds between polls when no wake-up arrives
    "LEASE_SECONDS": 60.0,  # a claimed job's lease; renewed while it runs
    "SHUTDOWN_GRACE": 30.0,  # seconds a stopping worker lets its running job finish
    "WORKER_CONCURRENCY": 10,  # jobs one worker runs at once (and claims per transaction at most)
    "WORKER_DB_CONN_MAX_AGE": 300,  # seconds a worker keeps its database connection
    "RETRY_BACKOFF_BASE": 1.0,
    "RETRY_BACKOFF_MAX": 300.0,
    "DEFAULT_MAX_ATTEMPTS": 5,
    # Input limits
    "MAX_PAYLOAD_BYTES": 256 * 1024,
    "MAX_JSON_DEPTH": 32,
    "MAX_IDEMPOTENCY_KEY_LENGTH": 200,
    # Fairness between users
    "PRIORITY_CEILING": 10,  # higher priorities need jobs.submit_high_priority
    "MAX_PENDING_PER_USER": 10_000,  # pending jobs one submitter may have (0: no cap)
    # Handlers
    "HANDLER_MODULES": [],  # extra modules that register job kinds with @handler
    "HTTP_ALLOWED_HOSTS": ["127.0.0.1", "localhost", "::1"],
    "HTTP_CONNECT_TIMEOUT": 3.05,
    "HTTP_READ_TIMEOUT": 10.0,
    "HTTP_RESULT_EXCERPT_BYTES": 2048,
    # Operations
    "READY_WORKER_SECONDS": 60.0,  # /readyz wants a worker heartbeat at most this old
    "READY_REQUIRE_WORKER": True,  # False: web nodes are ready without any worker alive
    "READY_CHANNEL_TIMEOUT": 2.0,  # seconds for the channel-layer round trip in /readyz
    "METRICS_ENABLED": True,  # False: /metrics answers 404
    "METRICS_TOKEN": "",  # set: /metrics needs "Authorization: Bearer <token>"
    "METRICS_WINDOW": 300.0,  # seconds of finished jobs behind the recent-window metrics
    "SUBMIT_RATE": "6000/min",  # per-user API submission throttle (DRF rate syntax)
    "LOGIN_MAX_FAILURES": 10,  # failed logins per (client address, username) per window...
    "LOGIN_WINDOW": 300,  # ...seconds; then 429 until the window passes
}

_COERCE = {float: float, int: int}


def get(name: str) -> Any:
    """Return setting ``name`` from settings.RESILIENT, else our default, coerced to its type."""
    default = DEFAULTS[name]
    value = getattr(settings, "RESILIENT", {}).get(name, default)
    if isinstance(default, list) and isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(default, bool):
        return value.strip().lower() in {"1", "true", "yes", "on"} if isinstance(value, str) else bool(value)
    coerce = _COERCE.get(type(default))
    return coerce(value) if coerce else value
