"""The one HTTP client for downstream calls: strict URL parsing, pinned addresses, no cookies.

A URL is parsed once, by the code that sends it (requests' ``prepare_url``, i.e. urllib3's
``parse_url``), after refusing anything two parsers could read differently. The host is then
resolved once, the answer checked, and the connection made only to those addresses (the
hostname still goes in the Host header, the TLS SNI and the certificate check), so a DNS answer
that changes between check and connect cannot move the call elsewhere.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.cookiejar import DefaultCookiePolicy
from socket import timeout as SocketTimeout
from typing import Any
from urllib.parse import unquote

import requests
from requests.adapters import HTTPAdapter
from requests.cookies import RequestsCookieJar
from requests.exceptions import (
    InvalidHeader,
    InvalidJSONError,
    InvalidSchema,
    InvalidURL,
    MissingSchema,
)
from requests.models import PreparedRequest
from requests.utils import default_headers
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, LocationParseError, NewConnectionError
from urllib3.util import connection as urllib3_connection
from urllib3.util import parse_url

SCHEMES = {"http": 80, "https": 443}
_UNSAFE_CHARS = re.compile(r"[\x00-\x20\x7f\\]")  # controls, whitespace, backslash
_SCHEME_AUTHORITY = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)")
_PORT = re.compile(r":(\d{1,5})\Z")

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,64}")  # RFC 7230 token, bounded
_BAD_VALUE_CHARS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\U0010ffff]")  # controls but tab, non-ASCII

Resolver = Callable[..., list]

# What requests raises when it cannot even form the request: the job's fault, never the downstream's.
# Their messages may quote a header value, so callers name the class only.
UNFORMABLE = (InvalidHeader, InvalidJSONError, InvalidSchema, InvalidURL, MissingSchema)


def fully_unquoted(text: str) -> str:
    """``text`` percent-decoded until nothing changes: a server may decode more than once."""
    while (decoded := unquote(text)) != text:  # each round is shorter, so this ends
        text = decoded
    return text


def header_problem(name: Any, value: Any, *, max_length: int = 8192) -> str | None:
    """Why ``name: value`` cannot be sent as a header, or None. Never quotes the value (a secret)."""
    if not isinstance(name, str) or not _TOKEN.fullmatch(name):
        return f"{name!r} is not a header name (1-64 letters, digits or !#$%&'*+-.^_`|~)"
    if not isinstance(value, str):
        return f"{name!r} must have a string value"
    if len(value) > max_length:
        return f"{name!r} must be at most {max_length} characters"
    if _BAD_VALUE_CHARS.search(value):
        return f"{name!r} must be printable ASCII (no CR, LF, NUL or other control characters)"
    if value != value.strip(" \t"):  # requests refuses these only when sending
        return f"{name!r} must not start or end with whitespace"
    return None


class UnsafeURL(ValueError):
    """A URL this client refuses to call; the message says why (and never echoes userinfo)."""


class ResolutionFailed(requests.ConnectionError):
    """The host did not resolve: a downstream failure like a refused connection."""


@dataclass(frozen=True)
class Target:
    """Where a call goes: the URL as sent, and the host and port it names."""

    url: str
    scheme: str
    host: str  # lower case; an IPv6 literal without brackets
    port: int

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == SCHEMES[self.scheme] else f"{host}:{self.port}"


def parse(url: Any) -> Target:
    """Parse ``url`` as requests will send it; ``UnsafeURL`` for anything ambiguous."""
    if not isinstance(url, str) or not url:
        raise UnsafeURL("url must be a non-empty string")
    if not url.isascii():
        raise UnsafeURL("url must be ASCII (percent-encode the path; hosts must be ASCII names)")
    if _UNSAFE_CHARS.search(url):
        raise UnsafeURL("url must not contain whitespace, control characters or backslashes")
    if "\x00" in fully_unquoted(url):  # some servers end the path at a NUL, others do not
        raise UnsafeURL("url must not contain NUL (%00), encoded or not")
    head = _SCHEME_AUTHORITY.match(url)
    if not head or head.group(1).lower() not in SCHEMES:
        raise UnsafeURL("url must be an absolute http:// or https:// URL")
    authority = head.group(2)
    if "@" in authority:
        raise UnsafeURL("url must not carry userinfo (user:password@)")
    if "%" in authority:
        raise UnsafeURL("url must not percent-encode its host")
    host_part = authority.rsplit("]", 1)[-1]  # an IPv6 literal holds colons of its own
    given_port = _PORT.search(host_part)
    if ":" in host_part and not (given_port and 1 <= int(given_port.group(1)) <= 65535):
        # requests drops an empty or zero port silently: refuse rather than guess
        raise UnsafeURL("url port must be a number from 1 to 65535")
    prepared = PreparedRequest()
    try:
        prepared.prepare_url(url, None)
        parts = parse_url(prepared.url)
    except (InvalidURL, LocationParseError, ValueError, UnicodeError):
        raise UnsafeURL("url is not a valid URL (check the host and the port: 1 to 65535)") from None
    host = (parts.host or "").lower().strip("[]")
    if not host:
        raise UnsafeURL("url must name a host")
    port = parts.port if parts.port is not None else SCHEMES[parts.scheme]
    if given_port and int(given_port.group(1)) != port:
        raise UnsafeURL("url port must be a number from 1 to 65535")
    if parts.auth:
        raise UnsafeURL("url must not carry userinfo (user:password@)")
    return Target(url=prepared.url, scheme=parts.scheme, host=host, port=port)


def resolve(target: Target, *, getaddrinfo: Resolver = socket.getaddrinfo) -> tuple[str, ...]:
    """The addresses ``target`` may be reached at, resolved once; ``UnsafeURL`` if none is usable."""
    try:
        addresses = (str(ipaddress.ip_address(target.host)),)
    except ValueError:
        try:
            answers = getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise ResolutionFailed(f"cannot resolve {target.host}: {exc}") from None
        addresses = tuple(dict.fromkeys(str(answer[4][0]).split("%")[0] for answer in answers))
    usable = tuple(a for a in addresses if _connectable(a))
    if not usable:
        raise UnsafeURL(f"{target.host} resolves to no address this client connects to")
    return usable


def _connectable(address: str) -> bool:
    # 0.0.0.0 and :: reach this machine under another name; multicast is never a downstream.
    ip = ipaddress.ip_address(address)
    return not (ip.is_unspecified or ip.is_multicast)


@dataclass(frozen=True)
class Pin:
    """A target and the addresses it resolved to: the only ones a call may connect to."""

    target: Target
    addresses: tuple[str, ...]


class PinnedRequest(PreparedRequest):
    """A prepared request that carries its pin to the transport adapter."""

    pin: Pin | None = None


class _PinnedConnectionMixin:
    """Connect to the pinned addresses in turn instead of resolving the host again."""

    def __init__(self, *args: Any, addresses: tuple[str, ...] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pinned_addresses = addresses

    def _new_conn(self) -> socket.socket:
        error: OSError | None = None
        for address in self.pinned_addresses:
            try:
                return urllib3_connection.create_connection(
                    (address, self.port), self.timeout,
                    source_address=self.source_address, socket_options=self.socket_options,
                )
            except OSError as exc:  # includes timeouts: the next address may answer
                error = exc
        if isinstance(error, SocketTimeout):
            raise ConnectTimeoutError(self, f"Connection to {self.host} timed out") from error
        raise NewConnectionError(self, f"Failed to establish a new connection: {error}") from error


class PinnedHTTPConnection(_PinnedConnectionMixin, HTTPConnection):
    pass


class PinnedHTTPSConnection(_PinnedConnectionMixin, HTTPSConnection):
    pass


class PinnedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = PinnedHTTPConnection


class PinnedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = PinnedHTTPSConnection


class PinnedAdapter(HTTPAdapter):
    """A transport adapter whose connection pools connect only to a request's pinned addresses."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pools: dict[tuple, HTTPConnectionPool] = {}
        self._pools_lock = threading.Lock()

    def get_connection_with_tls_context(self, request, verify, proxies=None, cert=None):
        pin = getattr(request, "pin", None)
        if pin is None:
            raise InvalidURL("refusing a request without a pinned address", request=request)
        key = (pin.target.scheme, pin.target.host, pin.target.port, pin.addresses)
        with self._pools_lock:
            pool = self._pools.get(key)
            if pool is None:
                if len(self._pools) >= self._pool_connections:  # drop the oldest pool
                    self._pools.pop(next(iter(self._pools))).close()
                pool = self._pools[key] = self._new_pool(pin)
        return pool

    def _new_pool(self, pin: Pin) -> HTTPConnectionPool:
        # The pool keeps the hostname: urllib3 uses it for SNI and the certificate check.
        target = pin.target
        if target.scheme == "https":
            return PinnedHTTPSConnectionPool(target.host, target.port, maxsize=self._pool_maxsize,
                                             cert_reqs="CERT_REQUIRED", addresses=pin.addresses)
        return PinnedHTTPConnectionPool(target.host, target.port, maxsize=self._pool_maxsize, addresses=pin.addresses)

    def close(self) -> None:
        super().close()
        with self._pools_lock:
            for pool in self._pools.values():
                pool.close()
            self._pools.clear()


