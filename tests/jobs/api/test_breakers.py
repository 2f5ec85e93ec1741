"""The breakers over HTTP: list, detail, overrides (staff + permission), /circuit, validation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from jobs import breakers
from jobs.breakers import Outcome
from jobs.models import Breaker, BreakerEvent, Job
from tests.support.downstream import Downstream

pytestmark = pytest.mark.django_db


def fail(name: str = "default", n: int = 1, **kw) -> None:
    for i in range(n):
        breakers.breaker_record(name=name, outcome=Outcome.FAILURE, error=f"HTTP 503 #{i}", job_id=f"j{i}", **kw)


def test_every_configured_breaker_is_listed_before_any_call(api):
    response = api.get("/api/breakers/")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == len(body["results"]) >= 3 and body["next"] is None  # paginated like every list
    by_name = {b["name"]: b for b in body["results"]}
    assert {"default", "local", "validation"} <= set(by_name)
    default = by_name["default"]
    assert {k: default[k] for k in ("state", "shadow_state", "override", "failures", "threshold", "opened_at", "retry_at", "held")} == {
        "state": "closed", "shadow_state": "closed", "override": None, "failures": 0, "threshold": 3,
        "opened_at": None, "retry_at": None, "held": 0,
    }


def test_detail_shows_why_it_opened(api, readonly_api):
    api.post("/api/jobs/", {"kind": "noop", "dependency": "default"}, format="json")
    fail(n=3)
    assert api.get("/api/breakers/default/").json()["recent_errors"] == []  # they name others' jobs
    body = readonly_api.get("/api/breakers/default/").json()
    assert body["state"] == "open" and body["failures"] == 3 and body["held"] == 1
    assert body["opened_at"] and body["retry_at"]
    opened = body["events"][0]
    assert opened["kind"] == "opened" and opened["details"]["rule"] == "failure_threshold"
    assert [e["job"] for e in body["recent_errors"]] == ["j2", "j1", "j0"]


def test_unknown_breaker_is_404(api, operator_api):
    assert api.get("/api/breakers/nope/").status_code == 404
    assert operator_api.post("/api/breakers/nope/force-open/", {}, format="json").status_code == 404


def test_force_open_with_reason_and_ttl_then_release(operator_api, api):
    response = operator_api.post(
        "/api/breakers/default/force-open/", {"reason": "maintenance", "ttl_seconds": 600}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["state"] == "open" and body["shadow_state"] == "closed"
    assert body["override"]["state"] == "open"
    assert body["override"]["reason"] == "maintenance" and body["override"]["actor"] == "user:operator"
    assert body["override"]["expires_at"]
    assert api.get("/circuit?dependency=default").json()["state"] == "Open (forced)"
    response = operator_api.post("/api/breakers/default/release/", {"reason": "done"}, format="json")
    assert response.json()["state"] == "closed" and response.json()["override"] is None
    kinds = list(BreakerEvent.objects.filter(breaker="default").values_list("kind", "actor", "reason"))
    assert kinds == [("forced_open", "user:operator", "maintenance"), ("released", "user:operator", "done")]


def test_force_closed_reports_the_shadow_state(operator_api):
    operator_api.post("/api/breakers/default/force-closed/", {"reason": "false alarm"}, format="json")
    fail(n=5)
    body = operator_api.get("/api/breakers/default/").json()
    assert (body["state"], body["shadow_state"], body["failures"]) == ("closed", "open", 3)


@pytest.mark.parametrize(
    "body, field",
    [
        ({"reason": 1}, "reason"),
        ({"ttl_seconds": "soon"}, "ttl_seconds"),
        ({"ttl_seconds": -5}, "ttl_seconds"),
        ({"surprise": 1}, "surprise"),
        ([1, 2], "non_field_errors"),
    ],
)
def test_bad_override_input_is_a_400_naming_the_field(operator_api, body, field):
    response = operator_api.post("/api/breakers/default/force-open/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert Breaker.objects.get(name="default").override == ""


def test_release_refuses_a_ttl(operator_api):
    response = operator_api.post("/api/breakers/default/release/", {"ttl_seconds": 5}, format="json")
    assert response.status_code == 400 and "ttl_seconds" in response.json()


def test_overrides_need_staff_and_the_permission(api, readonly_api, anon_api, staff_readonly):
    url = "/api/breakers/default/force-open/"
    assert anon_api.post(url, {}, format="json").status_code in (401, 403)
    assert api.post(url, {}, format="json").status_code == 403
    assert readonly_api.post(url, {}, format="json").status_code == 403
    staff_readonly.user_permissions.add(Permission.objects.get(codename="override_breaker"))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get(user=staff_readonly).key}")
    assert client.post(url, {}, format="json").status_code == 200
    assert Breaker.objects.get(name="default").override == "open"


def test_circuit_strings(api):
    body = api.get("/circuit?dependency=default").json()
    assert body["state"] == "Closed (failures: 0)" and body["status"] == "closed" and body["name"] == "default"
    fail(n=1)
    assert api.get("/circuit?dependency=default").json()["state"] == "Closed (failures: 1)"
    fail(n=2)
    body = api.get("/circuit?dependency=default").json()
    assert body["state"].startswith("Open (reopening in ") and body["state"].endswith(" ms)")
    ms = int(body["state"].split("in ")[1].split(" ")[0])
    assert 0 < ms <= 30_000 and body["retry_in_ms"] is not None
    Breaker.objects.filter(name="default").update(retry_at=timezone.now() - timedelta(seconds=1))
    assert api.get("/circuit?dependency=default").json()["state"] == "Open (ready to test)"
    breakers.breaker_admit(name="default", owner="w1")
    body = api.get("/circuit?dependency=default").json()
    assert body["state"] == "Half-Open" and body["trial"]["owner"] == "w1"


def test_a_held_job_says_why_it_waits(api):
    job = api.post("/api/jobs/", {"kind": "noop", "dependency": "default"}, format="json").json()
    fail(n=3)
    waiting = api.get(f"/api/jobs/{job['id']}/").json()["waiting_for"]
    assert waiting["reason"] == "breaker_open" and waiting["dependency"] == "default" and waiting["until"]


def test_schema_still_generates(api):
    assert api.get("/api/schema/").status_code == 200


def test_schema_says_an_override_ttl_must_be_more_than_zero_as_the_service_does(api):
    schema = api.get("/api/schema/?format=json").json()
    ttl = schema["components"]["schemas"]["OverrideRequestRequest"]["properties"]["ttl_seconds"]
    assert ttl["minimum"] == 0 and ttl["exclusiveMinimum"] is True


# --- submission-time validation ------------------------------------------------------------------


@pytest.fixture
def validator(monkeypatch):
    with Downstream() as stub:
        monkeypatch.setenv("VALIDATION_URL", stub.url("/validate"))
        yield stub


@pytest.mark.parametrize("path, body", [("/api/jobs/", {"kind": "noop"}), ("/jobs", {"complexity": 0})])
def test_validation_happy_path_stores_the_job(api, validator, path, body):
    response = api.post(path, body, format="json")
    assert response.status_code in (200, 201), response.content
    assert Job.objects.count() == 1
    assert [c.path for c in validator.calls] == ["/validate"]


@pytest.mark.parametrize("path, body", [("/api/jobs/", {"kind": "noop"}), ("/jobs", {"complexity": 0})])
def test_validation_failure_is_502_and_stores_nothing(api, validator, path, body):
    validator.fail(500)
    response = api.post(path, body, format="json")
    assert response.status_code == 502
    assert response.json()["code"] == "VALIDATION_ERROR" and response.json()["error"]
    assert not Job.objects.exists()


def test_validation_timeout_is_502(api, validator):
    validator.hang(2.0)
    response = api.post("/api/jobs/", {"kind": "noop"}, format="json")
    assert response.status_code == 502 and "timed out" in response.json()["error"]
    assert not Job.objects.exists()


def test_validation_breaker_open_is_503_without_calling(api, validator):
    validator.fail(503)
    for _ in range(3):
        assert api.post("/api/jobs/", {"kind": "noop"}, format="json").status_code == 502
    assert Breaker.objects.get(name="validation").state == "open"
    calls = len(validator.calls)
    validator.heal()
    for path, body in [("/api/jobs/", {"kind": "noop"}), ("/jobs", {"complexity": 0})]:
        response = api.post(path, body, format="json")
        assert response.status_code == 503
        assert response.json()["code"] == "CIRCUIT_OPEN" and response.json()["error"]
        assert int(response["Retry-After"]) >= 1
    assert len(validator.calls) == calls, "an open breaker does not call"
    assert not Job.objects.exists()


def test_bad_input_is_400_before_any_validation_call(api, validator):
    response = api.post("/api/jobs/", {"kind": "nope"}, format="json")
    assert response.status_code == 400 and "kind" in response.json()
    assert validator.calls == []


def test_validation_refusal_is_502_but_does_not_count(api, validator):
    validator.fail(422)
    for _ in range(5):
        assert api.post("/api/jobs/", {"kind": "noop"}, format="json").status_code == 502
    assert Breaker.objects.get(name="validation").state == "closed"
    assert Breaker.objects.get(name="validation").failures == 0


def test_validation_recovers_through_one_trial(api, validator):
    validator.fail(503)
    for _ in range(3):
        api.post("/api/jobs/", {"kind": "noop"}, format="json")
    validator.heal()
    Breaker.objects.filter(name="validation").update(retry_at=timezone.now() - timedelta(seconds=1))
    assert api.post("/api/jobs/", {"kind": "noop"}, format="json").status_code == 201
    assert Breaker.objects.get(name="validation").state == "closed"


def test_metrics_snapshot_for_prometheus():
    from jobs import selectors

    fail(n=3)
    breakers.breaker_force_closed(name="default", actor="op")
    by_name = {m["dependency"]: m for m in selectors.breaker_metrics()}
    default = by_name["default"]
    assert (default["state"], default["shadow_state"], default["failures"]) == ("closed", "open", 3)
    assert default["transitions"] == {"opened": 1, "forced_closed": 1}
    assert by_name["local"]["transitions"] == {}


@pytest.mark.parametrize("field", ["reason", "ttl_seconds"])
@pytest.mark.parametrize("action", ["force-open", "force-closed", "release"])
def test_null_override_fields_are_400_naming_the_field(operator_api, action, field):
    """Found by the fuzz test: the schema marks neither field nullable, so null is refused."""
    response = operator_api.post(f"/api/breakers/default/{action}/", {field: None}, format="json")
    assert response.status_code == 400 and field in response.json()
    assert not BreakerEvent.objects.exists()


def test_a_blank_reason_is_no_reason(operator_api):
    response = operator_api.post("/api/breakers/default/force-open/", {"reason": ""}, format="json")
    assert response.status_code == 200 and response.json()["override"]["reason"] == ""


def test_circuit_names_the_dependency_it_describes(api, monkeypatch):
    body = api.get("/circuit").json()
    assert body["dependency"] == body["name"] == "local", "the write-up's POST /jobs jobs run on local"
    monkeypatch.setenv("VALIDATION_URL", "http://127.0.0.1:9/validate")
    assert api.get("/circuit").json()["dependency"] == "validation"
    fail("default", 1)
    body = api.get("/circuit?dependency=default").json()
    assert body["dependency"] == "default" and body["state"] == "Closed (failures: 1)"
    assert api.get("/circuit?dependency=nope").status_code == 404
    bad = api.get("/circuit?dependency=a%20b")
    assert bad.status_code == 400 and "dependency" in bad.json()
    assert "depnedency" in api.get("/circuit?depnedency=default").json()
