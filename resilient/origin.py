"""Which pages may open a websocket: the socket's own origin or one in CSRF_TRUSTED_ORIGINS.

A browser sends the operator's session cookie with a websocket opened by *any* page, so the
Origin header is all that stops another site from steering the dashboard. Channels'
AllowedHostsOriginValidator compares host names only: a page on another port of an allowed host
(or on plain http for an https service) got in. This applies the rule Django's CSRF check applies
to a request's Origin (``CsrfViewMiddleware._origin_verified``): the full origin — scheme, host
and port — must equal the socket's own (``http`` for ws, ``https`` for wss or when
SECURE_PROXY_SSL_HEADER says so; the host from ``get_host()``) or match CSRF_TRUSTED_ORIGINS,
including its ``https://*.example.com`` form. Refused: no Origin (browsers always send one),
``null``, more than one, and any Host not in ALLOWED_HOSTS (DNS rebinding: the attacker's name
resolving to us makes Host and Origin agree), where Django would refuse the request itself.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest
from django.http.request import is_same_domain

log = logging.getLogger("resilient.origin")


class ScopeRequest(HttpRequest):
    """Enough of a request for Django's own ``get_host()`` and ``is_secure()`` on an ASGI scope."""

    def __init__(self, scope: dict[str, Any]) -> None:
        super().__init__()
        self._tls = scope.get("scheme", "ws") in ("wss", "https")
        meta: dict[str, str] = {}
        for name, value in scope.get("headers", ()):
            key = "HTTP_" + name.decode("latin1").upper().replace("-", "_")
            text = value.decode("latin1")
            # Repeated headers are joined as Django's ASGIRequest joins them (two Hosts then fail).
            meta[key] = f"{meta[key]},{text}" if key in meta else text
        server = scope.get("server")
        if server and server[1] is not None:
            meta["SERVER_NAME"], meta["SERVER_PORT"] = str(server[0]), str(server[1])
        self.META = meta

    def _get_scheme(self) -> str:
        return "https" if self._tls else "http"


def own_origin(scope: dict[str, Any]) -> str | None:
    """The socket's own origin (``scheme://host[:port]``), or None when its Host is not ours."""
    request = ScopeRequest(scope)
    if "HTTP_HOST" not in request.META and "SERVER_NAME" not in request.META:
        return None
    try:
        host = request.get_host()
    except DisallowedHost:
        return None
    return f"{request.scheme}://{host}"


def trusted(origin: str) -> bool:
    """``origin`` is listed in CSRF_TRUSTED_ORIGINS, exactly or under a ``*.`` wildcard."""
    listed = settings.CSRF_TRUSTED_ORIGINS
    if origin in {o for o in listed if "*" not in o}:
        return True
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    wildcards = (urlsplit(o) for o in listed if "*" in o)
    return any(w.scheme == parts.scheme and is_same_domain(parts.netloc, w.netloc.lstrip("*")) for w in wildcards)


def origin_allowed(scope: dict[str, Any]) -> bool:
    """May the page whose Origin the handshake carries open this socket?"""
    origins = [value for name, value in scope.get("headers", ()) if name.lower() == b"origin"]
    if len(origins) != 1:
        return False
    origin = origins[0].decode("latin1")
    if origin in ("", "null"):
        return False
    own = own_origin(scope)
    if own is None:
        return False
    return origin == own or trusted(origin)


class OriginValidator:
    """ASGI middleware: refuse a websocket handshake (HTTP 403) whose origin is not allowed."""

    def __init__(self, application: Any) -> None:
        self.application = application
        self.deny = WebsocketDenier.as_asgi()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] != "websocket":
            raise ValueError("OriginValidator only guards websocket connections")
        if origin_allowed(scope):
            return await self.application(scope, receive, send)
        # Logged so an operator behind a proxy sees what to add to CSRF_TRUSTED_ORIGINS.
        headers = dict(scope.get("headers", ()))
        log.warning(
            "refused a websocket to %s: origin %r is not this site's (host %r) nor in CSRF_TRUSTED_ORIGINS",
            scope.get("path"), headers.get(b"origin", b"").decode("latin1"), headers.get(b"host", b"").decode("latin1"),
        )
        return await self.deny(scope, receive, send)
