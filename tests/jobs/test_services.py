"""Operator transitions at the service layer: cancel, retry, reprioritise, legal and illegal."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.contrib.auth.models import AnonymousUser, User
from django.utils import timezone

from jobs import queue, selectors, services
from jobs.exceptions import IllegalTransition, InvalidInput, JobNotFound
from jobs.models import EventKind, Job, JobEvent, JobStatus

pytestmark = pytest.mark.django_db

ACTOR = "user:op"

# What each action may start from, and where it leads (docs/api.md "Shapes").
LEGAL = {
    "cancel": {JobStatus.PENDING: JobStatus.CANCELLED, JobStatus.FAILED: JobStatus.CANCELLED},
    "retry": {JobStatus.FAILED: JobStatus.PENDING, JobStatus.CANCELLED: JobStatus.PENDING},
    "reprioritise": {JobStatus.PENDING: JobStatus.PENDING},
}
EVENTS = {
    "cancel": EventKind.CANCELLED,
    "retry": EventKind.RETRIED,
    "reprioritise": EventKind.REPRIORITISED,
}


def act(action: str, job_id, **kwargs) -> Job:
    if action == "cancel":
        return services.job_cancel(job_id=job_id, actor=ACTOR, **kwargs)
    if action == "retry":
        return services.job_retry(job_id=job_id, actor=ACTOR, **kwargs)
    return services.job_reprioritise(
        job_id=job_id, priority=kwargs.get("priority", 42), actor=ACTOR
    )


def job_in(status: str, **fields) -> Job:
    """A job that has reached ``status`` (set directly: the worker's path is tested elsewhere)."""
    job, _ = services.job_submit(kind="noop", priority=3)
    changes = {"status": status, **fields}
    if status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED):
        changes.setdefault("finished_at", timezone.now())
        changes.setdefault("attempts", 2)
    if status == JobStatus.RUNNING:
        changes.update(lease_owner="w1", lease_expires_at=timezone.now() + timedelta(minutes=1))
    Job.objects.filter(seq=job.seq).update(**changes)
    return Job.objects.get(seq=job.seq)


def row(job: Job) -> dict:
    return Job.objects.filter(seq=job.seq).values().get()


PAIRS = [(action, status) for action in LEGAL for status in JobStatus]


@pytest.mark.parametrize(("action", "status"), PAIRS, ids=[f"{a}-from-{s}" for a, s in PAIRS])
def test_every_action_from_every_status(action, status):
    job = job_in(status)
    before = row(job)
    n_events = JobEvent.objects.count()
    if status in LEGAL[action]:
        result = act(action, job.uuid)
        assert result.status == LEGAL[action][status]
        assert row(job)["status"] == LEGAL[action][status]
        event = JobEvent.objects.filter(job=job).latest("id")
        assert (event.kind, event.actor) == (EVENTS[action], ACTOR)
        assert JobEvent.objects.count() == n_events + 1
    else:
        with pytest.raises(IllegalTransition) as caught:
            act(action, job.uuid)
        assert caught.value.status == status
        assert caught.value.action == action
        assert f"is {status}" in str(caught.value)
        assert caught.value.status_code == 409
        assert row(job) == before
        assert JobEvent.objects.count() == n_events


@pytest.mark.parametrize("action", list(LEGAL))
def test_unknown_job_is_not_found(action):
    with pytest.raises(JobNotFound):
        act(action, uuid.uuid4())
    assert JobEvent.objects.count() == 0


def test_cancel_sets_finished_at_and_records_the_reason():
    job = job_in(JobStatus.PENDING)
    services.job_cancel(job_id=job.uuid, actor=ACTOR, reason="not needed")
    after = row(job)
    assert after["status"] == JobStatus.CANCELLED and after["finished_at"] is not None
    assert JobEvent.objects.filter(job=job).latest("id").details == {"reason": "not needed"}


def test_retry_starts_over_with_fresh_attempts():
    job = job_in(
        JobStatus.FAILED,
        attempts=5,
        started_at=timezone.now(),
        result={"partial": True},
        run_after=timezone.now() - timedelta(hours=1),
    )
    before = timezone.now()
    services.job_retry(job_id=job.uuid, actor=ACTOR)
    after = row(job)
    assert after["status"] == JobStatus.PENDING
    assert after["attempts"] == 0
    assert (after["started_at"], after["finished_at"], after["result"]) == (None, None, None)
    assert before <= after["run_after"] <= timezone.now()


def test_a_retried_job_is_claimable_again():
    job = job_in(JobStatus.CANCELLED)
    services.job_retry(job_id=job.uuid, actor=ACTOR)
    assert queue.job_claim_next(worker_id="w1").seq == job.seq


def test_reprioritise_records_before_and_after():
    job = job_in(JobStatus.PENDING)
    result = services.job_reprioritise(job_id=job.uuid, priority=-7, actor=ACTOR)
    assert result.priority == -7 and row(job)["priority"] == -7
    assert JobEvent.objects.filter(job=job).latest("id").details == {"before": 3, "after": -7}


@pytest.mark.parametrize("priority", [-101, 101, "5", 5.0, True, None, [1]])
def test_reprioritise_refuses_bad_priorities_first(priority):
    job = job_in(JobStatus.PENDING)
    with pytest.raises(InvalidInput) as caught:
        services.job_reprioritise(job_id=job.uuid, priority=priority, actor=ACTOR)
    assert caught.value.field == "priority"
    assert row(job)["priority"] == 3
    # Input is checked before the job is looked up: a bad priority is 400 even for an unknown id.
    with pytest.raises(InvalidInput):
        services.job_reprioritise(job_id=uuid.uuid4(), priority=priority, actor=ACTOR)


@pytest.mark.parametrize("priority", [-100, 100])
def test_reprioritise_accepts_the_bounds(priority):
    job = job_in(JobStatus.PENDING)
    assert (
        services.job_reprioritise(job_id=job.uuid, priority=priority, actor=ACTOR).priority
        == priority
    )


def test_actor_name():
    assert services.actor_name(None) == "system"
    assert services.actor_name(AnonymousUser()) == "system"
    assert services.actor_name(User(username="ann")) == "user:ann"


@pytest.mark.parametrize("action", list(LEGAL))
@pytest.mark.parametrize("bad_id", ["not-a-uuid", "", "123", 5, None, "\x00"])
def test_malformed_ids_are_not_found(action, bad_id):
    """Callers other than the URL router (the dashboard socket, say) pass ids straight through."""
    job_in(JobStatus.PENDING)
    with pytest.raises(JobNotFound):
        act(action, bad_id)
    assert JobEvent.objects.exclude(kind=EventKind.SUBMITTED).count() == 0


@pytest.mark.parametrize("bad_id", ["not-a-uuid", "", 5, None])
def test_selectors_job_get_with_a_malformed_id_is_not_found(bad_id):
    with pytest.raises(JobNotFound):
        selectors.job_get(job_id=bad_id)
