"""Side effects that leave after commit: worker wake-ups and dashboard "something changed" hints.

Only services call these. Messages are hints; the database is the truth, so a lost or refused
message costs at most one poll interval (workers) or one idle refresh (dashboards).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from asgiref.sync import SyncToAsync, async_to_sync
from channels.exceptions import ChannelFull
from channels.layers import get_channel_layer
from django.db import transaction

JOBS_CHANNEL = "jobs"
WAKE = {"type": "jobs.wake"}

# The group every dashboard process listens on. The dashboard app imports this constant; jobs
# never imports the dashboard (dependency direction dashboard -> jobs).
DASHBOARD_GROUP = "dashboard"
DASHBOARD_CHANGED = {"type": "dashboard.changed"}

log = logging.getLogger(__name__)

# A hint as _asend takes it: (layer method, channel or group, message, what a failure log names).
Hint = tuple[str, str, dict, str]
_WAKE_HINT: Hint = ("send", JOBS_CHANNEL, WAKE, "worker wake-up")
_DASHBOARD_HINT: Hint = ("group_send", DASHBOARD_GROUP, DASHBOARD_CHANGED, "dashboard hint")


async def _asend(method: str, target: str, message: dict, what: str) -> None:
    """Send one hint on the channel layer; a full or broken layer never breaks the committed change."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        await getattr(layer, method)(target, message)
    except ChannelFull:
        pass  # enough hints are already waiting to be read
    except Exception:
        log.warning("could not send %s", what, exc_info=True)


# (method, target, message, what) of each hint an HTTP request asked for, sent once its response
# has gone (``hints_after_response``); None outside such a request.
_after_response: contextvars.ContextVar[list[Hint] | None] = contextvars.ContextVar(
    "resilient_hints_after_response", default=None)


def _send(method: str, target: str, message: dict, what: str) -> None:
    deferred = _after_response.get()
    if deferred is not None:
        deferred.append((method, target, message, what))
        return
    async_to_sync(_asend)(method, target, message, what)


@contextmanager
def hints_after_response() -> Iterator[list[Hint]]:
    """Inside, hints are noted in the yielded list instead of sent; the caller sends them with
    ``asend_hints`` once its response has gone. For an ASGI server's HTTP requests: the client's
    answer waits neither for Redis nor for the event loop's turn at the hints, and what they
    announce is committed before they go either way.

    A context variable: Django's sync views run in a copy of the request's context, so what
    they note lands in this list."""
    hints: list[Hint] = []
    token = _after_response.set(hints)
    try:
        yield hints
    finally:
        _after_response.reset(token)


async def asend_hints(hints: list[Hint]) -> None:
    """Send the hints ``hints_after_response`` noted: each wake-up, the dashboard hint once (with
    the first wake-up when there is one), any other in order."""
    for hint in hints:
        if hint != _WAKE_HINT and hint != _DASHBOARD_HINT:
            await _asend(*hint)
    wakes, dashboard = hints.count(_WAKE_HINT), _DASHBOARD_HINT in hints
    if wakes and dashboard:
        await _asend_wake_and_dashboard()
        wakes, dashboard = wakes - 1, False
    for _ in range(wakes):
        await _asend(*_WAKE_HINT)
    if dashboard:
        await _asend(*_DASHBOARD_HINT)


async def _asend_wake_and_dashboard() -> None:
    """A worker wake-up and the dashboard hint: one round trip on the Redis layer."""
    layer = get_channel_layer()
    both = getattr(layer, "send_and_group_send", None)
    if both is None:
        await _asend(*_WAKE_HINT)
        await _asend(*_DASHBOARD_HINT)
        return
    try:
        await both(JOBS_CHANNEL, WAKE, DASHBOARD_GROUP, DASHBOARD_CHANGED)
    except ChannelFull:
        pass  # enough wake-ups are already waiting; the dashboards heard
    except Exception:
        log.warning("could not send worker wake-up and dashboard hint", exc_info=True)