class _Session(requests.Session):
    def get_redirect_target(self, resp: requests.Response) -> None:
        # A redirect could lead off the allowlist: the answer is the 3xx itself, never a next hop.
        return None


def session() -> requests.Session:
    """A session that keeps no cookies, follows no redirects, ignores proxy/netrc environment."""
    client = _Session()
    client.trust_env = False  # HTTP(S)_PROXY, NETRC, REQUESTS_CA_BUNDLE cannot steer the call
    client.cookies = RequestsCookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))  # refuses every cookie
    adapter = PinnedAdapter()
    client.mount("http://", adapter)
    client.mount("https://", adapter)
    return client


_local = threading.local()


def _thread_session() -> requests.Session:
    # One pooled session per thread: requests.Session is not documented as thread-safe.
    if not hasattr(_local, "session"):
        _local.session = session()
    return _local.session


def send(
    target: Target,
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    json: Any = None,
    timeout: tuple[float, float],
    stream: bool = False,
    verify: bool | str = True,
    getaddrinfo: Resolver = socket.getaddrinfo,
) -> requests.Response:
    """Send one request to ``target``, connecting only to the addresses it resolves to now."""
    pin = Pin(target=target, addresses=resolve(target, getaddrinfo=getaddrinfo))
    request = PinnedRequest()
    merged = default_headers()
    merged.update(headers or {})
    merged["Host"] = target.host_header
    request.prepare(method=method, url=target.url, headers=merged, json=json)
    if request.url != target.url:  # preparing twice must not move the call
        raise UnsafeURL("url changed when prepared again")
    request.pin = pin
    return _thread_session().send(request, timeout=timeout, allow_redirects=False, stream=stream, verify=verify)
