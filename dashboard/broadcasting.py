"""One broadcaster per process (per event loop): state computed once per tick, fanned out locally.

The broadcaster is the only member of the dashboard group in its process. Services send it a
content-free "changed" hint after each commit; it marks itself dirty and, at most every
``MIN_INTERVAL`` seconds (longer when a build is slow: at most a third of the time is spent
building), builds one snapshot (one set of queries, on the broadcaster's own thread) and pushes the same text to
every dashboard connected to this process. So 50 open dashboards cost the database what one
costs, and a browser gets at most ~10 messages a second whatever the job rate.

No lost update: the dirty flag is cleared *before* the snapshot is read, and every hint is sent
after its commit; a change either is in the snapshot being built or sets the flag again for the
next tick. With several Daphne processes (Redis layer) each process has its own broadcaster and
builds its own snapshot at most 10 times a second, however many clients it serves. With no
hints at all, an idle refresh every ``IDLE_REFRESH`` seconds keeps the throughput chart and
"retry at" countdowns moving and repairs a hint lost in Redis.
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

from dashboard import snapshot
from dashboard.counts import StatusCounter
from dashboard.throughput import ThroughputWindow
from jobs.notify import DASHBOARD_GROUP

log = logging.getLogger("resilient.dashboard")

MIN_INTERVAL = 0.1
IDLE_REFRESH = 2.0


class Subscriber(Protocol):
    async def push(self, text: str) -> None: ...


class Broadcaster:
    def __init__(
        self,
        *,
        min_interval: float = MIN_INTERVAL,
        idle_refresh: float = IDLE_REFRESH,
        build: Callable[..., dict[str, Any]] = snapshot.build,
    ) -> None:
        self.min_interval = min_interval
        self.idle_refresh = idle_refresh
        self.build = build
        self.subscribers: set[Subscriber] = set()
        self.newcomers: set[Subscriber] = set()
        self.dirty = asyncio.Event()
        self.window = ThroughputWindow()
        self.counter = StatusCounter()
        self.layer = get_channel_layer()
        self.channel: str | None = None
        self.tasks: list[asyncio.Task] = []
        self.last_state: str | None = None
        self.ticks = 0  # snapshots built (tests and benchmarks read it)
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

    def add(self, subscriber: Subscriber) -> None:
        """Subscribe; the newcomer gets the next snapshot even if nothing changed."""
        self.subscribers.add(subscriber)
        self.newcomers.add(subscriber)
        self.dirty.set()

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
            spent = time.monotonic() - started
            await asyncio.sleep(max(self.min_interval - spent, spent * 2))

    def _compute(self) -> str:
        close_old_connections()
        try:
            self.window.refresh()
            return json.dumps(self.build(throughput=self.window.series(), counter=self.counter), separators=(",", ":"))
        finally:
            close_old_connections()

    async def _tick(self) -> None:
        # thread_sensitive=False: the build runs in a pool thread with its own connection, not on
        # Daphne's one sync thread, so requests and the worker's claims never queue behind it.
        # Built on the broadcaster's own thread, not Daphne's one sync thread, so requests and
        # the worker's claims never queue behind a snapshot.
        state = await sync_to_async(self._compute, thread_sensitive=False, executor=self.executor)()
        self.ticks += 1
        if state == self.last_state:
            targets = set(self.newcomers)
        else:
            targets = set(self.subscribers)
            self.last_state = state
        self.newcomers -= targets
        if not targets:
            return
        text = f'{{"type":"snapshot","at":{json.dumps(datetime.now(UTC).isoformat())},"state":{state}}}'
        results = await asyncio.gather(*(s.push(text) for s in targets), return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):
                log.warning("could not push a snapshot to a dashboard: %r", result)


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
        broadcaster.add(subscriber)
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
