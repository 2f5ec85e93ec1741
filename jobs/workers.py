"""Worker heartbeats, at their old import path (they live in ``jobs.worker.heartbeats``)."""

from __future__ import annotations

from jobs.worker.heartbeats import FORGET_AFTER, worker_forget, worker_heartbeat

__all__ = ["FORGET_AFTER", "worker_forget", "worker_heartbeat"]
