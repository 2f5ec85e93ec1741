"""Every mutation a client or operator makes to jobs. One transaction each, event included.

The worker's primitives (claim, finish, fail, leases) live beside these in ``jobs.queue``.
"""

from __future__ import annotations

from jobs.services.actions import job_cancel, job_reprioritise, job_retry
from jobs.services.actors import SYSTEM, actor_name
from jobs.services.bulk import BULK_IDS_LIMIT, BULK_REPRIORITISE_LIMIT, jobs_bulk_reprioritise
from jobs.services.retention import (
    Pruned,
    prune,
    prune_batch,
    prune_count,
    prune_lease_acquire,
    prune_lease_holder,
    prune_lease_release,
)
from jobs.services.submit import job_submit, jobs_submit_batch

__all__ = [
    "BULK_IDS_LIMIT",
    "BULK_REPRIORITISE_LIMIT",
    "SYSTEM",
    "Pruned",
    "actor_name",
    "job_cancel",
    "job_reprioritise",
    "job_retry",
    "job_submit",
    "jobs_submit_batch",
    "jobs_bulk_reprioritise",
    "prune",
    "prune_batch",
    "prune_count",
    "prune_lease_acquire",
    "prune_lease_holder",
    "prune_lease_release",
]
