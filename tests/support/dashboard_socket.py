"""Opening the dashboard socket against the real ASGI application, as a browser on the same
origin would (Host and Origin headers agree), and reading its replies: the state is the first
snapshot with every change applied in ``seq`` order (``dashboard.changes.apply``, the reference
reconstruction), kept on the communicator as ``comm.dashboard``."""

from __future__ import annotations

import time

from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from dashboard import changes
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
    comm.dashboard = {"state": first["state"], "seq": first["seq"]}
    return comm, hello, first["state"]


def follow(comm, message: dict) -> bool:
    """Apply a snapshot or a change to ``comm.dashboard``; True if it was one. A change must
    carry the next ``seq`` (no gap, no repeat)."""
    live = comm.dashboard
    if message["type"] == "snapshot":
        live["state"], live["seq"] = message["state"], message["seq"]
        return True
    if message["type"] == "changes":
        assert message["seq"] == live["seq"] + 1, (message["seq"], live["seq"])
        changes.apply(live["state"], message["changes"])
        live["seq"] = message["seq"]
        return True
    return False


async def state_where(comm, predicate, timeout: float = 10) -> dict:
    """The live state once it satisfies ``predicate`` (checked after every snapshot or change)."""
    deadline = time.monotonic() + timeout
    if predicate(comm.dashboard["state"]):
        return comm.dashboard["state"]
    while True:
        message = await comm.receive_json_from(timeout=max(0.1, deadline - time.monotonic()))
        if follow(comm, message) and predicate(comm.dashboard["state"]):
            return comm.dashboard["state"]


async def next_reply(comm, timeout: float = 5) -> dict:
    """The next command reply (``result`` or ``error``); snapshots and changes on the way are
    applied to the live state."""
    while True:
        message = await comm.receive_json_from(timeout=timeout)
        if message["type"] in ("result", "error"):
            return message
        if hasattr(comm, "dashboard"):
            follow(comm, message)


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
