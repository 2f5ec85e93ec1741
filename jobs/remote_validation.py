"""Submission-time validation (the write-up's flow): ask VALIDATION_URL through the ``validation`` breaker.

Off unless the ``validation`` dependency has a base URL (``VALIDATION_URL``). Its breaker open →
``CircuitOpen`` (503 CIRCUIT_OPEN); the call failed, timed out or was refused →
``ValidationFailed`` (502 VALIDATION_ERROR). Either way the caller stores nothing.
"""

from __future__ import annotations

from typing import Any

import requests

from jobs import breakers, dependencies, http
from jobs.exceptions import DependencyFailure, JobFailure, PermanentJobFailure, ValidationFailed
from jobs.handlers.builtin import retry_after_seconds


def _post(dep: dependencies.Dependency, document: dict[str, Any]) -> None:
    # The same client as the http kind: pinned address, no cookies, no redirects, no env proxies.
    try:
        response = http.send(http.parse(dep.base_url), method="POST", json=document, headers=dict(dep.headers),
                             timeout=(dep.connect_timeout, dep.read_timeout))
    except http.UnsafeURL as exc:
        raise PermanentJobFailure(f"validation service address refused: {exc}") from None
    except http.UNFORMABLE as exc:  # never reached the service; the message may quote a header value
        raise PermanentJobFailure(f"validation request could not be formed ({exc.__class__.__name__})") from None
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
            lambda: _post(dep, document),
            actor=actor,
        )
    except JobFailure as exc:
        raise ValidationFailed(f"Failed to validate job: {exc}") from exc
