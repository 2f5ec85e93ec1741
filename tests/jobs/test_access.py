"""Users are isolated: each sees and acts on their own jobs; permissions open the rest."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.test import override_settings

from jobs import services
from jobs.exceptions import InvalidInput
from jobs.models import EventKind, Job, JobEvent, JobStatus
from jobs.redaction import REDACTED
from tests.conftest import _client_for

pytestmark = pytest.mark.django_db

SECRET = "Token 0123456789abcdef-operator"


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", password="alice-pass-123")


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user("bob", password="bob-pass-123")


def grant(user, *codenames: str):
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return type(user).objects.get(pk=user.pk)  # a fresh instance: has_perm caches


def submit(client, **body):
    return client.post("/api/jobs/", {"kind": "noop", **body}, format="json")


def test_another_users_job_is_invisible_everywhere(alice, bob):
    a, b = _client_for(alice), _client_for(bob)
    job = submit(a, payload={"secret": "alice's"}).json()
    mine = submit(b).json()
    assert [j["id"] for j in b.get("/api/jobs/").json()["results"]] == [mine["id"]]
    assert [j["id"] for j in b.get("/api/jobs/?ordering=pop").json()["results"]] == [mine["id"]]
    assert b.get(f"/api/jobs/{job['id']}/").status_code == 404
    assert b.get("/api/jobs/?status=pending&kind=noop").json()["count"] == 1
    queue = b.get("/api/queue/").json()
    assert [j["id"] for j in queue["next"]] == [mine["id"]]
    assert queue["size"] == 2 and queue["by_status"]["pending"] == 2  # counts are of the whole queue
    assert "alice's" not in b.get("/api/queue/").content.decode()


def test_another_users_job_cannot_be_changed_and_nothing_is_written(alice, bob):
    a, b = _client_for(alice), _client_for(bob)
    job = submit(a).json()
    assert b.patch(f"/api/jobs/{job['id']}/", {"priority": 5}, format="json").status_code == 404
    assert b.post(f"/api/jobs/{job['id']}/cancel/").status_code == 404
    Job.objects.filter(uuid=job["id"]).update(status=JobStatus.FAILED)
    assert b.post(f"/api/jobs/{job['id']}/retry/").status_code == 404
    assert list(JobEvent.objects.values_list("kind", flat=True)) == [EventKind.SUBMITTED]
    row = Job.objects.get(uuid=job["id"])
    assert (row.priority, row.status) == (0, JobStatus.FAILED)


def test_a_user_acts_on_their_own_jobs(alice):
    a = _client_for(alice)
    job = submit(a).json()
    assert a.patch(f"/api/jobs/{job['id']}/", {"priority": 7}, format="json").json()["priority"] == 7
    assert a.post(f"/api/jobs/{job['id']}/cancel/").json()["status"] == "cancelled"
    assert a.post(f"/api/jobs/{job['id']}/retry/").json()["status"] == "pending"
    actors = set(JobEvent.objects.values_list("actor", flat=True))
    assert actors == {"user:alice"}


def test_view_all_sees_every_job_but_changes_none(alice, bob):
    job = submit(_client_for(alice)).json()
    watcher = grant(bob, "view_all_jobs")
    w = _client_for(watcher)
    assert w.get(f"/api/jobs/{job['id']}/").status_code == 200
    assert [j["id"] for j in w.get("/api/queue/").json()["next"]] == [job["id"]]
    assert w.post(f"/api/jobs/{job['id']}/cancel/").status_code == 403
    assert Job.objects.get(uuid=job["id"]).status == JobStatus.PENDING


def test_an_operator_acts_on_anyones_job(alice, operator_api):
    job = submit(_client_for(alice)).json()
    assert operator_api.post(f"/api/jobs/{job['id']}/cancel/").status_code == 200
    assert JobEvent.objects.filter(kind=EventKind.CANCELLED).get().actor == "user:operator"


def test_staff_with_an_action_permission_only_acts_with_that_one(alice, django_user_model):
    job = submit(_client_for(alice)).json()
    clerk = grant(django_user_model.objects.create_user("clerk", password="clerk-pass-123", is_staff=True),
                  "view_all_jobs", "cancel_job")
    c = _client_for(clerk)
    assert c.patch(f"/api/jobs/{job['id']}/", {"priority": 3}, format="json").status_code == 403
    assert c.post(f"/api/jobs/{job['id']}/cancel/").status_code == 200


def test_secret_headers_are_redacted_wherever_the_payload_is_shown(alice, operator_api, admin_client):
    a = _client_for(alice)
    payload = {"url": "http://127.0.0.1:1/x", "headers": {"Authorization": SECRET, "X-Api-Key": "k-1",
                                                          "Accept": "application/json"}}
    job = a.post("/api/jobs/", {"kind": "http", "payload": payload}, format="json")
    assert job.status_code == 201, job.json()
    shown = job.json()["payload"]["headers"]
    assert shown == {"Authorization": REDACTED, "X-Api-Key": REDACTED, "Accept": "application/json"}
    for client in (a, operator_api):
        for url in (f"/api/jobs/{job.json()['id']}/", "/api/jobs/", "/api/queue/"):
            body = client.get(url).content.decode()
            assert SECRET not in body and "k-1" not in body, url
    seq = Job.objects.get(uuid=job.json()["id"]).seq
    page = admin_client.get(f"/admin/jobs/job/{seq}/change/").content.decode()
    assert SECRET not in page and REDACTED in page
    assert Job.objects.get(seq=seq).payload["headers"]["Authorization"] == SECRET  # the worker's copy


def test_admin_shows_staff_only_their_own_jobs_without_view_all(alice, client, django_user_model):
    submit(_client_for(alice))
    clerk = grant(django_user_model.objects.create_user("clerk", password="clerk-pass-123", is_staff=True), "view_job")
    own, _ = services.job_submit(kind="noop", submitter=clerk)
    clerk = grant(clerk, "view_jobevent")
    client.force_login(clerk)
    listed = client.get("/admin/jobs/job/?status=all").context["cl"].result_list
    assert [job.seq for job in listed] == [own.seq]
    events = client.get("/admin/jobs/jobevent/").context["cl"].result_list
    assert [event.job_id for event in events] == [own.seq]


# --- fairness: priority ceiling, privileged knobs, pending cap ---------------------------------


def test_priorities_above_the_ceiling_need_a_permission(alice):
    a = _client_for(alice)
    assert submit(a, priority=10).status_code == 201
    assert submit(a, emergency=True).status_code == 201
    refused = submit(a, priority=11)
    assert refused.status_code == 403 and refused.json()["code"] == "permission_denied"
    assert "submit_high_priority" in refused.json()["detail"]
    assert Job.objects.count() == 2
    job = submit(a).json()
    assert a.patch(f"/api/jobs/{job['id']}/", {"priority": 50}, format="json").status_code == 403
    assert Job.objects.get(uuid=job["id"]).priority == 0
    a = _client_for(grant(alice, "submit_high_priority"))
    assert submit(a, priority=100).status_code == 201


@override_settings(RESILIENT={"PRIORITY_CEILING": 0})
def test_the_ceiling_is_a_setting(alice):
    assert submit(_client_for(alice), priority=1).status_code == 403


@pytest.mark.parametrize("payload", [{"failure_rate": 1}, {"failure_rate": 0.06}, {"complexity": 11}])
def test_simulates_knobs_need_a_permission(alice, payload):
    a = _client_for(alice)
    refused = a.post("/api/jobs/", {"kind": "simulate", "payload": payload}, format="json")
    assert refused.status_code == 403 and "tune_job_kinds" in refused.json()["detail"]
    assert a.post("/jobs", payload, format="json").status_code == 403  # the write-up's route too
    assert not Job.objects.exists()
    allowed = _client_for(grant(alice, "tune_job_kinds"))
    assert allowed.post("/api/jobs/", {"kind": "simulate", "payload": payload}, format="json").status_code == 201


def test_harmless_simulate_options_stay_open(alice):
    a = _client_for(alice)
    for payload in ({"complexity": 2}, {"failure_rate": 0}, {"task": "x", "complexity": 10, "failure_rate": 0.05}):
        assert a.post("/api/jobs/", {"kind": "simulate", "payload": payload}, format="json").status_code == 201


@override_settings(RESILIENT={"MAX_PENDING_PER_USER": 3})
def test_pending_jobs_per_user_are_capped(alice, bob):
    a = _client_for(alice)
    jobs = [submit(a).json() for _ in range(3)]
    refused = submit(a)
    assert refused.status_code == 429 and refused.json()["code"] == "too_many_pending"
    assert "3 pending jobs" in refused.json()["detail"]
    assert Job.objects.filter(submitter=alice).count() == 3
    assert submit(_client_for(bob)).status_code == 201  # another user's budget is their own
    a.post(f"/api/jobs/{jobs[0]['id']}/cancel/")
    assert submit(a).status_code == 201


@override_settings(RESILIENT={"MAX_PENDING_PER_USER": 1})
def test_a_replayed_key_is_answered_at_the_cap(alice):
    a = _client_for(alice)
    first = submit(a, idempotency_key="k")
    assert submit(a, idempotency_key="k").status_code == 200
    assert first.status_code == 201 and submit(a).status_code == 429


# --- idempotency keys belong to their submitter ---------------------------------------------


def test_idempotency_keys_are_per_submitter(alice, bob):
    a, b = _client_for(alice), _client_for(bob)
    theirs = submit(a, payload={"who": "alice"}, idempotency_key="order-1").json()
    mine = submit(b, payload={"who": "alice"}, idempotency_key="order-1")
    assert mine.status_code == 201 and mine.json()["id"] != theirs["id"]
    replay = submit(b, payload={"who": "alice"}, idempotency_key="order-1")
    assert replay.status_code == 200 and replay.json()["id"] == mine.json()["id"]
    assert submit(a, payload={"who": "alice"}, idempotency_key="order-1").json()["id"] == theirs["id"]
    assert Job.objects.filter(submitter=bob).count() == 1 and Job.objects.count() == 2


def test_system_keys_stay_unique(db):
    first, created = services.job_submit(kind="noop", idempotency_key="nightly")
    again, created_again = services.job_submit(kind="noop", idempotency_key="nightly")
    assert (created, created_again) == (True, False) and again.seq == first.seq


# --- what a client writes is bounded as stored --------------------------------------------------


@override_settings(RESILIENT={"MAX_PAYLOAD_BYTES": 100})
def test_non_ascii_payloads_are_measured_as_stored(alice):
    """JSONField stores \\u00e9 escapes: 20 characters of é are 120 bytes on disk, not 40."""
    refused = submit(_client_for(alice), payload={"x": "\u00e9" * 20})
    assert refused.status_code == 400 and "limit is 100" in refused.json()["payload"][0]
    assert not Job.objects.exists()


@pytest.mark.parametrize(("reason", "field_message"), [
    ("\ud800", "lone surrogates"), ("a\x00b", "NUL"), ("x" * 1001, "at most 1000"), (5, "must be a string"),
])
def test_a_cancel_reason_is_checked_like_every_text(reason, field_message):
    job, _ = services.job_submit(kind="noop")
    with pytest.raises(InvalidInput) as caught:
        services.job_cancel(job_id=job.uuid, reason=reason)
    assert caught.value.field == "reason" and field_message in caught.value.message
    assert Job.objects.get(seq=job.seq).status == JobStatus.PENDING
    assert not JobEvent.objects.filter(kind=EventKind.CANCELLED).exists()


def test_the_longest_usernames_fit_the_audit_trail(django_user_model):
    """150 characters is Django's limit; "user:" + that must fit every actor column (PostgreSQL
    refuses an over-long value where SQLite stores it)."""
    long = django_user_model.objects.create_user("u" * 150, password="long-pass-123")
    client = _client_for(long)
    job = submit(client).json()
    assert client.post(f"/api/jobs/{job['id']}/cancel/").status_code == 200
    assert JobEvent.objects.filter(kind=EventKind.CANCELLED).get().actor == "user:" + "u" * 150


def test_a_breakers_recent_errors_are_for_those_who_see_every_job(bob, operator_api):
    from jobs import breakers
    from jobs.models import Breaker, BreakerEvent, BreakerEventKind

    breakers.breakers_ensure()
    BreakerEvent.objects.create(breaker=Breaker.objects.get(name="default"), kind=BreakerEventKind.FAILURE,
                                actor="w", reason="HTTP 500 from http://127.0.0.1/alice?token=s3cret")
    b = _client_for(bob)
    for url in ("/api/breakers/default/", "/circuit?dependency=default"):
        assert b.get(url).json()["recent_errors"] == [], url
        assert "s3cret" in operator_api.get(url).json()["recent_errors"][0]["error"], url


def test_jobs_from_before_ownership_get_their_submitter_back(alice, bob):
    """The data migration reads the `submitted` event's actor; system jobs stay the system's."""
    import importlib

    from django.apps import apps

    backfill = importlib.import_module("jobs.migrations.0005_backfill_submitters").backfill
    theirs, _ = services.job_submit(kind="noop", actor="user:alice", idempotency_key="k")
    systems, _ = services.job_submit(kind="noop")
    gone, _ = services.job_submit(kind="noop", actor="user:deleted-account")
    backfill(apps, None)
    owners = dict(Job.objects.values_list("seq", "submitter__username"))
    assert owners == {theirs.seq: "alice", systems.seq: None, gone.seq: None}
    replay = submit(_client_for(alice), idempotency_key="k")
    assert replay.status_code == 200 and replay.json()["id"] == str(theirs.uuid)


# --- shared breakers cannot be tripped by a plain user -------------------------------------------


def test_no_client_job_may_run_through_the_validation_breaker(alice, operator_api):
    """Its breaker guards every submission: three failing jobs through it would stop them all."""
    for client in (_client_for(alice), operator_api):
        refused = client.post("/api/jobs/", {"kind": "http", "dependency": "validation",
                                             "payload": {"url": "http://127.0.0.1:1/"}}, format="json")
        assert refused.status_code == 400 and "reserved" in refused.json()["dependency"][0]
    assert not Job.objects.exists()


def test_simulate_against_a_real_dependency_needs_a_permission(alice):
    a = _client_for(alice)
    refused = a.post("/api/jobs/", {"kind": "simulate", "dependency": "default"}, format="json")
    assert refused.status_code == 403 and "'default' breaker" in refused.json()["detail"]
    assert _client_for(grant(alice, "tune_job_kinds")).post(
        "/api/jobs/", {"kind": "simulate", "dependency": "default"}, format="json").status_code == 201


def test_transition_event_details_name_no_job_for_other_users(bob, operator_api):
    from jobs import breakers
    from jobs.models import Breaker, BreakerEvent, BreakerEventKind

    breakers.breakers_ensure()
    BreakerEvent.objects.create(
        breaker=Breaker.objects.get(name="default"), kind=BreakerEventKind.OPENED, actor="w", reason="3 failures",
        details={"rule": "failure_threshold", "recent_errors": [{"job": "j1", "error": "http://x/?token=s3cret"}]},
    )
    events = _client_for(bob).get("/api/breakers/default/").json()["events"]
    assert events[0]["details"] == {"rule": "failure_threshold"}
    assert "s3cret" in str(operator_api.get("/api/breakers/default/").json()["events"][0]["details"])


def test_breaker_admin_hides_counted_failures_from_staff_without_view_all(client, django_user_model):
    from jobs import breakers
    from jobs.models import Breaker, BreakerEvent, BreakerEventKind

    breakers.breakers_ensure()
    row = Breaker.objects.get(name="default")
    BreakerEvent.objects.create(breaker=row, kind=BreakerEventKind.FAILURE, actor="w", reason="from http://x/?t=s3cret-1")
    BreakerEvent.objects.create(breaker=row, kind=BreakerEventKind.OPENED, actor="w", reason="tripped",
                                details={"recent_errors": [{"error": "s3cret-2"}]})
    clerk = grant(django_user_model.objects.create_user("clerk", password="clerk-pass-123", is_staff=True),
                  "view_breaker", "view_breakerevent")
    client.force_login(clerk)
    for url in ("/admin/jobs/breaker/default/change/", "/admin/jobs/breakerevent/"):
        page = client.get(url)
        assert page.status_code == 200 and "s3cret" not in page.content.decode(), url
    client.force_login(grant(clerk, "view_all_jobs"))
    assert "s3cret-1" in client.get("/admin/jobs/breaker/default/change/").content.decode()


# --- a retry by its submitter is a new submission ------------------------------------------------


@override_settings(RESILIENT={"MAX_PENDING_PER_USER": 2})
def test_a_users_retry_meets_the_pending_cap(alice):
    a = _client_for(alice)
    first, second = submit(a).json(), submit(a).json()
    a.post(f"/api/jobs/{first['id']}/cancel/")
    submit(a)
    refused = a.post(f"/api/jobs/{first['id']}/retry/")
    assert refused.status_code == 429 and Job.objects.filter(status=JobStatus.PENDING).count() == 2
    assert second


def test_a_users_retry_meets_todays_ceiling_and_permissions(alice, operator_api):
    a = _client_for(grant(alice, "submit_high_priority", "tune_job_kinds"))
    high = submit(a, priority=50).json()
    tuned = a.post("/api/jobs/", {"kind": "simulate", "payload": {"failure_rate": 1}}, format="json").json()
    Job.objects.filter(uuid__in=[high["id"], tuned["id"]]).update(status=JobStatus.FAILED)
    alice.user_permissions.clear()
    a = _client_for(type(alice).objects.get(pk=alice.pk))
    assert a.post(f"/api/jobs/{high['id']}/retry/").status_code == 403
    assert a.post(f"/api/jobs/{tuned['id']}/retry/").status_code == 403
    assert operator_api.post(f"/api/jobs/{high['id']}/retry/").status_code == 200  # an operator may
