"""What an ``http`` job may ask for: the checks run at submission and again before each call."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from jobs import conf, dependencies
from jobs import http as http_client
from jobs.exceptions import InvalidInput

KEYS = ("headers", "json", "method", "path", "url")
METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")
MAX_HEADERS = 32
MAX_HEADER_VALUE = 4096
# Framing, routing and connection management belong to the client, credentials of the proxy and
# the cookie jar to nobody: a job setting them could smuggle requests or impersonate the service.
RESERVED_HEADERS = {"host", "transfer-encoding", "content-length", "connection", "cookie",
                    "keep-alive", "te", "trailer", "upgrade"}
_SCHEME_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


@dataclass(frozen=True)
class HttpCall:
    """A checked http job: where it goes and what it sends (dependency headers included)."""

    target: http_client.Target
    method: str
    headers: dict[str, str]
    json: Any


def host_key(host: str) -> str:
    """How hosts compare: lower case, IPv6 without brackets, IP literals in canonical form."""
    host = host.strip().lower().strip("[]")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


def allowed_hosts() -> set[str]:
    """RESILIENT_HTTP_ALLOWED_HOSTS plus the host of every dependency's base URL (ports ignored)."""
    hosts = {host_key(h) for h in conf.get("HTTP_ALLOWED_HOSTS") if h.strip()}
    for dep in dependencies.configured().values():
        if dep.base_url:
            try:
                hosts.add(host_key(http_client.parse(dep.base_url).host))
            except http_client.UnsafeURL:
                pass  # dependencies.configured() refuses such a base URL; never widen the list
    return hosts


def _refuse(message: str) -> InvalidInput:
    return InvalidInput("payload", message)


def _under_base(path: Any, dependency: str) -> str:
    """``path`` appended to the dependency's base URL, refusing anything that could leave it."""
    base = dependencies.get(dependency).base_url
    if not isinstance(path, str):
        raise _refuse("path must be a string")
    if not base:
        raise _refuse(f"path needs a base_url for dependency {dependency!r}; give url instead")
    if "\\" in path or "@" in path or path.startswith("//") or "://" in path or _SCHEME_PREFIX.match(path):
        raise _refuse("path must be a path under the dependency's base URL (no scheme, host, '@' or '\\')")
    decoded = path.split("?", 1)[0].split("#", 1)[0]
    for _ in range(3):  # a server may decode more than once: look through every layer
        decoded = unquote(decoded)
    segments = re.split(r"[/\\]", decoded)
    if any(segment in {".", ".."} for segment in segments):
        raise _refuse("path must not contain '.' or '..' segments (encoded or not)")
    return base.rstrip("/") + "/" + path.lstrip("/")


def target(payload: dict, dependency: str) -> http_client.Target:
    """Where the job calls: ``url``, or ``path`` under the dependency's base URL, on the allowlist."""
    url, path = payload.get("url"), payload.get("path")
    if (url is None) == (path is None):
        raise _refuse("give exactly one of url or path")
    if path is not None:
        url = _under_base(path, dependency)
    try:
        found = http_client.parse(url)
        if path is not None:
            base = http_client.parse(dependencies.get(dependency).base_url)
            if (found.scheme, found.host, found.port) != (base.scheme, base.host, base.port) or not (
                found.url.startswith(base.url.rstrip("/") + "/") or found.url == base.url
            ):
                raise http_client.UnsafeURL("path must stay under the dependency's base URL")
    except http_client.UnsafeURL as exc:
        raise _refuse(str(exc)) from None
    if host_key(found.host) not in allowed_hosts():
        raise _refuse(f"host {found.host!r} is not on the allowlist (RESILIENT_HTTP_ALLOWED_HOSTS)")
    return found


def _headers(value: Any, dependency: dependencies.Dependency) -> dict[str, str]:
    if not isinstance(value, dict):
        raise _refuse("headers must be an object of header names to strings")
    if len(value) > MAX_HEADERS:
        raise _refuse(f"headers may hold at most {MAX_HEADERS} entries")
    own = {name.lower() for name, _ in dependency.headers}
    for name, text in value.items():
        problem = http_client.header_problem(name, text, max_length=MAX_HEADER_VALUE)
        if problem:
            raise _refuse(f"headers: {problem}")
        lowered = name.lower()
        if lowered in RESERVED_HEADERS or lowered.startswith("proxy-"):
            raise _refuse(f"headers: {name!r} is set by the service, not by a job")
        if lowered in own:
            raise _refuse(f"headers: {name!r} is set by dependency {dependency.name!r}")
    return dict(value)


def http_call(payload: dict, dependency: str) -> HttpCall:
    """Check every part of an http payload; ``InvalidInput`` on field ``payload`` says what is wrong."""
    unknown = sorted(set(payload) - set(KEYS), key=str)
    if unknown:
        raise _refuse(f"unknown keys {', '.join(map(str, unknown))}; allowed: {', '.join(KEYS)}")
    dep = dependencies.get(dependency)
    where = target(payload, dependency)
    method = payload.get("method", "GET")
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise _refuse(f"method must be one of {', '.join(METHODS)}")
    headers = _headers(payload.get("headers", {}), dep)
    # The dependency's own headers go last: they win over anything of the same name.
    return HttpCall(target=where, method=method.upper(), headers={**headers, **dict(dep.headers)},
                    json=payload.get("json"))
