"""The job kinds Resilient ships: ``noop``, ``simulate`` and ``http``."""

from __future__ import annotations

import asyncio
import random
import threading
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin, urlsplit

import requests
from django.utils import timezone

from jobs import conf, dependencies
from jobs.exceptions import DependencyFailure, InvalidInput, PermanentJobFailure
from jobs.handlers.registry import JobContext, handler

SIMULATE_MAX_COMPLEXITY = 600  # 60 s of simulated work
SIMULATE_DEFAULT_FAILURE_RATE = 0.05  # the write-up's
SIMULATE_OPEN_COMPLEXITY = 10  # 1 s: anyone may ask for this much (the write-up's examples use 2)


@handler("noop")
async def noop(payload: dict, context: JobContext) -> dict:
    """Return at once (benchmarks)."""
    return {}


def _number(payload: dict, key: str, default: float, low: float, high: float) -> float:
    value = payload.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise InvalidInput("payload", f"{key} must be a number from {low:g} to {high:g}")
    return float(value)


def validate_simulate(payload: dict, dependency: str) -> None:
    _number(payload, "complexity", 1, 0, SIMULATE_MAX_COMPLEXITY)
    _number(payload, "failure_rate", SIMULATE_DEFAULT_FAILURE_RATE, 0, 1)


def privileged_simulate(payload: dict) -> str | None:
    """A chosen failure rate trips the shared `local` breaker; long runs tie up worker slots."""
    if payload.get("failure_rate", SIMULATE_DEFAULT_FAILURE_RATE) > SIMULATE_DEFAULT_FAILURE_RATE:
        return f"a failure_rate above {SIMULATE_DEFAULT_FAILURE_RATE:g}"
    if payload.get("complexity", 1) > SIMULATE_OPEN_COMPLEXITY:
        return f"a complexity above {SIMULATE_OPEN_COMPLEXITY}"
    return None


@handler("simulate", validate=validate_simulate, privileged=privileged_simulate)
async def simulate(payload: dict, context: JobContext) -> dict:
    """The write-up's job: sleep complexity x 100 ms, fail with probability failure_rate."""
    complexity = _number(payload, "complexity", 1, 0, SIMULATE_MAX_COMPLEXITY)
    failure_rate = _number(payload, "failure_rate", SIMULATE_DEFAULT_FAILURE_RATE, 0, 1)
    await asyncio.sleep(complexity * 0.1)
    if random.random() < failure_rate:
        raise DependencyFailure("simulated failure")
    return {"slept_ms": round(complexity * 100)}


# --- http ---------------------------------------------------------------------------------------

HTTP_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"}


def _allowed_hosts() -> set[str]:
    hosts = {h.lower().strip("[]") for h in conf.get("HTTP_ALLOWED_HOSTS")}
    for dep in dependencies.configured().values():
        if dep.base_url:
            hosts.add((urlsplit(dep.base_url).hostname or "").lower())
    return hosts


def resolve_url(payload: dict, dependency: str) -> str:
    """The URL an http job calls: ``url``, or ``path`` under the dependency's base URL."""
    url, path = payload.get("url"), payload.get("path")
    if (url is None) == (path is None):
        raise InvalidInput("payload", "give exactly one of url or path")
    if path is not None:
        base = dependencies.get(dependency).base_url
        if not isinstance(path, str) or not base:
            raise InvalidInput("payload", f"path needs a string and a base_url for dependency {dependency!r}")
        url = urljoin(base.rstrip("/") + "/", path.lstrip("/"))
    if not isinstance(url, str):
        raise InvalidInput("payload", "url must be a string")
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError:
        raise InvalidInput("payload", "url is not a valid URL") from None
    if parts.scheme not in {"http", "https"} or not host:
        raise InvalidInput("payload", "url must be an absolute http(s) URL")
    if host not in _allowed_hosts():
        raise InvalidInput("payload", f"host {host!r} is not on the allowlist (RESILIENT_HTTP_ALLOWED_HOSTS)")
    return url


def validate_http(payload: dict, dependency: str) -> None:
    resolve_url(payload, dependency)
    method = payload.get("method", "GET")
    if not isinstance(method, str) or method.upper() not in HTTP_METHODS:
        raise InvalidInput("payload", f"method must be one of {', '.join(sorted(HTTP_METHODS))}")
    headers = payload.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise InvalidInput("payload", "headers must be an object of strings")


_local = threading.local()


def _session() -> requests.Session:
    # One pooled session per thread: requests.Session is not documented as thread-safe.
    if not hasattr(_local, "session"):
        _local.session = requests.Session()
    return _local.session


def retry_after_seconds(value: str | None) -> float | None:
    """Parse a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - timezone.now()).total_seconds())
    except (TypeError, ValueError):
        return None


@handler("http", dependency=dependencies.DEFAULT, validate=validate_http)
def http(payload: dict, context: JobContext) -> dict:
    """Call a downstream; 2xx succeeds, 5xx/408/429/timeouts retry, other 4xx fail at once."""
    validate_http(payload, context.dependency)
    dep = dependencies.get(context.dependency)
    url = resolve_url(payload, context.dependency)
    try:
        # No redirects: a redirect could lead off the allowlist.
        response = _session().request(
            payload.get("method", "GET").upper(),
            url,
            json=payload.get("json"),
            headers=payload.get("headers") or None,
            timeout=(dep.connect_timeout, dep.read_timeout),
            allow_redirects=False,
            stream=True,
        )
    except requests.Timeout as exc:
        raise DependencyFailure(f"timeout calling {url}: {exc.__class__.__name__}") from exc
    except requests.RequestException as exc:
        raise DependencyFailure(f"error calling {url}: {exc.__class__.__name__}: {exc}") from exc
    with response:
        try:
            excerpt = response.raw.read(conf.get("HTTP_RESULT_EXCERPT_BYTES"), decode_content=True)
        except (requests.RequestException, OSError, ValueError) as exc:
            raise DependencyFailure(f"error reading {url}: {exc}") from exc
    code = response.status_code
    body = excerpt.decode(response.encoding or "utf-8", errors="replace")
    summary = f"HTTP {code} from {url}"
    if 200 <= code < 300:
        return {"status": code, "body": body}
    if code >= 500 or code in (408, 429):
        retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        raise DependencyFailure(summary, retry_after=retry_after)
    raise PermanentJobFailure(summary)
