"""The ``svc`` dependency on an injected clock: its settings and short ways to admit, record, trip, claim."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from jobs import breakers, queue, services
from jobs.breakers import Outcome
from jobs.models import Breaker, Job

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
SVC = "svc"
CONFIG = {
    "DEPENDENCIES": {
        SVC: {"failure_threshold": 3, "reset_timeout": 10, "max_reset_timeout": 40, "slow_call_seconds": 1.0},
        "other": {},
    },
    "LEASE_SECONDS": 60,
}


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def row(name: str = SVC) -> Breaker:
    return breakers.breaker_row(name)


def admit(owner: str = "w1", now: float = 0, job_seq: int | None = None) -> breakers.Admission:
    return breakers.breaker_admit(name=SVC, owner=owner, job_seq=job_seq, now=at(now))


def record(outcome: Outcome, now: float = 0, admission=None, rand=lambda: 1.0, **kw) -> Outcome:
    return breakers.breaker_record(name=SVC, outcome=outcome, admission=admission, now=at(now), rand=rand, **kw)


def trip(now: float = 0, **kw) -> None:
    for i in range(3):
        record(Outcome.FAILURE, now=now, error=f"boom {i}", job_id=f"job-{i}", **kw)


def submit(dependency: str, priority: int = 0) -> Job:
    job, _ = services.job_submit(kind="noop", dependency=dependency, priority=priority)
    Job.objects.filter(seq=job.seq).update(run_after=T0)  # runnable on the injected clock
    return job


def claim(worker: str = "w1", now: float = 0) -> Job | None:
    return queue.job_claim_next(worker_id=worker, now=at(now))


def claim_with_trial(worker: str = "w1", now: float = 0) -> queue.Claim | None:
    return queue.claim_next(worker_id=worker, now=at(now))
