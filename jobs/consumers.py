"""The ``jobs`` channel consumer: turns wake-up messages into a runner wake-up. Nothing else."""

from __future__ import annotations

from channels.consumer import AsyncConsumer

from jobs import worker


class JobWakeConsumer(AsyncConsumer):
    async def jobs_wake(self, message: dict) -> None:
        worker.wake_all()
