"""GET /api/jobs/ search parameters over HTTP: id prefixes, payload containment, creation
windows, several statuses; every existing parameter still works; anything else is a 400 naming it."""

from __future__ import annotations

import json
from urllib.parse import quote, urlencode

import pytest

pytestmark = pytest.mark.django_db


def submit(api, **body):
    response = api.post("/api/jobs/", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [job["id"] for job in response.json()["results"]]


def test_id_prefix_finds_the_job_by_its_short_id(api):
    job = submit(api, kind="noop")
    submit(api, kind="noop")
    assert ids(api.get(f"/api/jobs/?id_prefix={job['id'][:8]}")) == [job["id"]]
    assert ids(api.get(f"/api/jobs/?id_prefix={job['id'][:13].upper()}")) == [job["id"]]
    assert ids(api.get(f"/api/jobs/?id_prefix={job['id']}")) == [job["id"]]


def test_payload_contains_takes_a_json_object(api):
    order = submit(api, kind="noop", payload={"customer": {"id": 42, "tier": "gold"}, "tags": ["a", "b"]})
    submit(api, kind="noop", payload={"customer": {"id": 43}})
    query = urlencode({"payload_contains": json.dumps({"customer": {"id": 42}, "tags": ["b"]})})
    assert ids(api.get(f"/api/jobs/?{query}")) == [order["id"]]
    assert ids(api.get("/api/jobs/?" + urlencode({"payload_contains": '{"customer": {"id": "42"}}'}))) == []


def test_created_window_and_several_statuses_combine_with_the_old_filters(api):
    first = submit(api, kind="noop")
    second = submit(api, kind="simulate")
    api.post(f"/api/jobs/{second['id']}/cancel/")
    after = quote(first["created_at"])  # "+00:00" must be sent as %2B00:00
    assert set(ids(api.get(f"/api/jobs/?created_after={after}&status=pending&status=cancelled"))) == {first["id"], second["id"]}
    assert ids(api.get(f"/api/jobs/?created_before={after}")) == []
    assert ids(api.get("/api/jobs/?status=pending,cancelled&kind=simulate")) == [second["id"]]
    assert ids(api.get("/api/jobs/?created_after=2000-01-01T00:00:00Z&dependency=local&ordering=oldest&page=1&format=json")) == [
        first["id"], second["id"]
    ]
    assert ids(api.get("/api/jobs/?status=pending&ordering=pop")) == [first["id"]]


def test_any_offset_python_reads_is_searched_in_utc(api):
    job = submit(api, kind="noop")
    assert ids(api.get("/api/jobs/?created_after=0530-12-11T12:35:03%2B19:04")) == [job["id"]]
    assert ids(api.get("/api/jobs/?created_before=9999-12-30T23:59:59-23:59")) == [job["id"]]


def test_another_users_jobs_are_not_found_by_search(api, operator_api):
    theirs = submit(operator_api, kind="noop", payload={"secret": "x"})
    assert ids(api.get(f"/api/jobs/?id_prefix={theirs['id'][:8]}")) == []
    assert ids(api.get("/api/jobs/?" + urlencode({"payload_contains": '{"secret": "x"}'}))) == []
    assert ids(operator_api.get(f"/api/jobs/?id_prefix={theirs['id'][:8]}")) == [theirs["id"]]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("id_prefix=abc", "id_prefix"),
        ("id_prefix=zzzzzzzz", "id_prefix"),
        ("id_prefix=", "id_prefix"),
        ("payload_contains={bad", "payload_contains"),
        ("payload_contains=[1]", "payload_contains"),
        ("payload_contains=42", "payload_contains"),
        ("payload_contains=", "payload_contains"),
        ("payload_contains=NaN", "payload_contains"),
        ("payload_contains=" + quote('{"a": "\\u0000"}'), "payload_contains"),
        ("payload_contains=" + quote('{"a": 99999999999999999999}'), "payload_contains"),
        ("payload_contains=" + "%5B" * 40 + "%5D" * 40, "payload_contains"),
        ("payload_contains=" + quote(json.dumps({f"k{i}": i for i in range(101)})), "payload_contains"),
        ("payload_contains=" + quote(json.dumps({"k": "x" * 5000})), "payload_contains"),
        ("created_after=2026-01-01T00:00:00", "created_after"),
        ("created_after=2026-01-01T00:00:00+00:00", "created_after"),  # an unencoded + reads as a space
        ("created_before=yesterday", "created_before"),
        ("created_before=", "created_before"),
        ("created_before=0001-01-01T00:00:00%2B01:00", "created_before"),
        ("created_before=9999-12-31T23:59:59-23:59", "created_before"),
        ("status=pending,bogus", "status"),
        ("status=pending&status=", "status"),
        ("kind=noop&kind=http", "kind"),
        ("ordering=pop&ordering=newest", "ordering"),
        ("sattus=pending", "sattus"),
        ("page_size=5", "page_size"),
        ("limit=1", "limit"),
    ],
)
def test_bad_search_input_is_400_naming_the_parameter(api, query, field):
    submit(api, kind="noop")
    response = api.get(f"/api/jobs/?{query}")
    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()


def test_the_largest_needle_allowed_still_answers(api):
    job = submit(api, kind="noop", payload={f"k{i}": i for i in range(100)})
    assert ids(api.get("/api/jobs/?" + urlencode({"payload_contains": json.dumps({f"k{i}": i for i in range(100)})}))) == [job["id"]]


def test_the_plus_hint_and_the_list_of_allowed_parameters(api):
    message = api.get("/api/jobs/?created_after=2026-01-01T00:00:00+00:00").json()["created_after"][0]
    assert "%2B" in message
    allowed = api.get("/api/jobs/?q=x").json()["q"][0]
    for name in ("status", "id_prefix", "payload_contains", "created_after", "created_before", "ordering", "page"):
        assert name in allowed


def test_the_breaker_list_refuses_unknown_parameters_and_keeps_its_own(api):
    assert api.get("/api/breakers/?page=1").status_code == 200
    assert api.get("/api/breakers/?format=json").status_code == 200
    response = api.get("/api/breakers/?state=open")
    assert response.status_code == 400 and "state" in response.json()
