"""The ``jobs`` channel consumer: turns wake-up messages into a runner wake-up. Nothing else."""

from __future__ import annotations

from channels.consumer import AsyncConsumer

from jobs.worker import runner


class JobWakeConsumer(AsyncConsumer):
    """Wakes this process's runners on a ``jobs.wake`` message."""

    async def jobs_wake(self, message: dict) -> None:
        runner.wake_all()
