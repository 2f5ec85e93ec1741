"""A worker process's event-loop side: the ``jobs`` channel listener plus a JobRunner.

Used by ``runworker jobs`` (its own loop) and by ``serve`` (Daphne's loop, one process).
"""

from __future__ import annotations

import asyncio
import logging
import signal

from channels.worker import Worker
from django.db import connections

from jobs import conf
from jobs.worker.runner import JobRunner

log = logging.getLogger("resilient.worker")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def keep_worker_connections() -> None:
    """Let this process keep its database connections between jobs.

    Channels' database_sync_to_async closes obsolete connections around every call; with the
    web default (CONN_MAX_AGE 0) the worker would reconnect twice per job (make bench: drain
    46 -> 96 jobs/s on SQLite when kept). Only worker processes do this: a web process runs each
    request in a fresh thread, where a kept connection is never reused.
    """
    max_age = conf.get("WORKER_DB_CONN_MAX_AGE")
    for alias in connections:
        connections.settings[alias]["CONN_MAX_AGE"] = max_age


class JobsWorker(Worker):
    """Channels' worker for the ``jobs`` channel, hosting a runner that does the actual work."""

    def __init__(self, *args, concurrency: int | None = None, handle_signals: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.runner = JobRunner(concurrency=concurrency)
        self.handle_signals = handle_signals

    async def handle(self) -> None:
        if self.handle_signals:
            loop = asyncio.get_running_loop()
            for sig in STOP_SIGNALS:
                loop.add_signal_handler(sig, self.runner.request_stop)
        listeners = [asyncio.create_task(self.listener(channel)) for channel in self.channels]
        try:
            await self.runner.run()
        finally:
            for task in listeners:
                task.cancel()
            await asyncio.gather(*listeners, return_exceptions=True)

    async def listener(self, channel: str) -> None:
        # Wake-ups are hints: if the channel layer fails (Redis restarting), keep polling and
        # reconnect instead of taking the worker down.
        while True:
            try:
                await super().listener(channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("channel %r listener failed; retrying (jobs are still polled)", channel, exc_info=True)
                await asyncio.sleep(conf.get("POLL_INTERVAL"))
