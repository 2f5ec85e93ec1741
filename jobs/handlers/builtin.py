"""The job kinds Resilient ships: ``noop``, ``simulate`` and ``http``."""

from __future__ import annotations

import asyncio
import random
from email.utils import parsedate_to_datetime

import requests
from django.utils import timezone

from jobs import conf, dependencies
from jobs import http as http_client
from jobs.exceptions import DependencyFailure, InvalidInput, PermanentJobFailure
from jobs.handlers import http_payload
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


def privileged_simulate(payload: dict, dependency: str) -> str | None:
    """Simulated failures trip a shared breaker, long runs tie up worker slots (and count as slow
    calls), and a simulated job against a real dependency's breaker can only harm it."""
    if dependency != dependencies.LOCAL:
        return f"running simulate against the {dependency!r} breaker"
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
# What a payload may ask for lives in http_payload; how a call is made, in jobs.http.


def validate_http(payload: dict, dependency: str) -> None:
    """Refuse (``InvalidInput``) any http payload the handler would not send as it is."""
    http_payload.http_call(payload, dependency)


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


def _scrub(text: str, secrets: list[str]) -> str:
    """``text`` without the dependency's header values: a downstream may echo them back."""
    for secret in secrets:
        text = text.replace(secret, "[redacted]")
    for secret in secrets:  # the excerpt may end inside a secret: its start is a secret too
        for cut in range(len(secret) - 1, 3, -1):
            if text.endswith(secret[:cut]):
                return text[:-cut] + "[redacted]"
    return text


@handler("http", dependency=dependencies.DEFAULT, validate=validate_http)
def http(payload: dict, context: JobContext) -> dict:
    """Call a downstream; 2xx succeeds, 5xx/408/429/timeouts retry, other 4xx fail at once."""
    try:
        # Checked again here: a payload stored before a rule existed must not slip through.
        call = http_payload.http_call(payload, context.dependency)
    except InvalidInput as exc:
        raise PermanentJobFailure(f"refused: {exc.message}") from None
    dep = dependencies.get(context.dependency)
    secrets = sorted((value for _, value in dep.headers if value), key=len, reverse=True)
    url = call.target.url
    try:
        response = http_client.send(
            call.target, method=call.method, headers=call.headers, json=call.json,
            timeout=(dep.connect_timeout, dep.read_timeout), stream=True,
        )
    except http_client.UnsafeURL as exc:
        raise PermanentJobFailure(f"refused: {exc}") from None
    except http_client.UNFORMABLE as exc:
        # The request never left: not the downstream's fault, and the message may quote a header value.
        raise PermanentJobFailure(f"refused: could not form the request to {url} ({exc.__class__.__name__})") from None
    except requests.Timeout as exc:
        raise DependencyFailure(f"timeout calling {url}: {exc.__class__.__name__}") from exc
    except requests.RequestException as exc:
        raise DependencyFailure(_scrub(f"error calling {url}: {exc.__class__.__name__}: {exc}", secrets)) from exc
    with response:
        try:
            excerpt = response.raw.read(conf.get("HTTP_RESULT_EXCERPT_BYTES"), decode_content=True)
        except (requests.RequestException, OSError, ValueError) as exc:
            raise DependencyFailure(_scrub(f"error reading {url}: {exc}", secrets)) from exc
    code = response.status_code
    body = _scrub(excerpt.decode(response.encoding or "utf-8", errors="replace"), secrets)
    summary = f"HTTP {code} from {url}"
    if 200 <= code < 300:
        return {"status": code, "body": body}
    if code >= 500 or code in (408, 429):
        retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        raise DependencyFailure(summary, retry_after=retry_after)
    raise PermanentJobFailure(summary)
