"""One broadcaster per process (per event loop): state computed once per tick, changes fanned out.

The broadcaster is the only member of the dashboard group in its process. Services send it a
content-free "changed" hint after each commit; it marks itself dirty and, at most every
``MIN_INTERVAL`` seconds (longer when a build is slow: at most a third of the time is spent
building), builds one snapshot (one set of queries, on the broadcaster's own thread), computes
what changed since the last one (``dashboard.changes.diff``, once for all clients) and pushes
the same text to every dashboard connected to this process: ``{"type": "changes", "seq", "at",
"changes"}``. A dashboard that joins, or asks again after it saw a gap in ``seq`` (the
``resync`` request), gets the last state whole, at once and without a query: ``{"type":
"snapshot", "seq", "at", "state"}``; the changes that follow it carry ``seq + 1``, ``seq + 2``...
So 50 open dashboards cost the database what one costs, a browser gets at most ~10 messages a
second whatever the job rate, and at most ``MAX_BYTES_PER_SECOND`` on average: a large change
stretches the interval before the next one, which then carries everything that changed meanwhile.

Every client of a process sees the same state: the dashboard is only for accounts that may see
every job (``dashboard.access``), so there is one audience and one stream per process.

No lost update: the dirty flag is cleared *before* the snapshot is read, and every hint is sent
after its commit; a change either is in the snapshot being built or sets the flag again for the
next tick. With several Daphne processes (Redis layer) each process has its own broadcaster and
builds its own snapshot at most 10 times a second, however many clients it serves. With no
hints at all, an idle refresh every ``IDLE_REFRESH`` seconds keeps the throughput chart moving
and repairs a hint lost in Redis.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, Protocol

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import close_old_connections, connections

from dashboard import changes, snapshot
from dashboard.counts import StatusCounter
from dashboard.throughput import ThroughputWindow
from jobs.notify import DASHBOARD_GROUP

log = logging.getLogger("resilient.dashboard")

MIN_INTERVAL = 0.1
IDLE_REFRESH = 2.0
MAX_BYTES_PER_SECOND = 32_000  # per client, on average: below the 40 KB/s a phone on 3G keeps up with


class Subscriber(Protocol):
    async def push(self, text: str) -> None: ...


class Broadcaster:
    def __init__(
        self,
        *,
        min_interval: float = MIN_INTERVAL,
        idle_refresh: float = IDLE_REFRESH,
        max_bytes_per_second: float = MAX_BYTES_PER_SECOND,
        build: Callable[..., dict[str, Any]] = snapshot.build,
    ) -> None:
        self.min_interval = min_interval
        self.idle_refresh = idle_refresh
        self.max_bytes_per_second = max_bytes_per_second
        self.build = build
        self.subscribers: set[Subscriber] = set()
        self.newcomers: set[Subscriber] = set()
        self.dirty = asyncio.Event()
        self.window = ThroughputWindow()
        self.counter = StatusCounter()
        self.layer = get_channel_layer()
        self.channel: str | None = None
        self.tasks: list[asyncio.Task] = []
        self.state: dict[str, Any] | None = None  # the last state sent, as of ``seq``
        self.seq = 0
        self.sending = asyncio.Lock()  # state, seq and pushes change together: no client sees them out of order
        self.last_bytes = 0  # the size of the last change pushed (it paces the next tick)
        self.ticks = 0  # snapshots built (tests and benchmarks read it)
        self.diffs = 0  # changes computed (once per tick for every client)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dashboard-snapshot")

    async def start(self) -> None:
        if self.layer is not None:
            self.channel = await self.layer.new_channel(prefix="dashboard.")
            await self.layer.group_add(DASHBOARD_GROUP, self.channel)
            self.tasks.append(asyncio.create_task(self._listen()))
        self.tasks.append(asyncio.create_task(self._run()))

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        # Queued behind any build still running on the thread: its connection is closed after it.
        await sync_to_async(connections.close_all, thread_sensitive=False, executor=self.executor)()
        self.executor.shutdown(wait=False)
        if self.layer is not None and self.channel is not None:
            try:
                await self.layer.group_discard(DASHBOARD_GROUP, self.channel)
            except Exception:
                log.warning("could not leave the dashboard group", exc_info=True)

    async def add(self, subscriber: Subscriber) -> None:
        """Subscribe; the newcomer gets the last state whole (or the first one, once built)."""
        async with self.sending:
            self.subscribers.add(subscriber)
            await self._serve(subscriber)

    async def resync(self, subscriber: Subscriber) -> None:
        """Send ``subscriber`` the last state whole, with its ``seq``: no query, no wait."""
        async with self.sending:
            if subscriber in self.subscribers:
                await self._serve(subscriber)

    async def _serve(self, subscriber: Subscriber) -> None:
        # Under ``self.sending``: the changes after this snapshot carry seq + 1 on.
        if self.state is None:  # before the first build: sent the first state when it is ready
            self.newcomers.add(subscriber)
            self.dirty.set()
            return
        self.newcomers.discard(subscriber)
        await self._push({subscriber}, self._snapshot_text())

    def discard(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)
        self.newcomers.discard(subscriber)

    def poke(self) -> None:
        """Something changed: schedule a snapshot (coalesced with any other pending change)."""
        self.dirty.set()

    async def _listen(self) -> None:
        while True:
            try:
                await self.layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("dashboard hint listener failed; retrying", exc_info=True)
                await asyncio.sleep(1)
                continue
            self.dirty.set()

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self.dirty.wait(), timeout=self.idle_refresh)
            except TimeoutError:
                pass
            started = time.monotonic()
            self.dirty.clear()  # before reading: a change from now on makes another tick
            try:
                await self._tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("dashboard snapshot failed; retrying")
                self.dirty.set()
            # At most one tick per min_interval, and never more than a third of a core: a slow
            # build (huge tables, loaded machine) stretches the interval instead of piling up.
            # And a large change waits its share of the byte budget: the next change, however
            # late, carries everything that changed meanwhile.
            spent = time.monotonic() - started
            paced = self.last_bytes / self.max_bytes_per_second
            self.last_bytes = 0
            await asyncio.sleep(max(self.min_interval - spent, spent * 2, paced - spent))

    def _compute(self) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """(the new state, what changed since the last one sent; None before the first)."""
        close_old_connections()
        try:
            self.window.refresh()
            state = self.build(throughput=self.window.series(), counter=self.counter)
        finally:
            close_old_connections()
        if self.state is None:
            return state, None
        self.diffs += 1
        return state, changes.diff(self.state, state)

    def _snapshot_text(self) -> str:
        return self._message("snapshot", self.seq, "state", self.state)

    @staticmethod
    def _message(kind: str, seq: int, field: str, body: Any) -> str:
        at = json.dumps(datetime.now(UTC).isoformat())
        return f'{{"type":"{kind}","seq":{seq},"at":{at},"{field}":{json.dumps(body, separators=(",", ":"))}}}'

    async def _push(self, targets: set[Subscriber], text: str) -> None:
        results = await asyncio.gather(*(s.push(text) for s in targets), return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):
                log.warning("could not push to a dashboard: %r", result)

    async def _tick(self) -> None:
        # thread_sensitive=False: built on the broadcaster's own thread with its own connection,
        # not on Daphne's one sync thread, so requests and the worker's claims never queue behind it.
        state, change = await sync_to_async(self._compute, thread_sensitive=False, executor=self.executor)()
        self.ticks += 1
        async with self.sending:
            # Only this method replaces the state, so ``change`` is relative to ``self.state``.
            newcomers, self.newcomers = self.newcomers & self.subscribers, set()
            if change is None or change:
                self.seq += 1
                self.state = state
            if change:
                text = self._message("changes", self.seq, "changes", change)
                self.last_bytes = len(text.encode())
                await self._push(self.subscribers - newcomers, text)
            elif change is None:
                newcomers = set(self.subscribers)
            if newcomers:
                await self._push(newcomers, self._snapshot_text())


# Keyed by event loop: one per process in production; tests run each on a fresh loop.
_broadcasters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Broadcaster] = weakref.WeakKeyDictionary()
_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()


def _lock() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    lock = _locks.get(loop)
    if lock is None:
        lock = _locks[loop] = asyncio.Lock()
    return lock


def current() -> Broadcaster | None:
    """This event loop's broadcaster, if any dashboard is connected."""
    return _broadcasters.get(asyncio.get_running_loop())


async def subscribe(subscriber: Subscriber) -> Broadcaster:
    """Join this process's broadcaster, starting it for the first dashboard."""
    loop = asyncio.get_running_loop()
    async with _lock():
        broadcaster = _broadcasters.get(loop)
        if broadcaster is None:
            broadcaster = Broadcaster()
            await broadcaster.start()
            _broadcasters[loop] = broadcaster
        await broadcaster.add(subscriber)
        return broadcaster


async def unsubscribe(subscriber: Subscriber) -> None:
    """Leave; the last dashboard to leave stops the broadcaster (and its queries)."""
    loop = asyncio.get_running_loop()
    async with _lock():
        broadcaster = _broadcasters.get(loop)
        if broadcaster is None:
            return
        broadcaster.discard(subscriber)
        if not broadcaster.subscribers:
            del _broadcasters[loop]
            await broadcaster.stop()
