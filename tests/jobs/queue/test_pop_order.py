"""Pop order as a property: any mix of priorities and arrivals is claimed in exactly
(priority desc, arrival asc) order, and reprioritising a pending job moves it accordingly."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobs import queue, selectors, services
from jobs.exceptions import IllegalTransition
from jobs.models import PRIORITY_MAX, PRIORITY_MIN, Job, JobStatus

pytestmark = pytest.mark.django_db

PROPERTY = settings(
    max_examples=50,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    deadline=None,
)

# Few distinct values make ties (where arrival decides) common; the full range finds the edges.
PRIORITIES = st.one_of(
    st.sampled_from([PRIORITY_MIN, -1, 0, 1, 10, PRIORITY_MAX]),
    st.integers(min_value=PRIORITY_MIN, max_value=PRIORITY_MAX),
)


def store(priorities: list[int], *, now, future: list[bool] | None = None) -> list[Job]:
    """Jobs arriving in list order. ``created_at`` runs backwards, so only the sequence can
    give the right tie-break."""
    Job.objects.all().delete()
    future = future or [False] * len(priorities)
    jobs = [
        Job(
            kind="noop",
            dependency="local",
            priority=priority,
            created_at=now - timedelta(seconds=index),
            run_after=now + timedelta(hours=1) if later else now - timedelta(seconds=1),
        )
        for index, (priority, later) in enumerate(zip(priorities, future, strict=True))
    ]
    jobs = Job.objects.bulk_create(jobs)
    assert [job.seq for job in jobs] == sorted(job.seq for job in jobs)
    return jobs


def pop_key(job: Job) -> tuple[int, int]:
    return (-job.priority, job.seq)


def claim_all(now) -> list[int]:
    claimed = []
    while (job := queue.job_claim_next(worker_id="w", now=now)) is not None:
        claimed.append(job.seq)
        assert len(claimed) <= 1000
    return claimed


@PROPERTY
@given(
    specs=st.lists(st.tuples(PRIORITIES, st.booleans() | st.just(False)), max_size=25),
)
def test_claims_follow_priority_then_arrival(specs):
    now = timezone.now()
    jobs = store([p for p, _ in specs], now=now, future=[f for _, f in specs])
    ready = sorted((j for j, (_, later) in zip(jobs, specs, strict=True) if not later), key=pop_key)
    waiting = {j.seq for j, (_, later) in zip(jobs, specs, strict=True) if later}

    # What the API shows agrees with what workers will take.
    shown = [j.seq for j in selectors.job_list(ordering="pop")]
    assert shown == [j.seq for j in sorted(jobs, key=pop_key)]
    for place, job in enumerate(sorted(jobs, key=pop_key), start=1):
        assert selectors.job_position(Job.objects.get(seq=job.seq)) == place

    assert claim_all(now) == [j.seq for j in ready]
    # Jobs whose run_after is in the future were skipped and are still pending.
    assert (
        set(Job.objects.filter(status=JobStatus.PENDING).values_list("seq", flat=True)) == waiting
    )
    # Once their time comes they follow in pop order too.
    later = sorted((j for j in jobs if j.seq in waiting), key=pop_key)
    assert claim_all(now + timedelta(hours=2)) == [j.seq for j in later]


@PROPERTY
@given(
    priorities=st.lists(PRIORITIES, min_size=1, max_size=20),
    claimed_first=st.integers(min_value=0, max_value=5),
    moves=st.lists(st.tuples(st.integers(min_value=0, max_value=19), PRIORITIES), max_size=8),
)
def test_reprioritising_moves_a_pending_job(priorities, claimed_first, moves):
    now = timezone.now()
    jobs = store(priorities, now=now)
    by_seq = {job.seq: job for job in jobs}
    order = sorted(jobs, key=pop_key)

    taken = []
    for _ in range(min(claimed_first, len(jobs))):
        taken.append(queue.job_claim_next(worker_id="w", now=now).seq)
    assert taken == [j.seq for j in order[: len(taken)]]

    for index, priority in moves:
        job = jobs[index % len(jobs)]
        if job.seq in taken:
            with pytest.raises(IllegalTransition) as caught:
                services.job_reprioritise(job_id=job.uuid, priority=priority, actor="user:op")
            assert caught.value.status == JobStatus.RUNNING
        else:
            services.job_reprioritise(job_id=job.uuid, priority=priority, actor="user:op")
            by_seq[job.seq].priority = priority

    remaining = sorted((j for j in by_seq.values() if j.seq not in taken), key=pop_key)
    assert [j.seq for j in queue.pop_order()] == [j.seq for j in remaining]
    assert claim_all(now) == [j.seq for j in remaining]


def test_equal_priorities_run_in_arrival_order_even_with_clock_skew():
    now = timezone.now()
    jobs = store([5, 5, 5, 7, 5], now=now)
    # The second job's timestamp claims it is the oldest; arrival (the sequence) still decides.
    Job.objects.filter(seq=jobs[1].seq).update(created_at=now - timedelta(days=1))
    assert claim_all(now) == [jobs[3].seq, jobs[0].seq, jobs[1].seq, jobs[2].seq, jobs[4].seq]
