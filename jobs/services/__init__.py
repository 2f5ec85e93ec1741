"""Every mutation a client or operator makes to jobs. One transaction each, event included.

The worker's primitives (claim, finish, fail, leases) live beside these in ``jobs.queue``.
"""

from __future__ import annotations

from jobs.services.actions import job_cancel, job_reprioritise, job_retry
from jobs.services.actors import SYSTEM, actor_name
from jobs.services.bulk import BULK_IDS_LIMIT, BULK_REPRIORITISE_LIMIT, jobs_bulk_reprioritise
from jobs.services.submit import job_submit, jobs_submit_batch

__all__ = [
    "BULK_IDS_LIMIT",
    "BULK_REPRIORITISE_LIMIT",
    "SYSTEM",
    "actor_name",
    "job_cancel",
    "job_reprioritise",
    "job_retry",
    "job_submit",
    "jobs_submit_batch",
    "jobs_bulk_reprioritise",
]
