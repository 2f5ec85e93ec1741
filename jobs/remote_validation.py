"""Submission-time validation (the write-up's flow): ask VALIDATION_URL through the ``validation`` breaker.

Off unless the ``validation`` dependency has a base URL (``VALIDATION_URL``). Its breaker open →
``CircuitOpen`` (503 CIRCUIT_OPEN); the call failed, timed out or was refused →
``ValidationFailed`` (502 VALIDATION_ERROR). Either way the caller stores nothing.
"""

from __future__ import annotations

import threading
from typing import Any

import requests

from jobs import breakers, dependencies
from jobs.exceptions import DependencyFailure, JobFailure, PermanentJobFailure, ValidationFailed
from jobs.handlers.builtin import retry_after_seconds

_local = threading.local()


def _session() -> requests.Session:
    if not hasattr(_local, "session"):
        _local.session = requests.Session()
    return _local.session


def enabled() -> bool:
    return bool(dependencies.configured()[dependencies.VALIDATION].base_url)


def _post(url: str, document: dict[str, Any], timeout: tuple[float, float]) -> None:
    try:
        response = _session().post(url, json=document, timeout=timeout, allow_redirects=False)
    except requests.Timeout as exc:
        raise DependencyFailure(f"validation service timed out ({exc.__class__.__name__})") from exc
    except requests.RequestException as exc:
        raise DependencyFailure(f"validation service unreachable ({exc.__class__.__name__})") from exc
    with response:
        code = response.status_code
    if 200 <= code < 300:
        return
    if code >= 500 or code in (408, 429):
        raise DependencyFailure(
            f"validation service answered HTTP {code}",
            retry_after=retry_after_seconds(response.headers.get("Retry-After")),
        )
    raise PermanentJobFailure(f"validation service refused the job: HTTP {code}")


def submission_validate(*, document: dict[str, Any], actor: str) -> None:
    """Validate a job before it is stored; raises CircuitOpen or ValidationFailed."""
    dep = dependencies.configured()[dependencies.VALIDATION]
    if not dep.base_url:
        return
    try:
        breakers.call_protected(
            dependencies.VALIDATION,
            lambda: _post(dep.base_url, document, (dep.connect_timeout, dep.read_timeout)),
            actor=actor,
        )
    except JobFailure as exc:
        raise ValidationFailed(f"Failed to validate job: {exc}") from exc
