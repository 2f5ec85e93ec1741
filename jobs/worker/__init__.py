"""The worker: runs claimed jobs and records their outcomes, in batches, under leases.

``runner`` (JobRunner, the event loop's side), ``outcomes`` (a batch of finished attempts recorded
with the next claim), ``heartbeats`` (liveness rows), ``service`` (the Channels worker hosting a
runner) and ``consumer`` (the ``jobs`` channel's wake-ups).
"""

from __future__ import annotations

from jobs.worker.runner import JobRunner, new_worker_id, wake_all

__all__ = ["JobRunner", "new_worker_id", "wake_all"]
