"""The ``jobs`` channel consumer, at the path the ASGI routing imports (it lives in ``jobs.worker.consumer``)."""

from __future__ import annotations

from jobs.worker.consumer import JobWakeConsumer

__all__ = ["JobWakeConsumer"]
