"""The jobs REST API: the contract of docs/api.md, over DRF's real request cycle."""

from __future__ import annotations

import uuid

import pytest

from jobs.models import EventKind, Job, JobEvent, JobStatus

pytestmark = pytest.mark.django_db


def submit(api, **body):
    return api.post("/api/jobs/", body, format="json")


def test_submit_returns_the_job_shape(api):
    response = submit(api, kind="noop", payload={"a": 1}, priority=7)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert set(body) == {
        "id", "kind", "dependency", "payload", "priority", "status", "attempts", "max_attempts",
        "run_after", "created_at", "started_at", "finished_at", "last_error", "result",
    }
    assert body["kind"] == "noop" and body["payload"] == {"a": 1} and body["priority"] == 7
    assert body["status"] == "pending" and body["dependency"] == "local" and body["max_attempts"] == 5
    assert body["created_at"].endswith("Z") or "+" in body["created_at"]
    job = Job.objects.get(uuid=body["id"])
    assert list(job.events.values_list("kind", "actor")) == [(EventKind.SUBMITTED, "user:client")]


def test_defaults_and_emergency(api):
    assert submit(api, kind="noop").json()["priority"] == 0
    assert submit(api, kind="noop", emergency=True).json()["priority"] == 10
    assert submit(api, kind="http", payload={"url": "http://127.0.0.1:1/"}).json()["dependency"] == "default"


def test_detail_has_events_position_and_waiting_for(api):
    first = submit(api, kind="noop", priority=5).json()
    second = submit(api, kind="noop", priority=1).json()
    detail = api.get(f"/api/jobs/{second['id']}/").json()
    assert detail["position"] == 2
    assert detail["waiting_for"] == {"reason": "jobs_ahead", "jobs_ahead": 1}
    assert [e["kind"] for e in detail["events"]] == ["submitted"]
    assert api.get(f"/api/jobs/{first['id']}/").json()["position"] == 1


def test_list_paginates_filters_and_orders_by_pop(api):
    low = submit(api, kind="noop", priority=-5).json()
    high = submit(api, kind="simulate", priority=9).json()
    mid = submit(api, kind="noop", priority=3).json()
    page = api.get("/api/jobs/").json()
    assert page["count"] == 3 and {"next", "previous", "results"} <= set(page)
    assert [j["id"] for j in page["results"]] == [mid["id"], high["id"], low["id"]]  # newest first
    pop = api.get("/api/jobs/?ordering=pop").json()["results"]
    assert [j["id"] for j in pop] == [high["id"], mid["id"], low["id"]]
    assert [j["id"] for j in api.get("/api/jobs/?kind=simulate").json()["results"]] == [high["id"]]
    assert api.get("/api/jobs/?status=running").json()["count"] == 0
    assert api.get("/api/jobs/?dependency=local").json()["count"] == 3


def test_bad_list_filters_are_400(api):
    assert api.get("/api/jobs/?status=bogus").json() == {"status": ["must be one of pending, running, succeeded, failed, cancelled"]}
    assert "ordering" in api.get("/api/jobs/?ordering=sideways").json()
    assert api.get("/api/jobs/?page=999").status_code == 404


def test_queue(api):
    submit(api, kind="noop", priority=1)
    submit(api, kind="http", payload={"url": "http://127.0.0.1:9/"}, priority=9)
    body = api.get("/api/queue/").json()
    assert body["size"] == 2
    assert body["by_status"] == {"pending": 2, "running": 0, "succeeded": 0, "failed": 0, "cancelled": 0}
    assert body["by_dependency"] == {"local": 1, "default": 1}
    assert [j["priority"] for j in body["next"]] == [9, 1]


def test_operator_reprioritise_cancel_retry(operator_api, api):
    job = submit(api, kind="noop").json()
    response = operator_api.patch(f"/api/jobs/{job['id']}/", {"priority": 42}, format="json")
    assert response.status_code == 200 and response.json()["priority"] == 42
    assert operator_api.post(f"/api/jobs/{job['id']}/cancel/").json()["status"] == "cancelled"
    retried = operator_api.post(f"/api/jobs/{job['id']}/retry/").json()
    assert retried["status"] == "pending" and retried["attempts"] == 0
    kinds = list(JobEvent.objects.filter(job__uuid=job["id"]).values_list("kind", flat=True))
    assert kinds == ["submitted", "reprioritised", "cancelled", "retried"]
    assert JobEvent.objects.get(job__uuid=job["id"], kind="reprioritised").details == {"before": 0, "after": 42}


