"""Request bodies over the limit are refused before anything buffers them (a real server, real sockets)."""

from __future__ import annotations

import json
import select
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import Process, free_port, start_serve

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

MIB = 1024 * 1024
HUGE = 100 * MIB


def memory_kib(pid: int, field: str) -> int:
    """A field of /proc/PID/status (VmRSS, VmHWM) in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} missing for {pid}")


def zeros(total: int, chunk: int = 64 * 1024) -> Iterator[bytes]:
    """``total`` bytes in chunks, never all in memory."""
    block = b"0" * chunk
    sent = 0
    while sent < total:
        piece = block[: min(chunk, total - sent)]
        sent += len(piece)
        yield piece


def exchange(port: int, head: bytes, body: Iterator[bytes]) -> tuple[int, dict[str, str], bytes]:
    """Send a request, stop sending as soon as the server answers; return status, headers, body."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(head)
        try:
            for piece in body:
                if select.select([sock], [], [], 0)[0]:
                    break  # the server answered early: stop sending
                sock.sendall(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass  # it answered and closed while we were still sending
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
                if b"\r\n\r\n" in data and _complete(data):
                    break
        except ConnectionResetError:
            pass
    head_bytes, _, payload = data.partition(b"\r\n\r\n")
    lines = head_bytes.decode("latin-1").split("\r\n")
    assert lines and lines[0].startswith("HTTP/1.1 "), data[:200]
    headers = {
        k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])
    }
    return int(lines[0].split()[1]), headers, payload


def _complete(data: bytes) -> bool:
    head, _, payload = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(payload) >= int(value)
    return False


def request_head(path: str, *, length: int | None, method: str = "POST") -> bytes:
    framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    return (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"{framing}\r\nConnection: close\r\n\r\n"
    ).encode()


def chunked(pieces: Iterator[bytes]) -> Iterator[bytes]:
    for piece in pieces:
        yield f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    yield b"0\r\n\r\n"


@pytest.fixture
def server(tmp_path) -> Iterator[tuple[Process, int]]:
    port = free_port()
    proc = start_serve(tmp_path, port, RESILIENT_POLL_INTERVAL="30")
    try:
        # Warm up: the first requests import and allocate what every later request reuses.
        for _ in range(3):
            exchange(port, request_head("/api/jobs/", length=2), iter([b"{}"]))
        yield proc, port
    finally:
        assert proc.stop() == 0


def test_a_100_mib_body_is_refused_with_413_before_it_is_buffered(server):
    proc, port = server
    rss_before, peak_before = memory_kib(proc.pid, "VmRSS"), memory_kib(proc.pid, "VmHWM")
    status, headers, body = exchange(port, request_head("/api/jobs/", length=HUGE), zeros(HUGE))
    rss_after, peak_after = memory_kib(proc.pid, "VmRSS"), memory_kib(proc.pid, "VmHWM")
    print(
        f"100 MiB body: VmRSS {rss_before} -> {rss_after} KiB, VmHWM {peak_before} -> {peak_after} KiB"
    )
    assert status == 413, body[:300]  # not the 401 an anonymous caller gets after authentication
    assert headers["content-type"].startswith("application/json")
    assert json.loads(body)["code"] == "too_large"
    assert (peak_after - peak_before) < 20 * 1024, (peak_before, peak_after)


def test_a_chunked_body_past_the_limit_is_refused_and_not_buffered(server):
    proc, port = server
    peak_before = memory_kib(proc.pid, "VmHWM")
    status, _, body = exchange(port, request_head("/jobs", length=None), chunked(zeros(50 * MIB)))
    peak_after = memory_kib(proc.pid, "VmHWM")
    print(f"50 MiB chunked body: VmHWM {peak_before} -> {peak_after} KiB")
    assert status == 413, body[:300]
    assert json.loads(body)["code"] == "too_large"
    assert (peak_after - peak_before) < 20 * 1024, (peak_before, peak_after)


@pytest.mark.parametrize("path", ["/healthz", "/accounts/login/"])
def test_outside_the_api_the_refusal_is_plain_text(server, path):
    _, port = server
    status, headers, body = exchange(port, request_head(path, length=2 * MIB), zeros(2 * MIB))
    assert status == 413
    assert headers["content-type"].startswith("text/plain")
    assert b"too large" in body


def test_a_body_within_the_limit_still_reaches_the_api(server):
    _, port = server
    payload = json.dumps({"kind": "noop", "payload": {"blob": "x" * 1000}}).encode()
    status, _, body = exchange(
        port, request_head("/api/jobs/", length=len(payload)), iter([payload])
    )
    assert status == 401, body[:300]  # anonymous: authentication answers, as it should
    chunk_status, _, chunk_body = exchange(
        port, request_head("/api/jobs/", length=None), chunked(iter([payload]))
    )
    assert chunk_status == 401, chunk_body[:300]


def test_a_batch_may_send_more_than_one_request_but_not_past_the_batch_limit(server):
    _, port = server
    # 2 MiB of batch: over RESILIENT_MAX_BODY_BYTES (1 MiB), under RESILIENT_MAX_BATCH_BODY_BYTES
    # (16 MiB). Anonymous, so the answer is the 401 of authentication: the body was let through.
    batch = json.dumps({"jobs": [{"kind": "noop", "payload": {"pad": "x" * 2000}}] * 1000}).encode()
    assert MIB < len(batch) < 16 * MIB
    status, _, body = exchange(port, request_head("/api/jobs/bulk/", length=len(batch)), iter([batch]))
    assert status == 401, body[:300]
    # Past the batch limit: refused before authentication, unread.
    status, _, body = exchange(port, request_head("/api/jobs/bulk/", length=HUGE), zeros(HUGE))
    assert status == 413 and json.loads(body)["code"] == "too_large"
    status, _, body = exchange(port, request_head("/api/jobs/bulk/?x=1", length=None), chunked(zeros(20 * MIB)))
    assert status == 413


# --- the ASGI middleware alone (any ASGI server, e.g. the `daphne` command) ----------------------


async def never_receive():
    raise AssertionError("the body was read")


async def run_asgi(scope: dict, receive) -> list[dict]:
    from resilient.asgi import application

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    await application(scope, receive, send)
    return sent


def http_scope(path: str, headers: list[tuple[bytes, bytes]]) -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ["127.0.0.1", 50000],
        "server": ["127.0.0.1", 8000],
    }


async def test_the_middleware_refuses_a_declared_length_without_reading_the_body():
    headers = [(b"host", b"127.0.0.1"), (b"content-length", str(HUGE).encode())]
    sent = await run_asgi(http_scope("/api/jobs/", headers), never_receive)
    assert sent[0]["status"] == 413
    assert json.loads(sent[1]["body"])["code"] == "too_large"


async def test_the_middleware_stops_reading_an_undeclared_body_past_the_limit():
    reads = 0

    async def receive() -> dict:
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": b"0" * 65536, "more_body": True}

    headers = [(b"host", b"127.0.0.1"), (b"transfer-encoding", b"chunked")]
    sent = await run_asgi(http_scope("/jobs", headers), receive)
    assert sent[0]["status"] == 413
    assert reads == MIB // 65536 + 1  # one message past the limit, then no more
