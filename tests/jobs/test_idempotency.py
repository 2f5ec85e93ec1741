"""The same idempotency key makes one job: sequentially and from concurrent connections."""

from __future__ import annotations

import threading
from uuid import UUID

import pytest
from django.db import connection
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from jobs import services
from jobs.models import EventKind, Job, JobEvent

THREADS = 8


def body(key: str, **extra) -> dict:
    return {"kind": "noop", "payload": {"n": 1}, "idempotency_key": key, **extra}


@pytest.mark.django_db
def test_same_key_twice_makes_one_job(api):
    first = api.post("/api/jobs/", body("order-17"), format="json")
    second = api.post("/api/jobs/", body("order-17"), format="json")
    assert first.status_code == 201 and second.status_code == 200
    assert second.json() == first.json()
    assert Job.objects.count() == 1
    assert JobEvent.objects.filter(kind=EventKind.SUBMITTED).count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("change", [{"priority": 6}, {"payload": {"other": True}}, {"kind": "simulate"},
                                    {"max_attempts": 2}, {"dependency": "default"}])
def test_a_repeat_with_other_parameters_is_a_409_and_changes_nothing(api, change):
    first = api.post("/api/jobs/", body("k", priority=5), format="json").json()
    again = api.post("/api/jobs/", body("k", priority=5) | change, format="json")
    assert again.status_code == 409, again.json()
    assert again.json()["code"] == "idempotency_conflict"
    assert "different parameters" in again.json()["detail"]
    assert list(Job.objects.values_list("uuid", flat=True)) == [UUID(first["id"])]


def test_emergency_and_priority_10_are_the_same_request(api):
    first = api.post("/api/jobs/", body("k", priority=10), format="json")
    again = api.post("/api/jobs/", body("k", emergency=True), format="json")
    assert (first.status_code, again.status_code) == (201, 200)


@pytest.mark.django_db
def test_a_repeat_answers_whatever_state_the_job_is_in(api):
    first = api.post("/api/jobs/", body("k"), format="json").json()
    Job.objects.filter(uuid=first["id"]).update(status="succeeded")
    again = api.post("/api/jobs/", body("k"), format="json")
    assert again.status_code == 200 and again.json()["status"] == "succeeded"


@pytest.mark.django_db
def test_different_keys_and_no_key_make_separate_jobs(api):
    for key in ("a", "b", "A"):
        assert api.post("/api/jobs/", body(key), format="json").status_code == 201
    for _ in range(2):
        assert api.post("/api/jobs/", {"kind": "noop"}, format="json").status_code == 201
    assert Job.objects.count() == 5


@pytest.mark.django_db
def test_a_repeat_with_bad_input_is_still_400(api):
    api.post("/api/jobs/", body("k"), format="json")
    assert api.post("/api/jobs/", body("k", priority=500), format="json").status_code == 400


@pytest.mark.django_db
def test_service_reports_created(db):
    job, created = services.job_submit(kind="noop", idempotency_key="svc")
    again, created_again = services.job_submit(kind="noop", idempotency_key="svc")
    assert (created, created_again) == (True, False) and again.seq == job.seq


def _race(submit_one) -> list:
    """Run ``submit_one()`` in THREADS threads released together; each thread has its own
    database connection, closed at the end. Returns the results (or exceptions)."""
    barrier = threading.Barrier(THREADS)
    results: list = [None] * THREADS

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[index] = submit_one()
        except Exception as exc:  # noqa: BLE001 - reported by the assertions below
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    return results


@pytest.mark.django_db(transaction=True)
def test_concurrent_submissions_with_one_key_make_one_job_through_the_api(user):
    token = Token.objects.create(user=user).key

    def submit_one():
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        response = client.post("/api/jobs/", body("race-api"), format="json")
        return response.status_code, response.json()

    results = _race(submit_one)
    assert all(isinstance(r, tuple) for r in results), results
    codes = sorted(code for code, _ in results)
    assert codes == [200] * (THREADS - 1) + [201], results
    assert len({answer["id"] for _, answer in results}) == 1
    assert Job.objects.count() == 1
    assert JobEvent.objects.filter(kind=EventKind.SUBMITTED).count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_submissions_with_one_key_make_one_job_at_the_service_layer():
    results = _race(lambda: services.job_submit(kind="noop", idempotency_key="race-svc"))
    assert all(isinstance(r, tuple) for r in results), results
    assert sorted(created for _, created in results) == [False] * (THREADS - 1) + [True]
    assert len({job.seq for job, _ in results}) == 1
    assert Job.objects.count() == 1
    assert JobEvent.objects.count() == 1