def test_illegal_transitions_are_409_with_status(operator_api, api):
    job = submit(api, kind="noop").json()
    response = operator_api.post(f"/api/jobs/{job['id']}/retry/")
    assert response.status_code == 409
    assert response.json()["status"] == "pending" and response.json()["code"] == "illegal_transition"
    Job.objects.filter(uuid=job["id"]).update(status=JobStatus.SUCCEEDED)
    assert operator_api.patch(f"/api/jobs/{job['id']}/", {"priority": 1}, format="json").status_code == 409
    assert operator_api.post(f"/api/jobs/{job['id']}/cancel/").status_code == 409
    assert JobEvent.objects.filter(job__uuid=job["id"]).count() == 1


def test_unknown_id_is_404(api, operator_api):
    missing = uuid.uuid4()
    assert api.get(f"/api/jobs/{missing}/").status_code == 404
    assert api.get("/api/jobs/not-a-uuid/").status_code == 404
    assert operator_api.post(f"/api/jobs/{missing}/cancel/").status_code == 404
    assert operator_api.patch(f"/api/jobs/{missing}/", {"priority": 1}, format="json").status_code == 404


def test_patch_only_changes_priority(operator_api, api):
    job = submit(api, kind="noop").json()
    assert operator_api.patch(f"/api/jobs/{job['id']}/", {"status": "succeeded"}, format="json").status_code == 400
    assert operator_api.patch(f"/api/jobs/{job['id']}/", {}, format="json").json() == {"priority": ["this field is required"]}
    assert operator_api.patch(f"/api/jobs/{job['id']}/", {"priority": 101}, format="json").status_code == 400
    assert Job.objects.get(uuid=job["id"]).priority == 0


# --- auth -----------------------------------------------------------------------------------


def test_anonymous_is_refused(anon_api):
    assert anon_api.get("/api/jobs/").status_code in (401, 403)
    assert anon_api.post("/api/jobs/", {"kind": "noop"}, format="json").status_code in (401, 403)
    assert anon_api.get("/api/queue/").status_code in (401, 403)
    assert anon_api.get("/queue").status_code in (401, 403)
    assert Job.objects.count() == 0


@pytest.mark.parametrize(("client_name", "code"), [("api", 404), ("readonly_api", 403)])
def test_operator_actions_on_another_users_job_need_the_permission(client_name, code, request, operator_api):
    """A client cannot even see the operator's job (404); a read-only operator sees it but may not act."""
    client = request.getfixturevalue(client_name)
    job = submit(operator_api, kind="noop").json()
    assert client.patch(f"/api/jobs/{job['id']}/", {"priority": 5}, format="json").status_code == code
    assert client.post(f"/api/jobs/{job['id']}/cancel/").status_code == code
    assert client.post(f"/api/jobs/{job['id']}/retry/").status_code == code
    assert Job.objects.get(uuid=job["id"]).priority == 0
    assert JobEvent.objects.count() == 1


def test_session_auth_works(client, user):
    client.force_login(user)
    assert client.get("/api/jobs/").status_code == 200


# --- the write-up's routes ------------------------------------------------------------------


def test_write_up_post_jobs(api):
    normal = api.post("/jobs", {"task": "x"}, format="json")
    assert normal.status_code == 200
    assert normal.json()["priority"] == 1 and normal.json()["kind"] == "simulate"
    assert normal.json()["payload"] == {"task": "x"}
    urgent = api.post("/jobs", {"task": "y", "emergency": True}, format="json").json()
    assert urgent["priority"] == 10 and urgent["payload"] == {"task": "y", "emergency": True}
    assert api.get("/queue").json() == {"size": 2}


def test_write_up_post_jobs_rejects_non_objects(api):
    assert api.post("/jobs", [1, 2], format="json").status_code == 400
    assert api.post("/jobs", [{"a": 1}], format="json").status_code == 400  # was a 500 (unhashable)
    assert api.post("/jobs", "nope", content_type="application/json").status_code == 400
    assert Job.objects.count() == 0


# --- schema and docs --------------------------------------------------------------------------


def test_schema_and_offline_docs(api, client):
    schema = api.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/jobs/{id}/cancel/" in schema.content
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "swagger-ui" in html and "cdn" not in html.lower()
