"""POST /api/jobs/bulk/: batches of jobs, all or nothing, in order, idempotent per item."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.test import override_settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from jobs import breakers, queue, services
from jobs.models import EventKind, Job, JobEvent, JobStatus

pytestmark = pytest.mark.django_db

URL = "/api/jobs/bulk/"


def send(api, jobs):
    return api.post(URL, {"jobs": jobs}, format="json")


def test_a_batch_is_stored_in_order_and_answered_201_in_order(api):
    items = [{"kind": "noop", "payload": {"n": n}} for n in range(50)]
    response = send(api, items)
    assert response.status_code == 201, response.json()
    body = response.json()["jobs"]
    assert [job["payload"]["n"] for job in body] == list(range(50))
    assert all(job["created"] is True and job["status"] == "pending" for job in body)
    stored = list(Job.objects.order_by("seq").values_list("uuid", flat=True))
    assert [str(u) for u in stored] == [job["id"] for job in body]
    assert JobEvent.objects.filter(kind=EventKind.SUBMITTED).count() == 50
    assert set(JobEvent.objects.values_list("actor", flat=True)) == {"user:client"}
    assert set(Job.objects.values_list("submitter__username", flat=True)) == {"client"}


def test_within_a_priority_jobs_run_in_list_order(api):
    items = [{"kind": "noop", "payload": {"n": n}, "priority": 5 if n % 2 else 0} for n in range(10)]
    assert send(api, items).status_code == 201
    order = []
    while (job := queue.job_claim_next(worker_id="w")) is not None:
        order.append(job.payload["n"])
    assert order == [1, 3, 5, 7, 9, 0, 2, 4, 6, 8]


def test_one_transaction_one_wake_up_and_one_dashboard_hint(api, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        assert send(api, [{"kind": "noop"}] * 20).status_code == 201
    assert [callback.__name__ for callback in callbacks] == ["_send_wake_and_dashboard"]  # one send for both


@pytest.mark.parametrize(
    ("bad", "field", "text"),
    [
        ({"kind": "x"}, "kind", "unknown job kind 'x'"),
        ({"payload": {}}, "kind", "required"),
        ({"kind": "noop", "priority": 1000}, "priority", "between"),
        ({"kind": "noop", "payload": []}, "payload", "JSON object"),
        ({"kind": "noop", "dependency": "nope"}, "dependency", ""),
        ({"kind": "noop", "max_attempts": 0}, "max_attempts", "between"),
        ({"kind": "noop", "delay_seconds": -1}, "delay_seconds", "0 or more"),
        ({"kind": "noop", "run_after": "2030-01-01T00:00:00"}, "run_after", "time zone"),
        ({"kind": "noop", "colour": "red"}, "colour", "unknown field"),
        ({"kind": "noop", "priority": None}, "priority", "null"),
        ({"kind": "noop", "idempotency_key": ""}, "idempotency_key", "non-empty"),
        ({"kind": "http", "payload": {"url": "http://example.com/"}}, "payload", ""),
        ("noop", "non_field_errors", "JSON object"),
    ],
)
def test_one_bad_item_refuses_the_whole_batch_naming_its_index_and_field(api, bad, field, text):
    items = [{"kind": "noop"}] * 50 + [bad] + [{"kind": "noop"}] * 5
    response = send(api, items)
    assert response.status_code == 400, response.json()
    errors = response.json()["jobs"]
    assert list(errors) == ["50"] and list(errors["50"]) == [field]
    assert text in errors["50"][field][0]
    assert not Job.objects.exists() and not JobEvent.objects.exists()


def test_every_bad_item_is_named(api):
    response = send(api, [{"kind": "x"}, {"kind": "noop"}, {"kind": "noop", "priority": "high"}])
    assert response.status_code == 400
    assert response.json() == {"jobs": {
        "0": {"kind": [response.json()["jobs"]["0"]["kind"][0]]},
        "2": {"priority": ["must be an integer"]},
    }}
    assert response.json()["jobs"]["0"]["kind"][0].startswith("unknown job kind 'x'")


@pytest.mark.parametrize(
    ("body", "field"),
    [({}, "jobs"), ({"jobs": {}}, "jobs"), ({"jobs": []}, "jobs"), ({"jobs": [], "x": 1}, "x"), ([], "non_field_errors")],
)
def test_a_malformed_envelope_is_a_400(api, body, field):
    response = api.post(URL, body, format="json")
    assert response.status_code == 400
    assert field in response.json()


@override_settings(RESILIENT={"MAX_BATCH": 10})
def test_more_than_max_batch_is_a_400(api):
    assert send(api, [{"kind": "noop"}] * 10).status_code == 201
    response = send(api, [{"kind": "noop"}] * 11)
    assert response.status_code == 400 and "at most 10" in response.json()["jobs"][0]
    assert Job.objects.count() == 10


def test_idempotency_across_batches_answers_the_existing_job_with_created_false(api):
    first = send(api, [{"kind": "noop", "idempotency_key": f"k{n}"} for n in range(3)]).json()["jobs"]
    again = send(api, [{"kind": "noop", "idempotency_key": f"k{n}"} for n in range(5)])
    assert again.status_code == 201
    jobs = again.json()["jobs"]
    assert [job["id"] for job in jobs[:3]] == [job["id"] for job in first]
    assert [job["created"] for job in jobs] == [False, False, False, True, True]
    assert Job.objects.count() == 5


def test_a_key_repeated_inside_a_batch_answers_the_first_occurrence(api):
    jobs = send(api, [{"kind": "noop", "idempotency_key": "same"}, {"kind": "noop"},
                      {"kind": "noop", "idempotency_key": "same"}]).json()["jobs"]
    assert jobs[0]["id"] == jobs[2]["id"] and [job["created"] for job in jobs] == [True, True, False]
    assert Job.objects.count() == 2


def test_a_key_repeated_inside_a_batch_with_other_parameters_is_a_bad_item(api):
    response = send(api, [{"kind": "noop", "idempotency_key": "same"}, {"kind": "noop", "idempotency_key": "same", "priority": 3}])
    assert response.status_code == 400
    assert list(response.json()["jobs"]) == ["1"] and "idempotency_key" in response.json()["jobs"]["1"]
    assert not Job.objects.exists()


def test_a_stored_key_with_other_parameters_is_a_409_naming_the_item(api):
    send(api, [{"kind": "noop", "idempotency_key": "k"}])
    response = send(api, [{"kind": "noop"}, {"kind": "noop", "idempotency_key": "k", "priority": 2}])
    assert response.status_code == 409 and response.json()["code"] == "idempotency_conflict"
    assert "jobs[1]" in response.json()["detail"]
    assert Job.objects.count() == 1


def test_single_and_batch_share_keys(api):
    single = api.post("/api/jobs/", {"kind": "noop", "idempotency_key": "k"}, format="json").json()
    jobs = send(api, [{"kind": "noop", "idempotency_key": "k"}]).json()["jobs"]
    assert jobs[0]["id"] == single["id"] and jobs[0]["created"] is False


def test_priority_ceiling_and_privileged_options_refuse_the_batch(api):
    response = send(api, [{"kind": "noop"}, {"kind": "noop", "priority": 50}])
    assert response.status_code == 403 and "jobs[1]" in response.json()["detail"]
    response = send(api, [{"kind": "simulate", "payload": {"failure_rate": 0.9}}])
    assert response.status_code == 403
    assert not Job.objects.exists()


def test_operators_may_batch_above_the_ceiling(operator_api):
    assert send(operator_api, [{"kind": "noop", "priority": 50}]).status_code == 201


@override_settings(RESILIENT={"MAX_PENDING_PER_USER": 10})
def test_the_whole_batch_must_fit_under_the_pending_cap(api):
    assert send(api, [{"kind": "noop"}] * 8).status_code == 201
    response = send(api, [{"kind": "noop"}] * 3)
    assert response.status_code == 429 and response.json()["code"] == "too_many_pending"
    assert Job.objects.count() == 8
    assert send(api, [{"kind": "noop"}] * 2).status_code == 201


def test_scheduled_items(api):
    jobs = send(api, [{"kind": "noop", "delay_seconds": 600}, {"kind": "noop"}]).json()["jobs"]
    claimed = queue.job_claim_next(worker_id="w")
    assert str(claimed.uuid) == jobs[1]["id"]
    assert Job.objects.get(uuid=jobs[0]["id"]).status == JobStatus.PENDING


def test_jobs_behind_an_open_breaker_get_their_held_event(api):
    breakers.breaker_force_open(name="local", reason="maintenance", actor="user:operator")
    send(api, [{"kind": "noop"}, {"kind": "http", "payload": {"url": "http://127.0.0.1:1/"}}])
    held = set(JobEvent.objects.filter(kind=EventKind.HELD).values_list("job__kind", flat=True))
    assert held == {"noop"}


def test_anonymous_is_refused(anon_api):
    assert send(anon_api, [{"kind": "noop"}]).status_code == 401


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=2000, RESILIENT={"MAX_BATCH_BODY_BYTES": 50_000})
def test_the_batch_body_limit_is_its_own_setting(api):
    items = [{"kind": "noop", "payload": {"pad": "x" * 100}}] * 100  # ~13 kB: over the one-job limit
    assert send(api, items).status_code == 201
    assert api.post("/api/jobs/", {"kind": "noop", "payload": {"pad": "x" * 3000}}, format="json").status_code == 413
    response = send(api, [{"kind": "noop", "payload": {"pad": "x" * 1000}}] * 60)
    assert response.status_code == 413


@pytest.mark.parametrize(("max_batch", "status"), [(20, 413), (100, 201)])
def test_by_default_the_batch_body_limit_scales_with_the_batch_size(api, max_batch, status):
    # 50 jobs of ~10 kB each, 0.5 MB: over 20 × 16 KiB, under 100 × 16 KiB; the one-job limit is 2 kB.
    items = [{"kind": "noop", "payload": {"pad": "x" * 10_000}}] * 50
    with override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=2000, RESILIENT={"MAX_BATCH": max_batch}):
        assert send(api, items).status_code == status
    assert Job.objects.count() == (50 if status == 201 else 0)


def test_a_scaled_batch_body_limit_stops_at_its_ceiling_unless_set_outright():
    from jobs.api import parsers

    with override_settings(RESILIENT={"MAX_BATCH": 1_000_000}):
        assert parsers.batch_body_bytes() == parsers.BATCH_BODY_SCALED_CEILING == 64 * 1024 * 1024
    with override_settings(RESILIENT={"MAX_BATCH": 1_000_000, "MAX_BATCH_BODY_BYTES": 200 * 1024 * 1024}):
        assert parsers.batch_body_bytes() == 200 * 1024 * 1024


def test_the_service_is_the_same_for_other_entry_points(user):
    answers = services.jobs_submit_batch(items=[{"kind": "noop"}, {"kind": "noop", "priority": 2}], submitter=user)
    assert [created for _, created in answers] == [True, True]
    assert answers[0][0].seq < answers[1][0].seq


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_batches_on_postgresql_both_land_whole_and_share_keys_safely(postgres, django_user_model):
    user = django_user_model.objects.create_user("racer", password="racer-pass-123")
    token = Token.objects.create(user=user)
    barrier = threading.Barrier(2)
    results: dict[str, object] = {}

    def run(name: str) -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        items = [{"kind": "noop", "payload": {"batch": name, "n": n}} for n in range(200)]
        items += [{"kind": "noop", "idempotency_key": f"shared-{n}"} for n in range(20)]
        barrier.wait()
        try:
            results[name] = send(client, items)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert {name: r.status_code for name, r in results.items()} == {"a": 201, "b": 201}
    assert Job.objects.count() == 420  # 200 + 200 + the 20 shared keys once
    for name in ("a", "b"):
        ns = list(Job.objects.filter(payload__batch=name).order_by("seq").values_list("payload__n", flat=True))
        assert ns == list(range(200))
    shared = [job["id"] for job in results["a"].json()["jobs"][200:]]
    assert shared == [job["id"] for job in results["b"].json()["jobs"][200:]]
    created = [job["created"] for r in results.values() for job in r.json()["jobs"][200:]]
    assert created.count(True) == 20 and created.count(False) == 20


def test_the_submission_answer_is_the_job_serializers_shape(user):
    from django.utils import timezone

    from jobs.api.serializers import JobSerializer, job_data

    job, _ = services.job_submit(kind="http", payload={"url": "http://127.0.0.1:1/", "headers": {"Authorization": "x"}},
                                 delay_seconds=5, submitter=user)
    Job.objects.filter(seq=job.seq).update(started_at=timezone.now(), finished_at=timezone.now(), result={"a": [1]},
                                           last_error="boom", attempts=2, status=JobStatus.FAILED)
    job.refresh_from_db()
    assert job_data(job) == JobSerializer(job).data
    fresh, _ = services.job_submit(kind="noop", submitter=user)
    assert job_data(fresh) == JobSerializer(fresh).data
