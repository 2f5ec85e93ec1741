"""Retention: old finished jobs go with their events, old breaker events go, pending and running
jobs never; the counters on /metrics do not move; one pruner at a time; the ``prune`` command."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone

from jobs import breakers, queue, services
from jobs.models import BreakerEvent, BreakerEventKind, HousekeepingLease, Job, JobEvent, JobStatus
from tests.jobs.ops.test_metrics import scrape

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)


def finished(status: str, *, age: timedelta, dependency: str | None = None) -> Job:
    """A job that reached ``status`` ``age`` ago, with the events the real path writes."""
    job = services.job_submit(kind="noop", **({"dependency": dependency} if dependency else {}))[0]
    if status == JobStatus.CANCELLED:
        services.job_cancel(job_id=job.uuid)
    else:
        claimed = queue.job_claim_next(worker_id="w")
        assert claimed.seq == job.seq
        if status == JobStatus.SUCCEEDED:
            queue.job_succeed(job=claimed, worker_id="w", result={"ok": True})
        else:
            queue.job_fail(job=claimed, worker_id="w", error="boom", retryable=False)
    Job.objects.filter(seq=job.seq).update(finished_at=timezone.now() - age)
    return job


def exists(job: Job) -> bool:
    return Job.objects.filter(seq=job.seq).exists()


def test_old_finished_jobs_go_with_their_events_and_the_rest_stay(client):
    old = [finished(s, age=8 * DAY) for s in (JobStatus.SUCCEEDED, JobStatus.CANCELLED)]
    young = finished(JobStatus.SUCCEEDED, age=6 * DAY)
    failed_kept = finished(JobStatus.FAILED, age=8 * DAY)  # failed jobs have their own, longer retention
    failed_old = finished(JobStatus.FAILED, age=31 * DAY)
    running = services.job_submit(kind="noop")[0]
    assert queue.job_claim_next(worker_id="w").seq == running.seq
    pending = services.job_submit(kind="noop")[0]
    # Even with an old finished_at (a retried job keeps none, but a hand-edited row might),
    # pending and running rows are not finished: never touched.
    Job.objects.filter(seq__in=[running.seq, pending.seq]).update(
        finished_at=timezone.now() - 90 * DAY, created_at=timezone.now() - 90 * DAY
    )
    doomed = [*old, failed_old]
    before = scrape(client)
    assert JobEvent.objects.filter(job_id__in=[j.seq for j in doomed]).count() >= 6

    pruned = services.prune()

    assert pruned.jobs == {JobStatus.SUCCEEDED: 1, JobStatus.CANCELLED: 1, JobStatus.FAILED: 1}
    assert not any(exists(j) for j in doomed)
    assert not JobEvent.objects.filter(job_id__in=[j.seq for j in doomed]).exists()
    assert pruned.job_events == 3 + 2 + 3  # submitted/claimed/succeeded, submitted/cancelled, submitted/claimed/failed
    assert all(exists(j) for j in (young, failed_kept, running, pending))
    assert Job.objects.get(seq=running.seq).status == JobStatus.RUNNING
    assert JobEvent.objects.filter(job_id=pending.seq).exists()
    after = scrape(client)
    for family in ("resilient_jobs_finished_total", "resilient_jobs_submitted_total", "resilient_breaker_transitions_total"):
        assert after[family] == before[family], family
    assert services.prune().total == 0  # nothing left to do


def test_small_batches_delete_everything_in_several_transactions():
    jobs = [finished(JobStatus.SUCCEEDED, age=8 * DAY) for _ in range(5)]
    first = services.prune_batch(batch=2)
    assert first.jobs[JobStatus.SUCCEEDED] == 2
    assert services.prune(batch=2).jobs[JobStatus.SUCCEEDED] == 3
    assert not any(exists(j) for j in jobs)


def test_dry_run_counts_exactly_what_pruning_deletes():
    for status in (JobStatus.SUCCEEDED, JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED):
        finished(status, age=40 * DAY)
    finished(JobStatus.SUCCEEDED, age=DAY)
    old_event = breakers.breaker_force_open(name="local", actor="op", reason="maintenance")
    BreakerEvent.objects.update(at=timezone.now() - 40 * DAY)
    counted = services.prune_count()
    assert Job.objects.count() == 5 and old_event is not None
    pruned = services.prune()
    assert (counted.jobs, counted.job_events, counted.breaker_events) == (pruned.jobs, pruned.job_events, pruned.breaker_events)
    assert counted.jobs == {JobStatus.SUCCEEDED: 2, JobStatus.FAILED: 1, JobStatus.CANCELLED: 1}
    assert counted.breaker_events >= 1 and Job.objects.count() == 1


def test_breaker_events_older_than_their_retention_go(client):
    breakers.breaker_force_open(name="local", actor="op", reason="maintenance")
    breakers.breaker_release(name="local", actor="op")
    BreakerEvent.objects.update(at=timezone.now() - 31 * DAY)
    breakers.breaker_force_closed(name="local", actor="op", reason="known false alarm")
    before = scrape(client)["resilient_breaker_transitions_total"]
    assert services.prune().breaker_events == 2
    assert list(BreakerEvent.objects.values_list("kind", flat=True)) == [BreakerEventKind.FORCED_CLOSED]
    assert scrape(client)["resilient_breaker_transitions_total"] == before


@override_settings(RESILIENT={"FINISHED_RETENTION_SECONDS": 0, "FAILED_RETENTION_SECONDS": 60,
                              "BREAKER_EVENT_RETENTION_SECONDS": 0})
def test_a_retention_of_zero_keeps_rows_forever():
    kept = finished(JobStatus.SUCCEEDED, age=900 * DAY)
    gone = finished(JobStatus.FAILED, age=timedelta(minutes=2))
    breakers.breaker_force_open(name="local", actor="op", reason="x")
    BreakerEvent.objects.update(at=timezone.now() - 900 * DAY)
    pruned = services.prune()
    assert exists(kept) and not exists(gone) and pruned.breaker_events == 0


def test_one_pruner_at_a_time_and_once_per_interval():
    now = timezone.now()
    assert services.prune_lease_acquire(owner="a", now=now)
    assert not services.prune_lease_acquire(owner="b", now=now)
    assert services.prune_lease_holder(now=now) == "a"
    services.prune_lease_release(owner="a")
    assert services.prune_lease_holder() is None
    # Just pruned: not due for another interval, whoever asks.
    assert not services.prune_lease_acquire(owner="b", due_after=60)
    assert services.prune_lease_acquire(owner="b", now=timezone.now() + timedelta(seconds=61), due_after=60)
    # A pruner that died frees the lease when it expires.
    assert services.prune_lease_acquire(owner="c", now=timezone.now() + timedelta(minutes=5))
    assert HousekeepingLease.objects.get().owner == "c"


def test_the_lease_is_renewed_while_pruning_and_notes_the_run():
    jobs = [finished(JobStatus.SUCCEEDED, age=8 * DAY) for _ in range(3)]
    assert services.prune_lease_acquire(owner="w1", due_after=60)
    taken = HousekeepingLease.objects.get().expires_at
    pruned = services.prune(owner="w1", batch=1)
    assert pruned.jobs[JobStatus.SUCCEEDED] == 3 and not any(exists(j) for j in jobs)
    assert HousekeepingLease.objects.get().expires_at > taken
    services.prune_lease_release(owner="w1")
    lease = HousekeepingLease.objects.get()
    assert lease.owner == "" and lease.last_run_at is not None
    assert not services.prune_lease_acquire(owner="w2", due_after=60)  # the fleet pruned less than an interval ago


def test_a_stop_request_ends_pruning_after_the_current_batch():
    for _ in range(3):
        finished(JobStatus.SUCCEEDED, age=8 * DAY)
    assert services.prune(batch=1, stop=lambda: True).jobs[JobStatus.SUCCEEDED] == 1
    assert Job.objects.count() == 2


def test_the_prune_command_dry_run_and_real_run(capsys):
    finished(JobStatus.SUCCEEDED, age=8 * DAY)
    finished(JobStatus.FAILED, age=31 * DAY)
    call_command("prune", "--dry-run")
    out = capsys.readouterr().out
    assert "would delete 2 jobs (1 succeeded, 1 failed, 0 cancelled)" in out and "job events" in out
    assert Job.objects.count() == 2
    call_command("prune", "--batch", "1")
    assert "deleted 2 jobs" in capsys.readouterr().out
    assert Job.objects.count() == 0


def test_the_prune_command_refuses_while_a_worker_prunes():
    assert services.prune_lease_acquire(owner="host:1:abc")
    with pytest.raises(CommandError, match="host:1:abc is pruning now"):
        call_command("prune")
    with pytest.raises(CommandError, match="--batch"):
        call_command("prune", "--batch", "0")


@pytest.mark.parametrize("action", ["retry", "cancel"])
def test_an_action_on_a_job_pruned_between_its_read_and_its_update_is_not_found(monkeypatch, action):
    """Pruning commits while a retry (or cancel) of the same job is in flight: the action answers
    404 (JobNotFound), not 500. (Here the prune shares the action's connection, so its delete is
    rolled back with the refused action; in production it commits on its own.)"""
    from jobs import access
    from jobs.exceptions import JobNotFound

    job = finished(JobStatus.FAILED, age=60 * DAY)
    check = access.job_check_action

    def check_then_prune(**kwargs):  # the prune lands right after the action read the row
        check(**kwargs)
        assert services.prune_batch().jobs[JobStatus.FAILED] == 1

    monkeypatch.setattr(access, "job_check_action", check_then_prune)
    act = services.job_retry if action == "retry" else services.job_cancel
    with pytest.raises(JobNotFound):
        act(job_id=job.uuid)
