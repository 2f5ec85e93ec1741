"""Django admin for jobs: read-only lists that stay cheap, and actions that go through the services."""

from __future__ import annotations

import pytest
from django.contrib.admin import helpers
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs import queue, services
from jobs.admin import actions as admin_actions
from jobs.admin import paginator as pagination
from jobs.models import EventKind, Job, JobEvent, JobStatus

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/jobs/job/"


@pytest.fixture
def admin_client(client, operator):
    client.force_login(operator)
    return client


@pytest.fixture
def jobs():
    """Five pending jobs of mixed priority, one running, one failed."""
    made = {}
    for name, priority in [("low", -5), ("normal", 0), ("urgent", 10), ("raised", 3), ("normal2", 0)]:
        made[name], _ = services.job_submit(kind="noop", priority=priority, idempotency_key=f"key-{name}")
    made["http"], _ = services.job_submit(kind="http", payload={"url": "http://127.0.0.1:1/"}, priority=50, max_attempts=1)
    running = queue.job_claim_next(worker_id="w")  # the http one (priority 50)
    queue.job_fail(job=running, worker_id="w", error="ConnectionError: refused by upstream", retryable=True)
    made["busy"], _ = services.job_submit(kind="simulate", priority=100)
    queue.job_claim_next(worker_id="w")
    return {name: Job.objects.get(seq=job.seq) for name, job in made.items()}


def listed(response) -> list[str]:
    assert response.status_code == 200, response.content[:500]
    return [job.idempotency_key or job.kind for job in response.context["cl"].result_list]


def act(client, action: str, *jobs: Job, **extra):
    data = {"action": action, helpers.ACTION_CHECKBOX_NAME: [j.seq for j in jobs], "index": 0, **extra}
    return client.post(CHANGELIST + "?status=all", data, follow=True)


def test_list_opens_on_the_pending_queue_in_pop_order(admin_client, jobs):
    assert listed(admin_client.get(CHANGELIST)) == ["key-urgent", "key-raised", "key-normal", "key-normal2", "key-low"]
    response = admin_client.get(CHANGELIST)
    html = response.content.decode()
    assert f'title="{jobs["urgent"].uuid}">{jobs["urgent"].short_id}</code>' in html
    assert "0/5" in html  # attempts
    assert response.context["cl"].show_full_result_count is False


def test_other_statuses_list_newest_first(admin_client, jobs):
    assert listed(admin_client.get(CHANGELIST + "?status=all"))[:3] == ["simulate", "http", "key-normal2"]
    assert listed(admin_client.get(CHANGELIST + "?status=running")) == ["simulate"]
    failed = admin_client.get(CHANGELIST + "?status=failed")
    assert listed(failed) == ["http"]
    assert "ConnectionError: refused by upstream" in failed.content.decode()


def test_filters_by_kind_dependency_and_priority_band(admin_client, jobs):
    assert listed(admin_client.get(CHANGELIST + "?status=all&kind=simulate")) == ["simulate"]
    assert listed(admin_client.get(CHANGELIST + "?status=all&dependency=default")) == ["http"]
    assert listed(admin_client.get(CHANGELIST + "?band=urgent")) == ["key-urgent"]
    assert listed(admin_client.get(CHANGELIST + "?band=raised")) == ["key-raised"]
    assert listed(admin_client.get(CHANGELIST + "?band=lowered")) == ["key-low"]
    assert listed(admin_client.get(CHANGELIST + "?status=all&band=urgent")) == ["simulate", "http", "key-urgent"]


def test_search_by_id_prefix_idempotency_key_and_error_text(admin_client, jobs):
    urgent = jobs["urgent"]
    assert listed(admin_client.get(CHANGELIST, {"q": str(urgent.uuid)})) == ["key-urgent"]
    assert listed(admin_client.get(CHANGELIST, {"q": urgent.short_id})) == ["key-urgent"]
    assert listed(admin_client.get(CHANGELIST, {"q": "key-raised"})) == ["key-raised"]
    assert listed(admin_client.get(CHANGELIST, {"q": "refused by", "status": "all"})) == ["http"]
    assert listed(admin_client.get(CHANGELIST, {"q": str(urgent.uuid)[:13]})) == ["key-urgent"]  # with the hyphen
    assert listed(admin_client.get(CHANGELIST, {"q": "key-"})) == []  # keys match exactly


