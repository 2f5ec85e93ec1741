"""The worker's primitives: claim the next job in pop order, record its outcome, keep its lease.

``claim`` takes jobs (pop order, breaker admission, the half-open trial), ``finish`` records what
an attempt did, ``leases`` renews and expires leases, ``sql`` names every raw statement.
"""

from __future__ import annotations

from jobs.queue.claim import Claim, claim_next, claims_take, job_claim_next, jobs_claim, pop_order
from jobs.queue.finish import (
    MAX_ERROR_CHARS,
    Success,
    job_fail,
    job_release,
    job_succeed,
    jobs_succeed,
)
from jobs.queue.leases import jobs_expire_leases, jobs_renew_leases

__all__ = [
    "MAX_ERROR_CHARS",
    "Claim",
    "Success",
    "claim_next",
    "claims_take",
    "job_claim_next",
    "job_fail",
    "job_release",
    "job_succeed",
    "jobs_claim",
    "jobs_expire_leases",
    "jobs_renew_leases",
    "jobs_succeed",
    "pop_order",
]
