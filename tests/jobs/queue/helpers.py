"""What the queue tests share: submitting, claiming and reading back jobs and their events."""

from __future__ import annotations

from jobs import queue, services
from jobs.models import Job, JobEvent

LEASE = 60.0  # the default RESILIENT["LEASE_SECONDS"]


def submit(**fields) -> Job:
    job, created = services.job_submit(kind=fields.pop("kind", "noop"), **fields)
    assert created
    return job


def claim(worker: str = "w1", **kwargs) -> Job | None:
    return queue.job_claim_next(worker_id=worker, **kwargs)


def events(job: Job) -> list[JobEvent]:
    return list(JobEvent.objects.filter(job=job).order_by("id"))


def last_event(job: Job) -> JobEvent:
    return JobEvent.objects.filter(job=job).latest("id")


def fresh(job: Job) -> Job:
    return Job.objects.get(seq=job.seq)
