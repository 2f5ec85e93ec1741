"""What an ``http`` job may ask for: the checks run at submission and again before each call."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from urllib3.util import parse_url

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
# "." and "..", also with matrix parameters: Tomcat and servers like it read "..;x" as "..".
_DOT_SEGMENT = re.compile(r"\.\.?(?:;.*)?", re.DOTALL)


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


def _climbs(text: str) -> bool:
    """Whether the path part of ``text`` holds a dot segment once every layer of encoding is gone."""
    decoded = http_client.fully_unquoted(text.split("?", 1)[0].split("#", 1)[0])
    return any(_DOT_SEGMENT.fullmatch(segment) for segment in re.split(r"[/\\]", decoded))


def is_under(found: http_client.Target, base: http_client.Target) -> bool:
    """Whether ``found`` is ``base`` or below it: same scheme, host and port, and under its path."""
    if (found.scheme, found.host, found.port) != (base.scheme, base.host, base.port):
        return False
    path, base_path = parse_url(found.url).path or "/", parse_url(base.url).path or "/"
    return path == base_path or path.startswith(base_path.rstrip("/") + "/")


def dependency_headers(where: http_client.Target, dep: dependencies.Dependency) -> dict[str, str]:
    """The dependency's own headers if ``where`` is under its base URL, else none.

    A secret goes only to the address it was configured for; without a base URL it has none."""
    if not dep.headers or not dep.base_url:
        return {}
    try:
        base = http_client.parse(dep.base_url)
    except http_client.UnsafeURL:
        return {}
    return dict(dep.headers) if is_under(where, base) else {}


def _under_base(path: Any, dependency: str) -> str:
    """``path`` appended to the dependency's base URL, refusing anything that could leave it."""
    base = dependencies.get(dependency).base_url
    if not isinstance(path, str):
        raise _refuse("path must be a string")
    if not base:
        raise _refuse(f"path needs a base_url for dependency {dependency!r}; give url instead")
    if "\\" in path or "@" in path or path.startswith("//") or "://" in path or _SCHEME_PREFIX.match(path):
        raise _refuse("path must be a path under the dependency's base URL (no scheme, host, '@' or '\\')")
    if _climbs(path):
        raise _refuse("path must not contain '.' or '..' segments (encoded or not, with or without ';')")
    return base.rstrip("/") + "/" + path.lstrip("/")


def target(payload: dict, dependency: str) -> http_client.Target:
    """Where the job calls: ``url``, or ``path`` under the dependency's base URL, on the allowlist.

    A dependency with a base URL is called only under it, whichever the job gave: its headers and
    its breaker belong to that address, not to any other port or scheme of an allowlisted host."""
    url, path = payload.get("url"), payload.get("path")
    if (url is None) == (path is None):
        raise _refuse("give exactly one of url or path")
    base_url = dependencies.get(dependency).base_url
    if path is not None:
        url = _under_base(path, dependency)
    try:
        found = http_client.parse(url)
        # A url meets the rules a path does (the path's own were checked above).
        if base_url and ((path is None and _climbs(url)) or not is_under(found, http_client.parse(base_url))):
            given = "url" if path is None else "path"
            raise http_client.UnsafeURL(f"{given} must stay under the base URL of dependency {dependency!r}")
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
    return HttpCall(target=where, method=method.upper(), headers={**headers, **dependency_headers(where, dep)},
                    json=payload.get("json"))
