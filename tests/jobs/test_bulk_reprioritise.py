"""jobs_bulk_reprioritise: one transaction, one event per changed job, bounded."""

from __future__ import annotations

import pytest

from jobs import services
from jobs.exceptions import InvalidInput
from jobs.models import EventKind, Job, JobEvent, JobStatus

pytestmark = pytest.mark.django_db


def make(n, **kw):
    return [services.job_submit(kind="noop", **kw)[0] for _ in range(n)]


def test_only_pending_matching_jobs_change_each_with_an_event():
    pending = make(3, priority=1)
    done = make(1, priority=1)[0]
    services.job_cancel(job_id=done.uuid, actor="t")
    assert services.jobs_bulk_reprioritise(priority=9, actor="user:op", dry_run=True, current_priority=1) == 3
    assert not JobEvent.objects.filter(kind=EventKind.REPRIORITISED).exists()
    assert services.jobs_bulk_reprioritise(priority=9, actor="user:op", current_priority=1) == 3
    assert set(Job.objects.filter(status=JobStatus.PENDING).values_list("priority", flat=True)) == {9}
    assert Job.objects.get(seq=done.seq).priority == 1
    events = JobEvent.objects.filter(kind=EventKind.REPRIORITISED)
    assert sorted(events.values_list("job_id", flat=True)) == sorted(j.seq for j in pending)
    assert {(e.actor, e.details["before"], e.details["after"]) for e in events} == {("user:op", 1, 9)}
    # Already at the target: nothing to change, nothing written.
    assert services.jobs_bulk_reprioritise(priority=9, actor="user:op", job_ids=[str(j.uuid) for j in pending]) == 0
    assert events.count() == 3


def test_too_large_a_selection_is_refused_and_nothing_changes(monkeypatch):
    monkeypatch.setattr(services.bulk, "BULK_REPRIORITISE_LIMIT", 2)
    make(3, priority=1)
    for dry_run in (True, False):
        with pytest.raises(InvalidInput) as exc:
            services.jobs_bulk_reprioritise(priority=5, actor="op", dependency="local", dry_run=dry_run)
        assert exc.value.field == "filter"
    assert set(Job.objects.values_list("priority", flat=True)) == {1}
    assert not JobEvent.objects.filter(kind=EventKind.REPRIORITISED).exists()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"priority": 500}, "priority"),
        ({"priority": "1"}, "priority"),
        ({"priority": 1, "job_ids": "abc"}, "ids"),
        ({"priority": 1, "job_ids": ["not-a-uuid"]}, "ids"),
        ({"priority": 1, "dependency": 3}, "dependency"),
        ({"priority": 1, "current_priority": 1000}, "current_priority"),
    ],
)
def test_bad_input_names_the_field(kwargs, field):
    make(1)
    with pytest.raises(InvalidInput) as exc:
        services.jobs_bulk_reprioritise(actor="op", **kwargs)
    assert exc.value.field == field
