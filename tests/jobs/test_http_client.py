"""jobs.http, the one client for downstream calls, against real servers on 127.0.0.x."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
from pathlib import Path

import pytest
import requests

from jobs import http
from tests.support.downstream import Downstream

TIMEOUT = (2.0, 2.0)


def answers(*ips: str, calls: list | None = None):
    """A resolver that answers ``ips`` (the DNS of a name this machine cannot resolve)."""

    def getaddrinfo(host, port, type=0, **_):
        if calls is not None:
            calls.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port)) for ip in ips]

    return getaddrinfo


@pytest.fixture
def stub():
    with Downstream() as ds:
        yield ds


# --- parsing ------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:9\\@localhost/x", "http://a\\b/", "http://localhost/x y", "http://localhost/\x00",
    "http://localhost\t/", "http://u@localhost/", "http://u:p@localhost/", "http://%6cocalhost/",
    "http://[fe80::1%25eth0]/", "http://localhost:abc/", "http://localhost:99999/", "http://localhost:0/",
    "http://localhost:/", "http://localhost:65536/", "http:///x", "http://:80/", "ftp://localhost/",
    "file:///etc/passwd", "localhost/x", "//localhost/x", "http://caf\u00e9.example/", "", None, 5,
    "http://localhost/x%00", "http://localhost/?a=%2500", "http://localhost/%25252500",
])
def test_ambiguous_or_unsupported_urls_are_refused(url):
    with pytest.raises(http.UnsafeURL):
        http.parse(url)


@pytest.mark.parametrize(("url", "host", "port", "sent"), [
    ("http://LOCALHOST:8080/a/../b?q=1", "localhost", 8080, "http://localhost:8080/b?q=1"),
    ("https://example.test/", "example.test", 443, "https://example.test/"),
    ("http://[::1]:65535/x", "::1", 65535, "http://[::1]:65535/x"),
    ("http://127.0.0.1:1", "127.0.0.1", 1, "http://127.0.0.1:1/"),
])
def test_a_url_is_parsed_as_requests_sends_it(url, host, port, sent):
    target = http.parse(url)
    assert (target.host, target.port, target.url) == (host, port, sent)


def test_the_host_header_keeps_a_non_default_port_and_brackets():
    assert http.parse("http://[::1]:81/").host_header == "[::1]:81"
    assert http.parse("https://example.test:443/").host_header == "example.test"


@pytest.mark.parametrize(("name", "value"), [
    ("X-A", "a\r\nb"), ("X-A", "a\nb"), ("X-A", "a\x00"), ("X-A", "caf\u00e9"), ("X A", "1"), ("X-A\n", "1"),
    ("", "1"), ("X" * 65, "1"), ("X-A", 1), (1, "1"), ("X-A", "v" * 8193),
    ("X-A", " x"), ("X-A", "x "), ("X-A", "\tx"), ("X-A", "x\t"),
])
def test_header_problems_never_quote_the_value(name, value):
    problem = http.header_problem(name, value)
    assert problem and (not isinstance(value, str) or len(value) < 2 or value not in problem)


# --- pinning ------------------------------------------------------------------------------------


def test_a_call_connects_only_to_the_address_resolved_once_at_call_time(stub):
    # DNS rebinding: the name answers 127.0.0.1 when checked and 127.0.0.2 right after. The call
    # goes where the one answer pointed, however the name resolves later.
    with Downstream(host="127.0.0.2", port=stub.port) as rebound:
        calls: list[str] = []
        target = http.parse(f"http://rebind.test:{stub.port}/x")
        response = http.send(target, timeout=TIMEOUT, getaddrinfo=answers("127.0.0.1", calls=calls))
        assert response.status_code == 200 and calls == ["rebind.test"]
        assert len(stub.hits("/x")) == 1 and rebound.hits() == []
        assert stub.headers("/x")[0]["Host"] == f"rebind.test:{stub.port}"
        http.send(target, timeout=TIMEOUT, getaddrinfo=answers("127.0.0.2"))  # the next call resolves anew
        assert len(rebound.hits("/x")) == 1 and len(stub.hits("/x")) == 1


def test_each_resolved_address_is_tried_in_turn(stub):
    target = http.parse(f"http://multi.test:{stub.port}/x")  # nothing listens on 127.0.0.3
    assert http.send(target, timeout=TIMEOUT, getaddrinfo=answers("127.0.0.3", "127.0.0.1")).status_code == 200


@pytest.mark.parametrize("address", ["0.0.0.0", "224.0.0.1"])
def test_a_name_resolving_to_an_unusable_address_is_refused(stub, address):
    with pytest.raises(http.UnsafeURL):
        http.send(http.parse(f"http://bad.test:{stub.port}/x"), timeout=TIMEOUT, getaddrinfo=answers(address))
    assert stub.hits() == []


def test_an_unresolvable_name_is_a_connection_error():
    with pytest.raises(requests.ConnectionError):
        http.send(http.parse("http://nowhere.invalid/x"), timeout=TIMEOUT)


def test_the_session_refuses_a_request_that_was_not_pinned(stub):
    with pytest.raises(requests.exceptions.InvalidURL):
        http.session().get(stub.url("/x"), timeout=TIMEOUT)
    assert stub.hits() == []


def _certificate(tmp_path: Path, name: str) -> tuple[Path, Path]:
    if not shutil.which("openssl"):
        pytest.skip("needs the openssl command to make a test certificate")
    cert, key = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={name}",
         "-addext", f"subjectAltName=DNS:{name}", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


@pytest.mark.parametrize(("certified", "ok"), [("pinned.test", True), ("other.test", False)])
def test_https_to_a_pinned_address_verifies_the_hostname(tmp_path, certified, ok):
    cert, key = _certificate(tmp_path, certified)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    with Downstream(tls=context) as tls:
        target = http.parse(f"https://pinned.test:{tls.port}/x")
        send = lambda: http.send(target, timeout=TIMEOUT, verify=str(cert), getaddrinfo=answers("127.0.0.1"))  # noqa: E731
        if ok:
            assert send().status_code == 200
            assert tls.headers("/x")[0]["Host"] == f"pinned.test:{tls.port}"
        else:
            with pytest.raises(requests.exceptions.SSLError):
                send()
            assert tls.hits() == []


# --- what the session never does ------------------------------------------------------------------


def test_no_cookie_is_kept_between_calls(stub):
    stub.set("/login", headers={"Set-Cookie": "sid=planted; Path=/"})
    http.send(http.parse(stub.url("/login")), timeout=TIMEOUT)
    http.send(http.parse(stub.url("/next")), timeout=TIMEOUT)
    assert "Cookie" not in stub.headers("/next")[0]


def test_redirects_are_returned_not_followed(stub):
    stub.set("/moved", status=302, headers={"Location": stub.url("/elsewhere")})
    assert http.send(http.parse(stub.url("/moved")), timeout=TIMEOUT).status_code == 302
    assert stub.hits("/elsewhere") == []


def test_proxy_and_netrc_environment_is_ignored(stub, tmp_path, monkeypatch):
    with Downstream() as proxy:
        netrc = tmp_path / "netrc"
        netrc.write_text("machine 127.0.0.1 login user password from-netrc\n")
        netrc.chmod(0o600)
        monkeypatch.setenv("NETRC", str(netrc))
        monkeypatch.setenv("HTTP_PROXY", proxy.url())
        monkeypatch.setenv("http_proxy", proxy.url())
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        http.send(http.parse(stub.url("/direct")), timeout=TIMEOUT)
        assert proxy.hits() == []
        assert "Authorization" not in stub.headers("/direct")[0]


def test_the_session_follows_no_redirect_even_when_asked(stub):
    stub.set("/moved", status=302, headers={"Location": stub.url("/elsewhere")})
    client = http.session()
    request = http.PinnedRequest()
    request.prepare(method="GET", url=stub.url("/moved"))
    request.pin = http.Pin(target=http.parse(stub.url("/moved")), addresses=("127.0.0.1",))
    assert client.send(request, allow_redirects=True, timeout=TIMEOUT).status_code == 302
    assert stub.hits("/elsewhere") == []


@pytest.mark.django_db
def test_remote_validation_uses_the_same_client_and_keeps_no_cookie(stub, monkeypatch):
    from jobs import remote_validation

    stub.set("/validate", headers={"Set-Cookie": "sid=planted; Path=/"})
    monkeypatch.setenv("VALIDATION_URL", stub.url("/validate"))
    monkeypatch.setenv("RESILIENT_DEPENDENCIES", '{"validation": {"headers": {"Authorization": "Bearer v"}}}')
    for _ in range(2):
        remote_validation.submission_validate(document={"kind": "noop"}, actor="test")
    first, second = stub.headers("/validate")
    assert "Cookie" not in second and second["Authorization"] == "Bearer v"
