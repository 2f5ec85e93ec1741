"""A worker process's event-loop side: the ``jobs`` channel listener plus a JobRunner.

Used by ``runworker jobs`` (its own loop) and by ``serve`` (Daphne's loop, one process).
"""

from __future__ import annotations

import asyncio
import logging
import signal

from channels.worker import Worker

from jobs import conf
from jobs.worker import JobRunner

log = logging.getLogger("resilient.worker")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


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
