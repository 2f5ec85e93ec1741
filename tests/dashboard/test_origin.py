"""Which pages may open the operator socket: only its own origin (scheme, host and port, as
Django's CSRF check compares a request's Origin) or one listed in CSRF_TRUSTED_ORIGINS."""

from __future__ import annotations

import pytest
from django.test import override_settings

from tests.support.dashboard_socket import connect

pytestmark = pytest.mark.django_db(transaction=True)


def headers(host: str | None, *origins: str, **extra: str) -> list[tuple[bytes, bytes]]:
    out = [(b"host", host.encode())] if host is not None else []
    out += [(b"origin", origin.encode()) for origin in origins]
    out += [(name.replace("_", "-").encode(), value.encode()) for name, value in extra.items()]
    return out


async def opens(user, hdrs, scope: dict | None = None) -> bool:
    comm = await connect(user, headers=hdrs, scope=scope)
    connected, code = await comm.connect(timeout=5)
    if connected:
        hello = await comm.receive_json_from(timeout=5)
        assert hello["type"] == "hello"
        await comm.disconnect()
    else:
        assert code in (1000, None), code  # closed before accept: Daphne answers the handshake 403
    return connected


@pytest.mark.parametrize(
    ("hdrs", "scope"),
    [
        pytest.param(headers("127.0.0.1:8123", "http://127.0.0.1:9103"), None, id="foreign-port"),
        pytest.param(headers("127.0.0.1:8123", "https://127.0.0.1:8123"), None, id="foreign-scheme"),
        pytest.param(headers("127.0.0.1", "http://127.0.0.1"), {"scheme": "wss"}, id="http-page-on-wss"),
        pytest.param(headers("127.0.0.1:8123", "http://evil.example"), None, id="foreign-host"),
        pytest.param(headers("127.0.0.1:8123", "http://localhost:8123"), None, id="other-allowed-host"),
        pytest.param(headers("127.0.0.1:8123"), None, id="missing-origin"),
        pytest.param(headers("127.0.0.1:8123", "null"), None, id="null-origin"),
        pytest.param(headers("127.0.0.1:8123", ""), None, id="empty-origin"),
        pytest.param(headers("127.0.0.1:8123", "http://127.0.0.1:8123", "http://127.0.0.1:8123"), None,
                     id="two-origins"),
        # DNS rebinding: evil.example resolves to us; Host and Origin agree but the host is not ours.
        pytest.param(headers("evil.example:8123", "http://evil.example:8123"), None, id="host-not-allowed"),
        pytest.param(headers(None, "http://127.0.0.1"), None, id="no-host-no-server"),
        # X-Forwarded-Proto counts only when SECURE_PROXY_SSL_HEADER says so (it does not here).
        pytest.param(headers("127.0.0.1", "https://127.0.0.1", x_forwarded_proto="https"), None,
                     id="forwarded-proto-not-trusted"),
    ],
)
async def test_refused_before_accept(operator, hdrs, scope):
    assert not await opens(operator, hdrs, scope)


@pytest.mark.parametrize(
    ("hdrs", "scope"),
    [
        pytest.param(headers("127.0.0.1", "http://127.0.0.1"), None, id="same-origin"),
        pytest.param(headers("127.0.0.1:8123", "http://127.0.0.1:8123"), None, id="same-origin-with-port"),
        pytest.param(headers("localhost:8123", "http://localhost:8123"), None, id="other-allowed-host"),
        pytest.param(headers("127.0.0.1:8443", "https://127.0.0.1:8443"), {"scheme": "wss"}, id="wss"),
        # No Host header: Django rebuilds it from the server address (PEP 3333), so do we.
        pytest.param(headers(None, "http://127.0.0.1:8123"), {"server": ("127.0.0.1", 8123)}, id="server-address"),
    ],
)
async def test_same_origin_is_accepted(operator, hdrs, scope):
    assert await opens(operator, hdrs, scope)


@override_settings(ALLOWED_HOSTS=["ops.example.com"], SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"))
async def test_behind_a_tls_proxy_the_forwarded_scheme_counts(operator):
    # The proxy speaks plain ws to us; the page is https.
    assert await opens(operator, headers("ops.example.com", "https://ops.example.com", x_forwarded_proto="https"))
    assert not await opens(operator, headers("ops.example.com", "http://ops.example.com", x_forwarded_proto="https"))
    assert await opens(operator, headers("ops.example.com", "http://ops.example.com", x_forwarded_proto="http"))


@override_settings(ALLOWED_HOSTS=["ops.example.com"], CSRF_TRUSTED_ORIGINS=["https://console.example.com"])
async def test_a_trusted_origin_is_accepted(operator):
    assert await opens(operator, headers("ops.example.com", "https://console.example.com"))
    assert not await opens(operator, headers("ops.example.com", "http://console.example.com"))
    assert not await opens(operator, headers("ops.example.com", "https://console.example.com:8443"))
    # A trusted origin does not make a foreign Host acceptable.
    assert not await opens(operator, headers("evil.example", "https://console.example.com"))


@override_settings(ALLOWED_HOSTS=["ops.example.com"], CSRF_TRUSTED_ORIGINS=["https://*.example.com"])
async def test_a_trusted_subdomain_wildcard_is_accepted(operator):
    assert await opens(operator, headers("ops.example.com", "https://console.example.com"))
    assert await opens(operator, headers("ops.example.com", "https://a.b.example.com"))
    assert await opens(operator, headers("ops.example.com", "https://example.com"))
    assert not await opens(operator, headers("ops.example.com", "http://console.example.com"))
    assert not await opens(operator, headers("ops.example.com", "https://example.com.evil.example"))
    assert not await opens(operator, headers("ops.example.com", "https://badexample.com"))


async def test_the_origin_check_comes_before_authentication(user):
    """A non-staff user on the right origin is still refused (by the consumer, not the origin)."""
    assert not await opens(user, headers("127.0.0.1", "http://127.0.0.1"))