def test_detail_is_read_only_with_events_inline_and_there_is_no_add_or_delete(admin_client, jobs):
    job = jobs["http"]
    url = f"{CHANGELIST}{job.seq}/change/"
    response = admin_client.get(url)
    assert response.status_code == 200
    html = response.content.decode()
    assert "submitted" in html and "claimed" in html and "failed" in html  # the events inline
    assert 'name="status"' not in html and 'name="priority"' not in html and 'name="attempts"' not in html
    assert admin_client.post(url, {"status": "pending", "priority": 99}).status_code == 403
    assert Job.objects.get(seq=job.seq).status == JobStatus.FAILED
    assert admin_client.get(CHANGELIST + "add/").status_code == 403
    assert admin_client.post(f"{CHANGELIST}{job.seq}/delete/", {"post": "yes"}).status_code == 403
    assert "delete_selected" not in admin_client.get(CHANGELIST).context["action_form"].fields["action"].choices.__repr__()


def test_cancel_action_goes_through_the_service_and_reports_refusals(admin_client, jobs):
    response = act(admin_client, "cancel_jobs", jobs["low"], jobs["http"], jobs["busy"])
    assert Job.objects.get(seq=jobs["low"].seq).status == JobStatus.CANCELLED
    assert Job.objects.get(seq=jobs["http"].seq).status == JobStatus.CANCELLED
    assert Job.objects.get(seq=jobs["busy"].seq).status == JobStatus.RUNNING
    event = JobEvent.objects.filter(job=jobs["low"]).last()
    assert (event.kind, event.actor, event.details) == (EventKind.CANCELLED, "user:operator", {"reason": "cancelled in admin"})
    texts = [str(m) for m in response.context["messages"]]
    assert "Cancelled: 2 job(s)." in texts
    assert any(t.startswith(f"Not cancelled: 1 job(s) ({jobs['busy'].short_id}: cannot cancel a job that is running") for t in texts)


def test_retry_action_goes_through_the_service(admin_client, jobs):
    act(admin_client, "retry_jobs", jobs["http"])
    job = Job.objects.get(seq=jobs["http"].seq)
    assert job.status == JobStatus.PENDING and job.attempts == 0
    assert JobEvent.objects.filter(job=job).last().kind == EventKind.RETRIED


def test_set_priority_asks_first_validates_then_applies(admin_client, jobs):
    first = act(admin_client, "set_priority", jobs["low"], jobs["normal"])
    assert first.status_code == 200
    assert [t.name for t in first.templates][0] == "admin/jobs/action_form.html"
    assert jobs["low"].short_id in first.content.decode()

    invalid = act(admin_client, "set_priority", jobs["low"], jobs["normal"], apply="1", priority="500")
    assert "Ensure this value is less than or equal to 100." in invalid.content.decode()
    assert Job.objects.get(seq=jobs["low"].seq).priority == -5

    done = act(admin_client, "set_priority", jobs["low"], jobs["normal"], jobs["busy"], apply="1", priority="42")
    assert Job.objects.get(seq=jobs["low"].seq).priority == 42
    assert Job.objects.get(seq=jobs["normal"].seq).priority == 42
    assert Job.objects.get(seq=jobs["busy"].seq).priority == 100  # running: refused by the service
    event = JobEvent.objects.filter(job=jobs["low"]).last()
    assert (event.kind, event.actor, event.details) == (EventKind.REPRIORITISED, "user:operator", {"before": -5, "after": 42})
    texts = [str(m) for m in done.context["messages"]]
    assert "Set to priority 42: 2 job(s)." in texts
    assert listed(admin_client.get(CHANGELIST))[:2] == ["key-low", "key-normal"]  # same priority: older first


