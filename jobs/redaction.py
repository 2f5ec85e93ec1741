"""Secret-looking header values hidden wherever a payload is shown. Pure.

The worker runs the real payload; the API, the dashboard and the admin show this copy. Better:
keep secrets out of payloads altogether and give the dependency its own headers in settings.
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "[redacted]"
# Authorization, Proxy-Authorization, Cookie, Set-Cookie, X-Api-Key, X-Auth-Token, X-Secret, ...
_SECRET_NAME = re.compile(
    r"(^|[-_])(authorization|cookie|set-cookie|token|key|apikey|secret|password|passwd|signature|session"
    r"|credentials?|auth|csrftoken|xsrftoken)$",
    re.IGNORECASE,
)


def header_is_secret(name: str) -> bool:
    """True for header names that usually carry credentials."""
    return bool(_SECRET_NAME.search(name.strip()))


def payload_redacted(payload: Any) -> Any:
    """``payload`` with the values of secret-looking ``headers`` replaced (a copy; None stays)."""
    if not isinstance(payload, dict):
        return payload
    headers = payload.get("headers")
    if not isinstance(headers, dict) or not any(isinstance(k, str) and header_is_secret(k) for k in headers):
        return payload
    redacted = {k: (REDACTED if isinstance(k, str) and header_is_secret(k) else v) for k, v in headers.items()}
    return {**payload, "headers": redacted}