def _send_wake_and_dashboard() -> None:
    deferred = _after_response.get()
    if deferred is not None:
        deferred += [_WAKE_HINT, _DASHBOARD_HINT]
        return
    # Both hints in one task, and the request thread does not wait for it: under Daphne the view
    # runs in a sync_to_async thread, and two waited async_to_sync hops to the loop cost a fifth
    # of a submission. The task runs on the server's own loop (the in-memory layer's too); a
    # failure is logged there (_asend). Without a server loop (a plain thread, a test client),
    # send and wait as everywhere else.
    loop = _server_loop()
    if loop is not None:
        try:
            loop.call_soon_threadsafe(_start_hints_task, loop)
            return
        except RuntimeError:  # the loop closed meanwhile
            pass
    async_to_sync(_asend_wake_and_dashboard)()


_tasks: set[asyncio.Task] = set()  # running hint tasks: the loop keeps only weak references


def _start_hints_task(loop: asyncio.AbstractEventLoop) -> None:
    task = loop.create_task(_asend_wake_and_dashboard())
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


def _server_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop that called this thread through sync_to_async, if it still runs."""
    if getattr(SyncToAsync.threadlocal, "main_event_loop_pid", None) != os.getpid():
        return None
    loop = getattr(SyncToAsync.threadlocal, "main_event_loop", None)
    return loop if loop is not None and loop.is_running() else None


def _send_wake() -> None:
    _send(*_WAKE_HINT)


def _on_commit_once(send) -> None:
    """Register ``send`` to run after the current transaction commits, once however many changes
    in it ask: a worker's trip records and claims many jobs, and each dashboard hint costs a hop
    to the event loop. (A savepoint rolled back drops its registration, so a later change re-registers.)"""
    connection = transaction.get_connection()
    if connection.in_atomic_block and any(entry[1] is send for entry in connection.run_on_commit):
        return
    transaction.on_commit(send)


def wake_workers_on_commit() -> None:
    """After the current transaction commits, wake one idle worker (one per call: a change that
    makes several jobs runnable may wake several workers)."""
    transaction.on_commit(_send_wake)


def _send_dashboard_changed() -> None:
    # Group sends drop silently on a full channel: a hint still queued there is consumed after
    # this commit, so the dashboard's next snapshot includes this change anyway.
    _send(*_DASHBOARD_HINT)


def dashboard_changed_on_commit() -> None:
    """After the current transaction commits, tell dashboards that jobs changed (a hint, no data).

    Inside ``dashboard_hints_collected()`` the hint is only noted: its caller sends it."""
    collecting = getattr(_collected, "hints", None)
    if collecting is not None:
        collecting.append(DASHBOARD_CHANGED)
        return
    _on_commit_once(_send_dashboard_changed)


def jobs_added_on_commit(*, runnable: bool) -> None:
    """After the current transaction commits, wake one idle worker (when a new job is runnable
    now) and tell dashboards, both in one send: what a submission (one job or a batch) needs."""
    if not runnable:
        dashboard_changed_on_commit()
        return
    if getattr(_collected, "hints", None) is not None:
        wake_workers_on_commit()
        dashboard_changed_on_commit()
        return
    transaction.on_commit(_send_wake_and_dashboard)


_collected = threading.local()


@contextmanager
def dashboard_hints_collected() -> Iterator[list[dict]]:
    """Note this thread's dashboard hints in the yielded list instead of sending them.

    For the worker: its database thread would otherwise wait on the event loop (and on Redis)
    for every trip's hint. The worker sends one itself with ``asend_dashboard_changed`` once
    the block's transaction has committed (a hint noted in a block that rolled back is then
    sent anyway: hints carry no data, a spare one costs one snapshot at most)."""
    _collected.hints = hints = []
    try:
        yield hints
    finally:
        _collected.hints = None


async def asend_dashboard_changed() -> None:
    """``_send_dashboard_changed`` from the event loop."""
    await _asend(*_DASHBOARD_HINT)