def test_set_priority_on_every_job_of_a_filtered_list(admin_client, jobs):
    """select_across: the intermediate page posts back to the filtered URL, so "all N pending
    jobs of kind noop in band lowered/normal" is what gets reprioritised."""
    url = CHANGELIST + "?band=normal"
    data = {"action": "set_priority", helpers.ACTION_CHECKBOX_NAME: [jobs["normal"].seq], "select_across": "1", "index": 0}
    page = admin_client.post(url, data)
    assert page.status_code == 200 and "2 jobs" in page.content.decode()
    data.pop("index")
    admin_client.post(url, {**data, "apply": "1", "priority": "-7"}, follow=True)
    assert sorted(Job.objects.filter(priority=-7).values_list("idempotency_key", flat=True)) == ["key-normal", "key-normal2"]


def test_an_action_refuses_more_jobs_than_its_limit(admin_client, jobs, monkeypatch):
    monkeypatch.setattr(admin_actions, "ACTION_LIMIT", 2)
    response = act(admin_client, "cancel_jobs", jobs["low"], jobs["normal"], jobs["raised"])
    assert "Refused: cancelled acts on at most 2 jobs at once; narrow the selection." in [str(m) for m in response.context["messages"]]
    assert not Job.objects.filter(status=JobStatus.CANCELLED).exists()


def test_actions_need_their_own_permission(client, django_user_model, jobs):
    clerk = django_user_model.objects.create_user("clerk", password="clerk-pass-123", is_staff=True)
    clerk.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_job", "view_all_jobs", "cancel_job"])
    )
    client.force_login(clerk)
    response = client.get(CHANGELIST)
    choices = [name for name, _ in response.context["action_form"].fields["action"].choices]
    assert choices[1:] == ["cancel_jobs"]
    act(client, "retry_jobs", jobs["http"])
    act(client, "set_priority", jobs["low"], apply="1", priority="50")
    assert Job.objects.get(seq=jobs["http"].seq).status == JobStatus.FAILED
    assert Job.objects.get(seq=jobs["low"].seq).priority == -5
    act(client, "cancel_jobs", jobs["low"])
    assert JobEvent.objects.filter(job=jobs["low"]).last().actor == "user:clerk"


def test_event_admin_lists_and_finds_a_jobs_events(admin_client, jobs):
    response = admin_client.get("/admin/jobs/jobevent/", {"q": str(jobs["http"].uuid)})
    assert response.status_code == 200
    assert [e.kind for e in response.context["cl"].result_list] == ["failed", "claimed", "submitted"]
    assert admin_client.get("/admin/jobs/jobevent/add/").status_code == 403


def test_paginator_counts_exactly_off_postgresql_or_when_small(jobs):
    paginator = pagination.EstimatedCountPaginator(Job.objects.order_by("seq"), 2)
    assert paginator.count == Job.objects.count() == 7


def test_changelist_never_counts_the_whole_table(admin_client, jobs):
    with CaptureQueriesContext(connection) as queries:
        assert admin_client.get(CHANGELIST + "?status=all").status_code == 200
    counts = [q["sql"] for q in queries if "COUNT(" in q["sql"].upper()]
    # Only the paginator's count of the filtered list (the estimate replaces it on big tables).
    assert len(counts) <= 1, counts


def test_large_lists_use_postgresql_estimates(postgres, admin_client):
    Job.objects.bulk_create(Job(kind="noop", dependency="local") for _ in range(12_000))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE jobs_job")
    everything = pagination.EstimatedCountPaginator(Job.objects.order_by("seq"), 50)
    pending = pagination.EstimatedCountPaginator(Job.objects.filter(status="pending").order_by("seq"), 50)
    with CaptureQueriesContext(connection) as queries:
        assert 10_000 <= everything.count <= 14_000
        assert 10_000 <= pending.count <= 14_000
    assert not [q for q in queries if "COUNT(" in q["sql"].upper()]
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(CHANGELIST)
    assert response.status_code == 200 and len(response.context["cl"].result_list) == 50
    assert not [q for q in queries if "COUNT(" in q["sql"].upper()]
