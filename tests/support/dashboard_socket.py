"""Opening the dashboard socket against the real ASGI application, as a browser on the same
origin would (Host and Origin headers agree), and reading its replies."""

from __future__ import annotations

import time

from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from resilient.asgi import application

HOST = "127.0.0.1"
SAME_ORIGIN = [(b"host", HOST.encode()), (b"origin", f"http://{HOST}".encode())]


@database_sync_to_async
def login_session(user) -> str:
    """A real session for ``user`` (as the login view makes); returns its key."""
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


async def connect(user=None, *, headers: list[tuple[bytes, bytes]] | None = None, session: str | None = None,
                  scope: dict | None = None) -> WebsocketCommunicator:
    """A communicator for ``/ws/dashboard/`` with ``headers`` (same origin by default) and the
    session cookie of ``user`` (a fresh login) or of ``session``."""
    headers = list(SAME_ORIGIN if headers is None else headers)
    if user is not None and session is None:
        session = await login_session(user)
    if session is not None:
        headers.append((b"cookie", f"sessionid={session}".encode()))
    comm = WebsocketCommunicator(application, "/ws/dashboard/", headers=headers)
    comm.scope.update(scope or {})
    return comm


async def open_dashboard(user, **kwargs) -> tuple[WebsocketCommunicator, dict, dict]:
    """Connect as ``user``; return the communicator, the hello and the first snapshot."""
    comm = await connect(user, **kwargs)
    connected, _ = await comm.connect(timeout=5)
    assert connected
    hello = await comm.receive_json_from(timeout=5)
    assert hello["type"] == "hello"
    first = await comm.receive_json_from(timeout=5)
    assert first["type"] == "snapshot"
    return comm, hello, first["state"]


async def next_of_type(comm, kind: str, timeout: float = 5) -> dict:
    while True:
        message = await comm.receive_json_from(timeout=timeout)
        if message["type"] == kind:
            return message


async def snapshot_where(comm, predicate, timeout: float = 10) -> dict:
    """Snapshots until one satisfies ``predicate`` (each message is the whole state)."""
    deadline = time.monotonic() + timeout
    while True:
        message = await comm.receive_json_from(timeout=max(0.1, deadline - time.monotonic()))
        if message["type"] == "snapshot" and predicate(message["state"]):
            return message["state"]


async def next_reply(comm, timeout: float = 5) -> dict:
    """The next command reply (``result`` or ``error``), skipping snapshots."""
    while True:
        message = await comm.receive_json_from(timeout=timeout)
        if message["type"] in ("result", "error"):
            return message


async def command(comm, **message) -> dict:
    await comm.send_json_to(message)
    return await next_reply(comm)


async def closed_with(comm, timeout: float = 5) -> int:
    """Read until the server closes the socket; its close code (replies before it are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        output = await comm.receive_output(timeout=max(0.1, deadline - time.monotonic()))
        if output["type"] == "websocket.close":
            await comm.disconnect()  # the client's side of the close: the consumer finishes
            return output.get("code", 1000)
